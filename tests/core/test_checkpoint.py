"""Tests for core.io.checkpoint: round trips, GPT-2's layout on disk, and every kind of broken
checkpoint turned into a clear ValueError."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers.models import random_model
from safetensors.numpy import load_file, save_file

import core
from core import load_checkpoint
from core.io.checkpoint import history_text, is_checkpoint, load_history, save_checkpoint


@pytest.fixture(scope="module")
def model():
    return random_model(seed=3)


@pytest.fixture
def saved(model, tmp_path):
    return model.save(tmp_path / "checkpoint")


def assert_same_model(first, second):
    assert first.config == second.config
    assert first.tokenizer.tokens == second.tokenizer.tokens
    assert first.params.keys() == second.params.keys()
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], second.params[name])
        assert first.params[name].dtype == second.params[name].dtype


def test_round_trip_gives_the_same_model(model, saved):
    loaded = load_checkpoint(saved)
    assert_same_model(model, loaded)
    ids = np.array(model.tokenizer.encode("the sky is"))
    np.testing.assert_array_equal(loaded.forward(ids), model.forward(ids))


def test_float64_round_trip(tmp_path):
    model = random_model(dtype=np.float64)
    assert_same_model(model, load_checkpoint(model.save(tmp_path / "f64")))


def test_files_use_gpt2_names_and_layouts(model, saved):
    assert sorted(os.listdir(saved)) == ["config.json", "model.safetensors", "vocab.json"]
    config = json.loads((saved / "config.json").read_text())
    eos = model.tokenizer.eos_id
    assert config["model_type"] == "gpt2" and config["activation_function"] == "gelu_new"
    assert config["tie_word_embeddings"] is False and config["bos_token_id"] == config["eos_token_id"] == eos
    assert (config["vocab_size"], config["n_positions"], config["n_embd"], config["n_layer"], config["n_head"]) == (
        model.config.vocab_size, 32, 32, 2, 4)
    assert config["layer_norm_epsilon"] == 1e-5 and config["n_inner"] is None
    tensors = load_file(str(saved / "model.safetensors"))
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (32, 96)
    assert tensors["lm_head.weight"].shape == (model.config.vocab_size, 32)
    assert json.loads((saved / "vocab.json").read_text()) == model.tokenizer.to_vocab_dict()


def test_saving_over_a_checkpoint_replaces_it_only_when_asked(model, saved):
    other = random_model(seed=4)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        other.save(saved)
    assert_same_model(model, load_checkpoint(saved))
    (saved / "history.json").write_text("[]")
    other.save(saved, overwrite=True)
    assert_same_model(other, load_checkpoint(saved))
    assert not (saved / "history.json").exists()  # an old history does not survive beside new weights
    assert sorted(os.listdir(saved.parent)) == ["checkpoint"]  # no temporary folder left behind


def test_saving_onto_a_file_is_refused(model, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        model.save(target)


def test_the_default_checkpoint_loads_and_is_small():
    model = core.load_default()
    assert model.config.n_positions >= 32 and model.tokenizer.vocab_size == model.config.vocab_size
    assert sum(path.stat().st_size for path in core.DEFAULT_CHECKPOINT.iterdir()) < 5_000_000
    assert core.load_model(None).config == model.config


# --- broken checkpoints ------------------------------------------------------------------------

def rewrite_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def rewrite_tensors(path, change):
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BROKEN = {
    "truncated weights": lambda c: truncate(c / "model.safetensors"),
    "random bytes for weights": lambda c: (c / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096)),
    "empty weights": lambda c: (c / "model.safetensors").write_bytes(b""),
    "header only": lambda c: (c / "model.safetensors").write_bytes((c / "model.safetensors").read_bytes()[:9]),
    "missing weights": lambda c: (c / "model.safetensors").unlink(),
    "missing config": lambda c: (c / "config.json").unlink(),
    "missing vocab": lambda c: (c / "vocab.json").unlink(),
    "config not json": lambda c: (c / "config.json").write_text("{not json"),
    "config binary": lambda c: (c / "config.json").write_bytes(b"\xff\xfe\x00garbage"),
    "config empty": lambda c: (c / "config.json").write_text(""),
    "config a list": lambda c: (c / "config.json").write_text("[1, 2]"),
    "config string size": lambda c: rewrite_json(c / "config.json", lambda d: d.update(n_embd="32")),
    "config float layers": lambda c: rewrite_json(c / "config.json", lambda d: d.update(n_layer=2.0)),
    "config zero layers": lambda c: rewrite_json(c / "config.json", lambda d: d.update(n_layer=0)),
    "config huge context": lambda c: rewrite_json(c / "config.json", lambda d: d.update(n_positions=10**9)),
    "config heads do not divide": lambda c: rewrite_json(c / "config.json", lambda d: d.update(n_head=5)),
    "config negative epsilon": lambda c: rewrite_json(c / "config.json", lambda d: d.update(layer_norm_epsilon=-1)),
    "config missing key": lambda c: rewrite_json(c / "config.json", lambda d: d.pop("n_head")),
    "config other model": lambda c: rewrite_json(c / "config.json", lambda d: d.update(model_type="llama")),
    "config other activation": lambda c: rewrite_json(c / "config.json", lambda d: d.update(activation_function="xielu")),
    "config activation a list": lambda c: rewrite_json(c / "config.json", lambda d: d.update(activation_function=[1])),
    "config deeply nested": lambda c: (c / "config.json").write_text("[" * 100_000 + "]" * 100_000),
    "config huge integer": lambda c: (c / "config.json").write_text('{"n_layer": 1' + "0" * 5000 + "}"),
    "config huge epsilon": lambda c: rewrite_json(c / "config.json", lambda d: d.update(layer_norm_epsilon=10**400)),
    "vocab deeply nested": lambda c: (c / "vocab.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "config tied": lambda c: rewrite_json(c / "config.json", lambda d: d.update(tie_word_embeddings=True)),
    "config wrong eos": lambda c: rewrite_json(c / "config.json", lambda d: d.update(eos_token_id=5)),
    "config wrong vocab size": lambda c: rewrite_json(c / "config.json", lambda d: d.update(vocab_size=100)),
    "vocab not json": lambda c: (c / "vocab.json").write_text("]["),
    "vocab a list": lambda c: (c / "vocab.json").write_text('["a", "b"]'),
    "vocab gap in ids": lambda c: rewrite_json(c / "vocab.json", lambda d: d.update({"the": 10_000})),
    "vocab string ids": lambda c: rewrite_json(c / "vocab.json", lambda d: d.update({"the": "3"})),
    "vocab extra token": lambda c: rewrite_json(c / "vocab.json", lambda d: d.update({"zebra": len(d)})),
    "weights missing key": lambda c: rewrite_tensors(c / "model.safetensors", lambda t: t.pop("lm_head.weight")),
    "weights extra key": lambda c: rewrite_tensors(c / "model.safetensors", lambda t: t.update(extra=np.zeros(2))),
    "weights wrong shape": lambda c: rewrite_tensors(
        c / "model.safetensors", lambda t: t.update({"transformer.wpe.weight": np.zeros((16, 32), np.float32)})),
    "weights transposed": lambda c: rewrite_tensors(
        c / "model.safetensors", lambda t: t.update({"transformer.h.0.attn.c_attn.weight":
                                                     np.zeros((96, 32), np.float32)})),
    "weights int": lambda c: rewrite_tensors(
        c / "model.safetensors", lambda t: t.update({"transformer.ln_f.bias": np.zeros(32, np.int32)})),
    "weights header lies about size": lambda c: (c / "model.safetensors").write_bytes(
        (10**6).to_bytes(8, "little") + (c / "model.safetensors").read_bytes()[8:]),
    "weights header deeply nested": lambda c: (c / "model.safetensors").write_bytes(
        (200_000).to_bytes(8, "little") + b"[" * 100_000 + b"]" * 100_000),
    "weights mixed float64": lambda c: rewrite_tensors(
        c / "model.safetensors", lambda t: t.update({"transformer.ln_f.bias": np.zeros(32, np.float64)})),
    "weights nan": lambda c: rewrite_tensors(
        c / "model.safetensors", lambda t: t.update({"transformer.ln_f.bias": np.full(32, np.nan, np.float32)})),
    "weights inf": lambda c: rewrite_tensors(
        c / "model.safetensors", lambda t: t["lm_head.weight"].__setitem__((0, 0), np.inf)),
    "weights a directory": lambda c: ((c / "model.safetensors").unlink(), (c / "model.safetensors").mkdir()),
}


@pytest.mark.parametrize("damage", BROKEN.values(), ids=BROKEN.keys())
def test_broken_checkpoints_raise_a_clear_value_error(saved, damage):
    damage(saved)
    with pytest.raises(ValueError) as error:
        load_checkpoint(saved)
    assert str(saved) in str(error.value)  # the message names the checkpoint's file
    assert "\n" not in str(error.value)


def test_the_default_history_is_written_byte_for_byte():
    text = (core.DEFAULT_CHECKPOINT / "history.json").read_text(encoding="utf-8")
    assert history_text(json.loads(text)) == text


def test_history_is_saved_with_the_checkpoint(model, tmp_path):
    records = [{"step": 1, "train_loss": 2.5}, {"step": 2, "train_loss": 2.0}]
    saved = save_checkpoint(model, tmp_path / "with-history", history=records)
    assert load_history(saved) == records
    assert (saved / "history.json").read_text() == history_text(records)


def test_is_checkpoint(saved, tmp_path):
    assert is_checkpoint(saved)
    assert not is_checkpoint(tmp_path / "nothing") and not is_checkpoint(saved / "config.json")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    assert not is_checkpoint(tmp_path / "half")


@pytest.mark.parametrize("path", ["does/not/exist", __file__])
def test_a_path_that_is_not_a_checkpoint_directory(path):
    with pytest.raises(ValueError, match="no checkpoint directory"):
        load_checkpoint(path)


def test_history_is_optional_and_checked(saved):
    assert load_history(saved) is None
    (saved / "history.json").write_text(json.dumps([{"step": 1, "train_loss": 2.0}]))
    assert load_history(saved) == [{"step": 1, "train_loss": 2.0}]
    assert load_checkpoint(saved).config.n_layer == 2  # history does not disturb loading
    (saved / "history.json").write_text('{"step": 1}')
    with pytest.raises(ValueError, match="list of records"):
        load_history(saved)


def test_save_checkpoint_checks_the_parameters(model, tmp_path):
    model.params["lm_head.weight"][0, 0] = np.nan
    try:
        with pytest.raises(ValueError, match="NaN"):
            save_checkpoint(model, tmp_path / "bad")
    finally:
        model.params["lm_head.weight"][0, 0] = 0.0


# --- saving that cannot destroy -----------------------------------------------------------------

def test_a_folder_that_is_not_a_checkpoint_is_never_replaced(model, tmp_path):
    target = tmp_path / "home"
    target.mkdir()
    (target / "config.json").write_text('{"mine": true}')  # someone else's config.json
    (target / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="not a Glassbox checkpoint"):
            model.save(target, overwrite=overwrite)
    assert (target / "config.json").read_text() == '{"mine": true}' and (target / "notes.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["home"]


def test_a_checkpoint_with_foreign_files_is_not_replaced(model, saved):
    (saved / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a Glassbox checkpoint"):
        model.save(saved, overwrite=True)
    assert (saved / "notes.txt").read_text() == "keep me"


def test_an_empty_folder_is_filled(model, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_same_model(model, load_checkpoint(model.save(tmp_path / "empty")))


def test_a_failed_save_leaves_the_old_checkpoint_whole(model, saved, monkeypatch):
    before = {name: (saved / name).read_bytes() for name in os.listdir(saved)}

    def broken_writer(tensors, filename, metadata=None):
        with open(filename, "wb") as file:
            file.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr("core.io.checkpoint.save_file", broken_writer)
    with pytest.raises(ValueError, match="could not save checkpoint: disk full"):  # one sentence, no server path
        random_model(seed=5).save(saved, overwrite=True)
    assert {name: (saved / name).read_bytes() for name in os.listdir(saved)} == before
    assert sorted(os.listdir(saved.parent)) == ["checkpoint"]  # no .partial folder or file left
    with pytest.raises(ValueError, match="could not save new: disk full"):
        model.save(saved.parent / "new")
    assert not (saved.parent / "new").exists() and sorted(os.listdir(saved.parent)) == ["checkpoint"]


def test_symbolic_links_are_not_followed(model, saved, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tmp_path / "link"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="symbolic link"):
        model.save(link, overwrite=True)
    assert os.listdir(outside) == []
    checkpoint_link = tmp_path / "checkpoint-link"
    checkpoint_link.symlink_to(saved, target_is_directory=True)
    with pytest.raises(ValueError, match="symbolic link"):
        random_model(seed=6).save(checkpoint_link, overwrite=True)
    assert_same_model(model, load_checkpoint(saved))
    # a link inside a checkpoint: replacing the checkpoint removes the link, never its target
    precious = tmp_path / "precious.json"
    precious.write_text("{}")
    (saved / "history.json").symlink_to(precious)
    with pytest.raises(ValueError, match="not a Glassbox checkpoint"):
        model.save(saved, overwrite=True)
    assert precious.read_text() == "{}"


@pytest.mark.parametrize("escape", ["../x", "a/../../y", "sub/../../../z"])
def test_relative_targets_land_where_they_say(model, tmp_path, monkeypatch, escape):
    """A path is the caller's to choose (the dashboard never takes one): it is written exactly
    there, with its parents, and never over something else."""
    base = tmp_path / "one" / "two" / "three"
    base.mkdir(parents=True)
    monkeypatch.chdir(base)
    saved = model.save(escape)
    assert is_checkpoint(base / escape)
    with pytest.raises(ValueError, match="already holds"):
        model.save(escape)
    assert_same_model(model, load_checkpoint(saved))
