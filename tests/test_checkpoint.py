"""Tests for core.checkpoint: round trips, GPT-2's layout on disk, and every kind of broken
checkpoint turned into a clear ValueError."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from model_helpers import random_model
from safetensors.numpy import load_file, save_file

import core
from core.checkpoint import load_checkpoint, load_history, save_checkpoint


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


def test_saving_over_a_checkpoint_replaces_it(model, saved):
    other = random_model(seed=4)
    other.save(saved)
    assert_same_model(other, load_checkpoint(saved))
    assert not list(saved.glob("*.partial"))


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
    "config other activation": lambda c: rewrite_json(c / "config.json", lambda d: d.update(activation_function="relu")),
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
    "weights float16": lambda c: rewrite_tensors(
        c / "model.safetensors", lambda t: t.update({"transformer.ln_f.bias": np.zeros(32, np.float16)})),
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
