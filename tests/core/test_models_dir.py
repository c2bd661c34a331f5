"""The models folder: names only, never a path; never over an existing name; zip download."""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
from helpers.models import random_model

from core import load_checkpoint
from core.io import models_dir


@pytest.fixture
def root(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv(models_dir.ROOT_VARIABLE, str(folder))
    return folder


def test_root_comes_from_the_environment_with_a_default(root, monkeypatch):
    assert models_dir.models_root() == root
    monkeypatch.delenv(models_dir.ROOT_VARIABLE)
    assert models_dir.models_root() == models_dir.Path("models")


@pytest.mark.parametrize("name", ["a", "my-model_2", "X" * 40])
def test_valid_names(name):
    assert models_dir.check_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "/tmp/x", ".", "..", ".hidden", "a b", "x" * 41, "é",
                                  "a\x00b", "name.json", None, 5])
def test_invalid_names_are_refused(name):
    with pytest.raises(ValueError, match="not allowed"):
        models_dir.check_name(name)


def test_a_very_long_name_is_not_echoed_in_full():
    with pytest.raises(ValueError) as caught:
        models_dir.check_name("x" * 5000)
    assert len(str(caught.value)) < 200


def test_no_root_means_no_names_and_the_first_save_creates_it(root, small_model):
    assert models_dir.checkpoint_names() == []
    assert not root.exists()
    assert models_dir.save_named(small_model, "first") == "first"
    assert root.is_dir()
    assert models_dir.checkpoint_names() == ["first"]
    loaded = models_dir.load_named("first")
    for name, value in small_model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)


def test_saving_with_history_writes_it(root, small_model):
    records = [{"step": 1, "train_loss": 2.5}]
    models_dir.save_named(small_model, "trained", history=records)
    assert json.loads((root / "trained" / "history.json").read_text()) == records


def test_an_existing_name_is_never_overwritten(root, small_model):
    models_dir.save_named(small_model, "taken")
    before = (root / "taken" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already exists.*'taken-2'") as caught:
        models_dir.save_named(random_model(seed=1), "taken")
    assert (root / "taken" / "model.safetensors").read_bytes() == before
    assert str(root) not in str(caught.value)


def test_a_name_held_by_a_plain_file_or_folder_is_not_replaced(root, small_model):
    root.mkdir()
    (root / "notes").write_text("keep me")
    (root / "folder").mkdir()
    (root / "folder" / "config.json").write_text("{}")
    for name in ("notes", "folder"):
        with pytest.raises(ValueError, match="already exists"):
            models_dir.save_named(small_model, name)
    assert (root / "notes").read_text() == "keep me"
    assert (root / "folder" / "config.json").read_text() == "{}"
    assert models_dir.checkpoint_names() == []  # neither is a checkpoint


def test_free_name_counts_up(root, small_model):
    assert models_dir.free_name("run") == "run"
    models_dir.save_named(small_model, "run")
    models_dir.save_named(small_model, models_dir.free_name("run"))
    assert models_dir.checkpoint_names() == ["run", "run-2"]
    assert models_dir.free_name("run") == "run-3"


def test_free_name_stays_within_the_length_limit(root, small_model):
    stem = "y" * models_dir.MAX_NAME
    models_dir.save_named(small_model, stem)
    other = models_dir.free_name(stem)
    assert models_dir.check_name(other) == other and other.endswith("-2")


def test_symlinks_are_not_listed_or_loaded(root, small_model, tmp_path):
    outside = tmp_path / "outside"
    models_dir.save_named(small_model, "real")
    os.rename(root / "real", outside)
    root.joinpath("linked").symlink_to(outside, target_is_directory=True)
    assert models_dir.checkpoint_names() == []
    with pytest.raises(ValueError, match="no saved model named 'linked'"):
        models_dir.load_named("linked")
    with pytest.raises(ValueError, match="already exists"):
        models_dir.save_named(small_model, "linked")


def test_loading_a_missing_or_broken_model_names_the_model_not_the_path(root, small_model):
    with pytest.raises(ValueError, match="no saved model named 'nothing'"):
        models_dir.load_named("nothing")
    models_dir.save_named(small_model, "broken")
    (root / "broken" / "config.json").write_text("not json")
    with pytest.raises(ValueError) as caught:
        models_dir.load_named("broken")
    assert "broken" in str(caught.value) and str(root) not in str(caught.value)
    with pytest.raises(ValueError, match="not allowed"):
        models_dir.load_named("../broken")


def test_checkpoint_zip_holds_a_loadable_checkpoint(root, small_model, tmp_path):
    records = [{"step": 1, "train_loss": 2.0}]
    data = models_dir.checkpoint_zip(small_model, history=records)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        assert {"config.json", "model.safetensors", "vocab.json", "history.json"} <= names
        assert all("/" not in name for name in names)
        archive.extractall(tmp_path / "unzipped")
    loaded = load_checkpoint(tmp_path / "unzipped")
    for name, value in small_model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    assert not root.exists()  # a download writes nothing into the models folder
