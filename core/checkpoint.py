"""Checkpoints in GPT-2's own layout, no pickle: a directory holding

    config.json         GPT-2 config keys (GPTConfig.to_hf_dict)
    model.safetensors   parameters under GPT-2's names and layouts (core.model.param_shapes)
    vocab.json          the tokenizer's vocabulary {token: id}
    history.json        optional: training records (written by core.training; read by load_history)

`load_checkpoint` validates everything and turns any problem (missing, truncated, corrupt or
inconsistent files) into one clear ValueError naming the file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from core.config import GPTConfig
from core.model import Model, check_params
from core.tokenizer import Tokenizer

CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, HISTORY_FILE = "config.json", "model.safetensors", "vocab.json", "history.json"
MAX_JSON_BYTES = 10_000_000  # no legitimate config or vocabulary is this big


def _write_atomically(path: Path, write) -> None:
    """Call write(temporary path), then move the result over `path` (no half-written file)."""
    temporary = path.with_name(path.name + ".partial")
    write(temporary)
    os.replace(temporary, path)


def _write_json(path: Path, data) -> None:
    _write_atomically(path, lambda target: target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))


def save_checkpoint(model: Model, path) -> Path:
    """Write `model` as a checkpoint directory at `path` (created if needed); returns the path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot save a checkpoint to {path}: it is a file, not a directory")
    check_params(model.params, model.config)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(value) for name, value in model.params.items()}
    weights = save(tensors, metadata={"format": "np"})  # the safetensors file's bytes
    _write_atomically(path / WEIGHTS_FILE, lambda target: target.write_bytes(weights))
    _write_json(path / CONFIG_FILE, model.config.to_hf_dict(eos_token_id=model.tokenizer.eos_id))
    _write_json(path / VOCAB_FILE, model.tokenizer.to_vocab_dict())
    return path


def _read_json(path: Path):
    if not path.is_file():
        raise ValueError(f"{path} is missing: not a checkpoint directory?")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{path} is too large ({path.stat().st_size} bytes) to be a checkpoint file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def _read_config(path: Path) -> tuple[GPTConfig, dict]:
    raw = _read_json(path)
    try:
        return GPTConfig.from_hf_dict(raw), raw
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None


def _read_tokenizer(path: Path, config: GPTConfig, raw_config: dict) -> Tokenizer:
    vocab = _read_json(path)
    try:
        tokenizer = Tokenizer.from_vocab_dict(vocab)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(f"{path} holds {tokenizer.vocab_size} tokens but config.json says "
                         f"vocab_size {config.vocab_size}")
    for key in ("bos_token_id", "eos_token_id"):
        if raw_config.get(key, tokenizer.eos_id) != tokenizer.eos_id:
            raise ValueError(f"{path.with_name(CONFIG_FILE)}: {key} is {raw_config[key]!r} but the end-of-text "
                             f"token's id in {VOCAB_FILE} is {tokenizer.eos_id}")
    return tokenizer


def _read_params(path: Path, config: GPTConfig) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ValueError(f"{path} is missing: not a checkpoint directory?")
    try:
        params = load_file(str(path))
    except (SafetensorError, ValueError, TypeError) as error:  # truncated, garbage, unsupported dtype
        raise ValueError(f"{path} is not a readable safetensors file ({error})") from None
    try:
        check_params(params, config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None
    return params


def load_checkpoint(path) -> Model:
    """The Model saved in the checkpoint directory `path`; ValueError for anything wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"no checkpoint directory at {path}")
    config, raw_config = _read_config(path / CONFIG_FILE)
    tokenizer = _read_tokenizer(path / VOCAB_FILE, config, raw_config)
    return Model(config, _read_params(path / WEIGHTS_FILE, config), tokenizer)


def load_history(path) -> list[dict] | None:
    """The training records in `path`/history.json, or None when there are none."""
    file = Path(path) / HISTORY_FILE
    if not file.exists():
        return None
    records = _read_json(file)
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise ValueError(f"{file} must hold a list of records (JSON objects)")
    return records
