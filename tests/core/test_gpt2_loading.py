"""Loading GPT-2-family checkpoints in Hugging Face's layout (random weights written by
tests/helpers/gpt2.py): key styles, tied head, buffers, float16/bfloat16, shards, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers.gpt2 import (
    GPT2_EOS_ID,
    GPT2_VOCAB_SIZE,
    bfloat16_to_float32,
    random_gpt2_weights,
    small_gpt2,
    to_bfloat16_bits,
    write_raw_safetensors,
)
from safetensors.numpy import load_file, save_file

import core
from core.io.checkpoint import is_checkpoint

SMALL = {"n_layer": 2, "n_embd": 32, "n_positions": 64}
# the process's peak resident memory in kB (VmHWM starts afresh at exec, unlike ru_maxrss, which a
# child inherits from the large pytest process that forked it)
PEAK_KB = ("int(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))")


def expected_weights(vocab_size, seed=0):
    return random_gpt2_weights(SMALL["n_layer"], SMALL["n_embd"], SMALL["n_positions"], vocab_size, seed)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small corpus-BPE checkpoint in the default style: float32, prefixed names, tied."""
    return core.load_checkpoint(small_gpt2(tmp_path_factory.mktemp("ref") / "m", vocab="corpus"))


def assert_same_weights(model, reference, rtol=0.0):
    assert model.params.keys() == reference.params.keys()
    for name, value in reference.params.items():
        np.testing.assert_allclose(model.params[name], value, rtol=rtol, atol=rtol * 0.05)


def test_gpt2_layout_loads_with_gpt2_names_and_a_tied_head(reference):
    assert reference.config.tied and reference.config.activation == "gelu_new"
    assert "lm_head.weight" not in reference.params  # the head IS wte: no second array
    assert reference.tokenizer.kind == "bpe"
    weights = expected_weights(reference.config.vocab_size)
    np.testing.assert_array_equal(reference.params["transformer.wte.weight"], weights["wte.weight"])
    ids = reference.tokenizer.encode("the sky is blue")
    logits = reference.forward(ids)
    trace = reference.run("the sky is blue")
    wte = reference.params["transformer.wte.weight"]
    np.testing.assert_allclose(logits, trace.final_ln @ wte.T, rtol=1e-5, atol=1e-5)


def test_the_tied_head_shares_the_embedding_array(tmp_path):
    model = core.load_checkpoint(small_gpt2(tmp_path / "m", vocab="corpus"))
    wte = model.params["transformer.wte.weight"]
    before = model.forward([1, 2, 3])
    changed = dict(model.params)
    changed["transformer.wte.weight"] = np.array(wte)
    changed["transformer.wte.weight"][:, 0] += 1.0  # change wte: the head changes with it
    after = core.Model(model.config, changed, model.tokenizer).forward([1, 2, 3])
    assert not np.allclose(before, after)
    assert model.parameter_count == sum(v.size for v in model.params.values())


def test_an_untied_head_is_its_own_matrix(tmp_path):
    model = core.load_checkpoint(small_gpt2(tmp_path / "m", vocab="corpus", tied=False))
    assert not model.config.tied and model.params["lm_head.weight"].shape == (model.config.vocab_size, 32)
    assert not np.shares_memory(model.params["lm_head.weight"], model.params["transformer.wte.weight"])


@pytest.mark.parametrize("options", [{"prefix": False}, {"buffers": True}, {"buffers": True, "prefix": False},
                                     {"sharded": True}, {"tokenizer_json": True}], ids=str)
def test_every_layout_gives_the_same_model(reference, tmp_path, options):
    model = core.load_checkpoint(small_gpt2(tmp_path / "m", vocab="corpus", **options))
    assert model.config == reference.config
    assert model.tokenizer.tokens == reference.tokenizer.tokens
    assert_same_weights(model, reference)


def test_float16_weights_become_float32(reference, tmp_path):
    model = core.load_checkpoint(small_gpt2(tmp_path / "m", vocab="corpus", dtype="float16"))
    assert {value.dtype for value in model.params.values()} == {np.dtype(np.float32)}
    for name, value in reference.params.items():
        np.testing.assert_array_equal(model.params[name], value.astype(np.float16).astype(np.float32))


def test_bfloat16_weights_become_float32(reference, tmp_path):
    model = core.load_checkpoint(small_gpt2(tmp_path / "m", vocab="corpus", dtype="bfloat16", sharded=True))
    assert {value.dtype for value in model.params.values()} == {np.dtype(np.float32)}
    for name, value in reference.params.items():
        np.testing.assert_array_equal(model.params[name], bfloat16_to_float32(to_bfloat16_bits(value)))
    assert_same_weights(model, reference, rtol=1e-2)


def test_n_inner_and_other_activations(tmp_path):
    folder = small_gpt2(tmp_path / "m", vocab="corpus", activation="quick_gelu")
    model = core.load_checkpoint(folder)
    assert model.config.activation == "quick_gelu" and model.config.d_mlp == 128
    trace = model.run("the sky is")
    pre = trace["blocks.0.mlp.hook_pre"]
    np.testing.assert_allclose(trace["blocks.0.mlp.hook_post"], pre / (1 + np.exp(-1.702 * pre)), rtol=1e-5, atol=1e-6)


def test_gpt2_vocabulary_ids_are_gpt2s(tmp_path):
    model = core.load_checkpoint(small_gpt2(tmp_path / "m"))
    assert model.config.vocab_size == GPT2_VOCAB_SIZE and model.tokenizer.eos_id == GPT2_EOS_ID
    assert model.tokenizer.encode("Hello world") == [15496, 995]
    assert is_checkpoint(tmp_path / "m")


# --- refused -------------------------------------------------------------------------------------

def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def refused(folder, match):
    with pytest.raises(ValueError, match=match) as error:
        core.load_checkpoint(folder)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_another_model_type_is_refused_saying_what_is_supported(tmp_path):
    folder = small_gpt2(tmp_path / "m", vocab="corpus")
    edit_config(folder, model_type="falcon")  # llama, qwen2, qwen3 and mistral are read (test_llama_family)
    message = refused(folder, "falcon")
    assert "gpt2" in message and "llama" in message and str(folder / "config.json") in message


def test_an_unknown_activation_is_refused_listing_the_supported(tmp_path):
    folder = small_gpt2(tmp_path / "m", vocab="corpus")
    edit_config(folder, activation_function="xielu")
    assert "gelu_new" in refused(folder, "xielu")


def test_a_pickle_only_folder_is_refused_saying_why(tmp_path):
    folder = small_gpt2(tmp_path / "m", vocab="corpus")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    message = refused(folder, "pickle")
    assert "run any code" in message and "safetensors" in message
    (folder / "config.json").unlink()
    refused(folder, "pickle")


@pytest.mark.parametrize("damage", ["config", "tokenizer", "merges", "weights", "shard", "index"])
def test_missing_files_are_named(tmp_path, damage):
    folder = small_gpt2(tmp_path / "m", vocab="corpus", sharded=damage in ("shard", "index"))
    target = {"config": "config.json", "tokenizer": "vocab.json", "merges": "merges.txt",
              "weights": "model.safetensors", "shard": "model-00002-of-00003.safetensors",
              "index": "model.safetensors.index.json"}[damage]
    (folder / target).unlink()
    message = refused(folder, "missing|no tokenizer")
    assert str(folder) in message


def test_unexpected_tensors_and_a_head_the_config_ties_are_errors(tmp_path):
    folder = small_gpt2(tmp_path / "m", vocab="corpus")
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({**tensors, "transformer.h.0.attn.extra": np.zeros(3, np.float32)}, str(folder / "model.safetensors"))
    refused(folder, "unexpected tensor")
    save_file({**tensors, "lm_head.weight": tensors["transformer.wte.weight"]}, str(folder / "model.safetensors"))
    refused(folder, "tie_word_embeddings false")
    save_file({**tensors, "transformer.h.5.attn.bias": np.zeros((1, 1, 64, 64), np.float32)},
              str(folder / "model.safetensors"))
    refused(folder, "unexpected tensor")  # a buffer of a layer that does not exist
    save_file({**tensors, "wte.weight": tensors["transformer.wte.weight"]}, str(folder / "model.safetensors"))
    refused(folder, "twice")


def test_wrong_shapes_and_offsets_are_caught_from_the_header(tmp_path):
    folder = small_gpt2(tmp_path / "m", vocab="corpus")
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["transformer.wpe.weight"] = np.zeros((63, 32), np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    refused(folder, r"shape \(63, 32\)")
    raw = {name: ("F32", value.shape, value.tobytes()) for name, value in load_file(
        str(small_gpt2(tmp_path / "n", vocab="corpus") / "model.safetensors")).items()}
    name = "transformer.ln_f.bias"
    raw[name] = ("F32", (32,), raw[name][2][:-4])  # 4 bytes short of its shape
    write_raw_safetensors(folder / "model.safetensors", raw)
    refused(folder, "data_offsets")


def test_a_model_too_large_for_memory_is_refused_before_reading(tmp_path):
    folder = small_gpt2(tmp_path / "m", vocab="corpus")
    edit_config(folder, n_layer=128, n_embd=8192, n_head=64, n_positions=8192)
    refused(folder, "GB of memory available")


def test_a_checkpoint_bomb_is_refused_without_allocating(tmp_path):
    """A header declaring an extra 3 GiB tensor over a sparse file: refused from the header,
    with the process's peak memory far below 3 GiB (measured in a subprocess)."""
    folder = small_gpt2(tmp_path / "m", vocab="corpus")
    tensors = {name: ("F32", value.shape, value.tobytes())
               for name, value in load_file(str(folder / "model.safetensors")).items()}
    size = 3 * 2**30
    header = {name: {"dtype": dtype, "shape": list(shape), "data_offsets": [0, 0]}
              for name, (dtype, shape, _) in tensors.items()}
    offset = 0
    for name, (_, _, data) in tensors.items():
        header[name]["data_offsets"] = [offset, offset + len(data)]
        offset += len(data)
    header["transformer.h.0.attn.bomb"] = {"dtype": "F32", "shape": [size // 4], "data_offsets": [offset, offset + size]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(folder / "model.safetensors", "wb") as file:
        file.write(len(text).to_bytes(8, "little") + text + b"".join(data for _, _, data in tensors.values()))
        file.truncate(8 + len(text) + offset + size)  # sparse: the 3 GiB take no disk space
    script = textwrap.dedent(f"""
        import core
        try:
            core.load_checkpoint({str(folder)!r})
        except ValueError as error:
            print("refused:", error)
        print({PEAK_KB})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    refusal, peak_kb = result.stdout.strip().splitlines()
    assert refusal.startswith("refused:") and "bomb" in refusal
    assert int(peak_kb) < 400_000  # about 100 MB for Python and NumPy; 3 GiB if the tensor were read


def test_gpt2_small_loads_without_holding_the_weights_twice(gpt2_models_dir):
    """Resident memory after loading GPT-2 small stays under 1.2x its weights (float32 weights are
    read once into their arrays, never copied); measured in a fresh subprocess, peak included."""
    script = textwrap.dedent(f"""
        import resource
        import core
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
        before = rss()
        model = core.load_checkpoint({str(gpt2_models_dir / "gpt2-random")!r})
        weights = sum(value.nbytes for value in model.params.values())
        print(weights, rss() - before, {PEAK_KB} * 1024 - before)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    weights, grown, peak = map(int, result.stdout.split())
    assert weights == 124_439_808 * 4
    assert grown < 1.2 * weights and peak < 1.2 * weights


def test_a_gpt2_model_saves_and_loads_back(tmp_path):
    model = core.load_checkpoint(small_gpt2(tmp_path / "hf", vocab="corpus"))
    again = core.load_checkpoint(model.save(tmp_path / "saved"))
    assert again.config == model.config and again.config.tied and "lm_head.weight" not in again.params
    assert again.tokenizer.kind == "bpe" and again.tokenizer.tokens == model.tokenizer.tokens
    assert_same_weights(again, model)


def test_huge_numbers_in_a_header_are_a_clear_error(tmp_path):
    folder = small_gpt2(tmp_path / "m", vocab="corpus")
    raw = {name: ("F32", value.shape, value.tobytes()) for name, value in load_file(
        str(folder / "model.safetensors")).items()}
    raw["transformer.ln_f.bias"] = ("F32", (10**4000, 10**4000), raw["transformer.ln_f.bias"][2])
    write_raw_safetensors(folder / "model.safetensors", raw)
    assert str(folder / "model.safetensors") in refused(folder, "invalid shape")
