"""GPT-2-family checkpoints for the tests: random weights written in Hugging Face's layout.

`write_gpt2_checkpoint(folder, ...)` writes what `GPT2LMHeadModel.save_pretrained` and the
hub's `gpt2` repository hold: config.json (model_type gpt2), model.safetensors (or shards and
model.safetensors.index.json) and the tokenizer as vocab.json + merges.txt (or tokenizer.json).
GPT-2's own weights are never available here, so the weights are random at GPT-2's
initialisation scale; the tokenizer is GPT-2's real one (tests/data/gpt2-tokenizer) or a small
byte-level BPE trained with `tokenizers` on the bundled corpus.
"""
from __future__ import annotations

import json
import math
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from helpers import ROOT

GPT2_TOKENIZER_DIR = ROOT / "tests" / "data" / "gpt2-tokenizer"
GPT2_NAME = "gpt2-random"  # the GPT-2-small-shaped checkpoint in the gpt2_models_dir fixture
GPT2_VOCAB_SIZE = 50257
GPT2_EOS_ID = 50256
INIT_STD = 0.02  # GPT-2's initializer_range
CORPUS_BPE_SIZE = 400  # the small corpus BPE: 256 bytes, <|endoftext|> and merges


def gpt2_names(n_layer: int) -> list[str]:
    """GPT-2's parameter names inside `transformer.` (no lm_head), in Hugging Face's order."""
    block = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
             "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
             "mlp.c_proj.weight", "mlp.c_proj.bias"]
    return ["wte.weight", "wpe.weight", *(f"h.{i}.{name}" for i in range(n_layer) for name in block),
            "ln_f.weight", "ln_f.bias"]


def gpt2_shapes(n_layer: int, n_embd: int, n_positions: int, vocab_size: int) -> dict[str, tuple[int, ...]]:
    C = n_embd
    shapes = {"ln_1.weight": (C,), "ln_1.bias": (C,), "attn.c_attn.weight": (C, 3 * C), "attn.c_attn.bias": (3 * C,),
              "attn.c_proj.weight": (C, C), "attn.c_proj.bias": (C,), "ln_2.weight": (C,), "ln_2.bias": (C,),
              "mlp.c_fc.weight": (C, 4 * C), "mlp.c_fc.bias": (4 * C,), "mlp.c_proj.weight": (4 * C, C),
              "mlp.c_proj.bias": (C,), "wte.weight": (vocab_size, C), "wpe.weight": (n_positions, C),
              "ln_f.weight": (C,), "ln_f.bias": (C,)}
    return {name: shapes[name.split(".", 2)[-1] if name.startswith("h.") else name] for name in gpt2_names(n_layer)}


def random_gpt2_weights(n_layer, n_embd, n_positions, vocab_size, seed=0) -> dict[str, np.ndarray]:
    """float32 weights at GPT-2's scale: N(0, 0.02), residual projections (c_proj) scaled by
    1/sqrt(2 n_layer); biases N(0, 0.02) and LayerNorm weights 1 + N(0, 0.02) rather than
    GPT-2's exact 0 and 1, so that every bias and gain is exercised by the comparisons."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in gpt2_shapes(n_layer, n_embd, n_positions, vocab_size).items():
        std = INIT_STD / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else INIT_STD
        value = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        weights[name] = value + np.float32(1.0) if ".ln_" in name or name.startswith("ln_") else value
    return weights


def attention_buffers(n_layer: int, n_positions: int) -> dict[str, np.ndarray]:
    """The non-parameter buffers older exports carry: the causal mask and the masking constant."""
    mask = np.tril(np.ones((n_positions, n_positions), dtype=np.float32))[None, None]  # [1, 1, P, P]
    buffers = {}
    for layer in range(n_layer):
        buffers[f"h.{layer}.attn.bias"] = mask
        buffers[f"h.{layer}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    return buffers


def to_bfloat16_bits(value: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 as uint16 bit patterns (round to nearest even); NumPy has no bfloat16."""
    bits = np.ascontiguousarray(value, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def write_raw_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]],
                          metadata: dict | None = None) -> None:
    """A safetensors file written by hand, from {name: (dtype code, shape, raw bytes)}: for dtypes
    NumPy lacks (BF16) and for deliberately broken files in the tests."""
    header, offset = {}, 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    with open(path, "wb") as file:
        file.write(len(text).to_bytes(8, "little"))
        file.write(text)
        for _, _, data in tensors.values():
            file.write(data)


def write_weights_file(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """Write float32 `tensors` as one safetensors file in `dtype` (float32, float16 or bfloat16)."""
    if dtype == "bfloat16":
        write_raw_safetensors(path, {name: ("BF16", value.shape, to_bfloat16_bits(value).tobytes())
                                     for name, value in tensors.items()}, {"format": "pt"})
    else:
        save_file({name: np.ascontiguousarray(value, dtype=dtype) for name, value in tensors.items()},
                  path, metadata={"format": "pt"})


def write_sharded(folder: Path, tensors: dict[str, np.ndarray], dtype: str, shards: int = 3) -> None:
    """`tensors` split over model-0000i-of-0000n.safetensors plus model.safetensors.index.json."""
    names = list(tensors)
    groups = [names[i::shards] for i in range(shards)]
    weight_map, itemsize = {}, 4 if dtype == "float32" else 2
    for index, group in enumerate(groups, start=1):
        file_name = f"model-{index:05d}-of-{shards:05d}.safetensors"
        write_weights_file(folder / file_name, {name: tensors[name] for name in group}, dtype)
        weight_map.update(dict.fromkeys(group, file_name))
    total = sum(value.size * itemsize for value in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


@lru_cache(maxsize=1)
def corpus_bpe():
    """A small byte-level BPE (vocab CORPUS_BPE_SIZE) trained with `tokenizers` on the bundled corpus."""
    from tokenizers import ByteLevelBPETokenizer

    from core.text.corpus import load_corpus

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(load_corpus(), vocab_size=CORPUS_BPE_SIZE, min_frequency=2,
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    return tokenizer


def write_tokenizer(folder: Path, vocab: str, tokenizer_json: bool) -> tuple[int, int]:
    """Write the tokenizer files; returns (vocab_size, end-of-text id)."""
    if vocab == "gpt2":
        if tokenizer_json:
            from tokenizers import Tokenizer, decoders, pre_tokenizers
            from tokenizers.models import BPE

            tokenizer = Tokenizer(BPE.from_file(str(GPT2_TOKENIZER_DIR / "vocab.json"),
                                                str(GPT2_TOKENIZER_DIR / "merges.txt")))
            tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tokenizer.decoder = decoders.ByteLevel()
            tokenizer.save(str(folder / "tokenizer.json"))
        else:
            shutil.copyfile(GPT2_TOKENIZER_DIR / "vocab.json", folder / "vocab.json")
            shutil.copyfile(GPT2_TOKENIZER_DIR / "merges.txt", folder / "merges.txt")
        return GPT2_VOCAB_SIZE, GPT2_EOS_ID
    if vocab == "corpus":
        tokenizer = corpus_bpe()
        if tokenizer_json:
            tokenizer.save(str(folder / "tokenizer.json"))
        else:
            tokenizer.save_model(str(folder))
        return tokenizer.get_vocab_size(), tokenizer.token_to_id("<|endoftext|>")
    raise ValueError(f"vocab must be 'gpt2' or 'corpus', got {vocab!r}")


def gpt2_config(n_layer, n_head, n_embd, n_positions, vocab_size, eos_id, dtype, tied, activation) -> dict:
    """config.json as GPT2LMHeadModel.save_pretrained writes it (the hub's gpt2 has no n_inner or
    tie_word_embeddings key; tied=False writes tie_word_embeddings false)."""
    config = {"activation_function": activation, "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
              "bos_token_id": eos_id, "embd_pdrop": 0.1, "eos_token_id": eos_id, "initializer_range": INIT_STD,
              "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": n_positions, "n_embd": n_embd,
              "n_head": n_head, "n_inner": None, "n_layer": n_layer, "n_positions": n_positions,
              "resid_pdrop": 0.1, "scale_attn_weights": True, "summary_activation": None,
              "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
              "summary_use_proj": True, "torch_dtype": dtype, "use_cache": True, "vocab_size": vocab_size}
    if not tied:
        config["tie_word_embeddings"] = False
    return config


def write_gpt2_checkpoint(folder, *, n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab="gpt2",
                          tied=True, prefix=True, buffers=False, dtype="float32", sharded=False, seed=0,
                          activation="gelu_new", tokenizer_json=False, config_overrides=None) -> Path:
    """A GPT-2-family checkpoint folder in Hugging Face's layout with random weights; returns it.

    vocab: "gpt2" (GPT-2's real 50,257-token BPE) or "corpus" (a small BPE trained on the corpus).
    tied: no lm_head.weight (the head is wte); False writes a separate random lm_head.weight.
    prefix: names under `transformer.` (GPT2LMHeadModel) or bare (`wte.weight`, as the hub's gpt2).
    buffers: also the `h.{i}.attn.bias` / `h.{i}.attn.masked_bias` buffers of older exports.
    dtype: "float32", "float16" or "bfloat16". sharded: three shards plus the index file.
    tokenizer_json: tokenizer.json instead of vocab.json + merges.txt.
    config_overrides: keys replaced in config.json (a key set to None is removed).
    """
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size, eos_id = write_tokenizer(folder, vocab, tokenizer_json)
    tensors = random_gpt2_weights(n_layer, n_embd, n_positions, vocab_size, seed)
    if buffers:
        tensors.update(attention_buffers(n_layer, n_positions))
    if prefix:
        tensors = {f"transformer.{name}": value for name, value in tensors.items()}
    if not tied:
        rng = np.random.default_rng(seed + 1)
        tensors["lm_head.weight"] = rng.standard_normal((vocab_size, n_embd), dtype=np.float32) * np.float32(INIT_STD)
    config = gpt2_config(n_layer, n_head, n_embd, n_positions, vocab_size, eos_id, dtype, tied, activation)
    for key, value in (config_overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if sharded:
        write_sharded(folder, tensors, dtype)
    else:
        write_weights_file(folder / "model.safetensors", tensors, dtype)
    return folder


def small_gpt2(folder, **options) -> Path:
    """A small GPT-2-family checkpoint for fast tests (2 layers, 4 heads, n_embd 32, context 64),
    GPT-2's real vocabulary unless `vocab` says otherwise."""
    settings = {"n_layer": 2, "n_head": 4, "n_embd": 32, "n_positions": 64, **options}
    return write_gpt2_checkpoint(folder, **settings)
