"""Issue 30: a checkpoint file linked to a file outside its folder is refused without quoting it, and
a model whose numbers overflow float32 says so, at load (inf or NaN weights) and at run time."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from helpers.models import random_model
from safetensors.numpy import save_file

from core.io import checkpoint
from core.model.model import Model, load_checkpoint


def test_a_vocabulary_linked_outside_the_folder_is_refused_unread(tmp_path, small_model):
    folder = tmp_path / "model"
    small_model.save(folder)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"server-secret-key": 0, "another-secret": 1}))
    (folder / "vocab.json").unlink()
    (folder / "vocab.json").symlink_to(secret)
    with pytest.raises(ValueError, match="vocab.json is a symbolic link to a file outside the checkpoint folder") as raised:
        load_checkpoint(folder)
    assert "secret" not in str(raised.value).replace(str(tmp_path), "")


def test_weights_linked_outside_are_refused_and_links_inside_allowed(tmp_path, small_model):
    folder = tmp_path / "model"
    small_model.save(folder)
    (folder / "model.safetensors").rename(tmp_path / "weights")
    (folder / "model.safetensors").symlink_to(tmp_path / "weights")
    with pytest.raises(ValueError, match="model.safetensors is a symbolic link"):
        load_checkpoint(folder)
    (folder / "model.safetensors").unlink()
    (tmp_path / "weights").rename(folder / "real.bin")
    (folder / "model.safetensors").symlink_to("real.bin")  # inside the folder: fine
    assert load_checkpoint(folder).config == small_model.config


def test_hugging_face_cache_snapshots_still_load(tmp_path, small_model):
    repo = tmp_path / "models--someone--tiny"
    small_model.save(tmp_path / "plain")
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    for number, file in enumerate(sorted((tmp_path / "plain").iterdir())):
        file.rename(repo / "blobs" / f"blob{number}")
        (snapshot / file.name).symlink_to(f"../../blobs/blob{number}")
    assert load_checkpoint(snapshot).config == small_model.config


def overflowing_model() -> Model:
    """A random tiny model whose every weight array is scaled to a largest value of 3e38 (finite)."""
    model = random_model(seed=4)
    params = {name: (value / np.abs(value).max() * np.float32(3e38) if np.abs(value).max() > 0 else value)
              .astype(np.float32) for name, value in model.params.items()}
    return Model(model.config, params, model.tokenizer)


def test_weights_that_overflow_at_run_time_say_so():
    model = overflowing_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own overflow warnings
        with pytest.raises(ValueError, match=r"the model's numbers overflowed float32 in layer 0"):
            model.run("the sky is")
        with pytest.raises(ValueError, match=r"the model's numbers overflowed float32 in layer 0"):
            model.generate("the sky is", max_new_tokens=3)


def test_weights_that_overflow_still_save_and_load_then_say_so_when_run(tmp_path):
    model = overflowing_model()
    model.save(tmp_path / "big")
    loaded = load_checkpoint(tmp_path / "big")  # finite: it loads, and says so when run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="overflowed float32"):
            loaded.run("the sky is")


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_weights_that_are_not_finite_are_refused_at_load(tmp_path, small_model, bad):
    folder = tmp_path / "model"
    small_model.save(folder)
    params = dict(small_model.params)
    wte = params["transformer.wte.weight"].copy()
    wte[3, 5] = bad
    params["transformer.wte.weight"] = wte
    save_file(params, folder / checkpoint.WEIGHTS_FILE, metadata={"format": "np"})
    with pytest.raises(ValueError, match=r"model.safetensors: transformer.wte.weight holds numbers that are not finite"):
        load_checkpoint(folder)
