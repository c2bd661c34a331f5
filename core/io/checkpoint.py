"""Checkpoint folders in GPT-2's own layout, no pickle. Glassbox writes

    config.json         GPT-2 config keys (GPTConfig.to_hf_dict)
    model.safetensors   parameters under GPT-2's names and layouts (core.model.params.param_shapes)
    vocab.json          the word-level vocabulary {token: id}  (tokenizer.json for a BPE model)
    history.json        optional: training records (history_text; read by load_history)

and reads those and any folder in Hugging Face's GPT-2 layout (gpt2, distilgpt2, gpt2-medium,
a learner's own export): config.json with model_type gpt2; model.safetensors or shards listed
in model.safetensors.index.json; names with or without the `transformer.` prefix; no
lm_head.weight when the head is tied to wte; the `h.{i}.attn.bias` / `h.{i}.attn.masked_bias`
buffers older exports carry, recognised and skipped; float16/bfloat16 converted to float32; the
tokenizer from tokenizer.json or vocab.json + merges.txt (byte-level BPE, core.text.bpe).

It also reads Hugging Face's llama-family folders (config.json model_type llama, qwen2, qwen3,
mistral): `model.layers.{i}...` names exactly as core.model.params.param_shapes lists them,
model.safetensors or shards, float32/float16/bfloat16 read as float32, validated the same way;
the tokenizer from tokenizer.json (+ tokenizer_config.json) through core.text.hf, which may have
fewer tokens than vocab_size (a padded embedding); `rotary_emb.inv_freq` buffers are skipped.

Reading validates before it allocates: each safetensors header (names, dtypes, shapes, data
offsets) is checked against the config and the file's size before any tensor is read, and the
total is bounded by what the config implies and by the memory available. Each tensor is then
read once, straight into its own array (float16/bfloat16 converted to float32): never held
twice, and not memory-mapped, so a file replaced or truncated later cannot crash a running
server (a mapped page past a truncated end is a SIGBUS). Every problem is one ValueError naming the file.

This module knows nothing of `Model` (core.model.model builds one from `read_checkpoint`'s parts
and calls `save_checkpoint`), so the two do not import each other.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import math
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from core import checks
from core.checks import is_whole
from core.model.config import GPTConfig
from core.model.params import HEAD, check_params, param_shapes
from core.text.bpe import BPETokenizer
from core.text.hf import HFTokenizer
from core.text.words import WordTokenizer

CONFIG_FILE, WEIGHTS_FILE, INDEX_FILE = "config.json", "model.safetensors", "model.safetensors.index.json"
VOCAB_FILE, MERGES_FILE, TOKENIZER_FILE = "vocab.json", "merges.txt", "tokenizer.json"
HISTORY_FILE, PICKLE_FILE = "history.json", "pytorch_model.bin"
# what a Glassbox-written checkpoint folder may hold (anything else is someone's data: never replaced)
CHECKPOINT_FILES = {CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, MERGES_FILE, TOKENIZER_FILE, HISTORY_FILE}
# every file the reader may open (shards: any *.safetensors)
READ_FILES = CHECKPOINT_FILES | {INDEX_FILE, "tokenizer_config.json", "special_tokens_map.json", PICKLE_FILE}
MAX_HEADER_BYTES = 20_000_000  # a safetensors header (GPT-2 small's: about 20 kB)
DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": np.uint16}  # BF16: read as bits
BUFFER = re.compile(r"transformer\.h\.(\d+)\.attn\.(bias|masked_bias)")
ROPE_BUFFER = re.compile(r"model\.layers\.(\d+)\.self_attn\.rotary_emb\.inv_freq")  # older llama exports


# --- reading -----------------------------------------------------------------------------------

def _read_json(path: Path):
    """The JSON in `path`; ValueError naming it when missing, too big, or not JSON."""
    return checks.json_file(path, "a checkpoint folder")[0]


def _read_config(path: Path) -> tuple[GPTConfig, dict]:
    raw = _read_json(path)
    try:
        return GPTConfig.from_hf_dict(raw), raw
    except checks.PARSE_ERRORS as error:
        raise ValueError(f"{path}: {str(error)[:300]}") from None


def _read_word_tokenizer(path: Path, raw_config: dict) -> WordTokenizer:
    try:
        tokenizer = WordTokenizer.from_vocab_dict(_read_json(path))
    except checks.PARSE_ERRORS as error:
        raise ValueError(f"{path}: {str(error)[:300]}") from None
    for key in ("bos_token_id", "eos_token_id"):
        if raw_config.get(key, tokenizer.eos_id) != tokenizer.eos_id:
            raise ValueError(f"{path.with_name(CONFIG_FILE)}: {key} is {raw_config[key]!r} but the end-of-text "
                             f"token's id in {VOCAB_FILE} is {tokenizer.eos_id}")
    return tokenizer


def _config_eos(raw_config: dict):
    eos = raw_config.get("eos_token_id")
    return eos if is_whole(eos) else None


def _read_bpe_tokenizer(folder: Path, raw_config: dict) -> BPETokenizer:
    """GPT-2's BPE from tokenizer.json, else from vocab.json + merges.txt; each file's size,
    encoding and JSON checked here before `tokenizers` parses it."""
    eos = _config_eos(raw_config)
    if (folder / TOKENIZER_FILE).is_file():
        path = folder / TOKENIZER_FILE
        _read_json(path)
        build = lambda: BPETokenizer.from_json(path.read_text(encoding="utf-8"), eos)
    else:
        vocab, path = _read_json(folder / VOCAB_FILE), folder / MERGES_FILE  # a parse error is the merges'
        if not isinstance(vocab, dict) or not all(is_whole(i) for i in vocab.values()):
            raise ValueError(f"{folder / VOCAB_FILE} must be a JSON object {{token: integer id}}")
        if not path.is_file() or path.stat().st_size > checks.MAX_JSON_BYTES:
            raise ValueError(f"{path} is missing or too large")
        build = lambda: BPETokenizer.from_vocab_and_merges(folder / VOCAB_FILE, path, eos)
    try:
        return build()
    except Exception as error:  # tokenizers raises its own Exception type for bad files
        raise ValueError(f"{path} is not a GPT-2 byte-level BPE tokenizer: {str(error)[:300]}") from None


def _read_llama_tokenizer(folder: Path, config: GPTConfig, raw_config: dict) -> HFTokenizer:
    """A llama-family folder's tokenizer.json (+ tokenizer_config.json), at most vocab_size tokens."""
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        raise ValueError(f"{path} is missing: a {config.model_type} checkpoint needs its tokenizer.json")
    eos = raw_config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) and eos else eos  # Llama 3.1 lists several; the first ends generation
    tokenizer = HFTokenizer.from_folder(folder, eos_id=eos if is_whole(eos) and 0 <= eos < config.vocab_size else None,
                                        max_bytes=checks.MAX_JSON_BYTES)
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"{path} holds {tokenizer.vocab_size} tokens but {CONFIG_FILE} says vocab_size "
                         f"{config.vocab_size}")
    return tokenizer


def _read_tokenizer(folder: Path, config: GPTConfig, raw_config: dict):
    """The word-level tokenizer (vocab.json alone) or GPT-2's BPE (tokenizer.json, or vocab.json +
    merges.txt), checked against the config's vocab_size; the llama family's tokenizer.json."""
    if config.family == "llama":
        return _read_llama_tokenizer(folder, config, raw_config)
    if (folder / TOKENIZER_FILE).is_file() or (folder / MERGES_FILE).is_file():
        tokenizer = _read_bpe_tokenizer(folder, raw_config)
    elif (folder / VOCAB_FILE).is_file():
        tokenizer = _read_word_tokenizer(folder / VOCAB_FILE, raw_config)
    else:
        raise ValueError(f"{folder} has no tokenizer: it needs {TOKENIZER_FILE}, or {VOCAB_FILE} (+ {MERGES_FILE})")
    if tokenizer.vocab_size != config.vocab_size:
        source = folder / (TOKENIZER_FILE if (folder / TOKENIZER_FILE).is_file() else VOCAB_FILE)
        raise ValueError(f"{source} holds {tokenizer.vocab_size} tokens but {CONFIG_FILE} says vocab_size "
                         f"{config.vocab_size}")
    return tokenizer


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files: model.safetensors, or the shards model.safetensors.index.json lists."""
    if (folder / WEIGHTS_FILE).is_file():
        return [folder / WEIGHTS_FILE]
    if (folder / INDEX_FILE).is_file():
        index = _read_json(folder / INDEX_FILE)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(name, str) for name in weight_map.values()):
            raise ValueError(f"{folder / INDEX_FILE} must hold a weight_map {{parameter: file name}}")
        names = sorted(set(weight_map.values()))
        bad = [name for name in names if Path(name).name != name or not name.endswith(".safetensors")]
        if bad:
            raise ValueError(f"{folder / INDEX_FILE} names a shard outside the folder or not .safetensors: {bad[0]!r}")
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"{folder / missing[0]} is missing (listed in {INDEX_FILE})")
        return [folder / name for name in names]
    if (folder / PICKLE_FILE).exists():
        raise ValueError(f"{folder / PICKLE_FILE} is a pickle, and unpickling a file can run any code in it, so "
                         f"Glassbox does not open it. Convert it to {WEIGHTS_FILE} where you trust it, e.g. "
                         "GPT2LMHeadModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True), "
                         "or download the model's model.safetensors (python -m core fetch NAME --to FOLDER)")
    raise ValueError(f"{folder / WEIGHTS_FILE} is missing: not a checkpoint folder?")


def _read_header(path: Path) -> tuple[dict, int]:
    """A safetensors file's header {name: {dtype, shape, data_offsets}} and where its data starts."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        length = int.from_bytes(file.read(8), "little") if size >= 8 else -1
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"{path} is not a readable safetensors file (truncated, or its header size {length} "
                             f"does not fit the file's {size} bytes)")
        text = file.read(length)
    try:
        header = json.loads(text.decode("utf-8"))
    except checks.PARSE_ERRORS as error:
        raise ValueError(f"{path} is not a readable safetensors file (header: {type(error).__name__})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a readable safetensors file (its header is not a JSON object)")
    header.pop("__metadata__", None)
    return header, 8 + length


def _canonical(name: str, config: GPTConfig) -> str:
    """GPT-2's name under `transformer.` whether the file uses the prefix or not (the llama
    family's names as they are)."""
    if config.family == "llama":
        return name
    return name if name.startswith("transformer.") or name == HEAD else "transformer." + name


def _check_entry(path: Path, name: str, entry, shapes: tuple[tuple, ...], buffer: bool) -> str:
    """The dtype code of one header entry, checked; ValueError naming the file.
    The attention buffers (`buffer`) may also be U8 or BOOL masks."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"{path}: the header entry for {name!r} is malformed")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and len(shape) <= 4
            and all(is_whole(n) and 0 <= n < 2**40 for n in shape)):
        raise ValueError(f"{path}: {name} has an invalid shape {str(shape)[:80]}")
    if tuple(shape) not in shapes:
        raise ValueError(f"{path}: {name} has shape {tuple(shape)}, the config needs {' or '.join(map(str, shapes))}")
    if dtype not in DTYPES and not (buffer and dtype in ("U8", "BOOL")):
        raise ValueError(f"{path}: {name} is {dtype!r}; weights must be F32, F16, BF16 or F64")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_whole(n) for n in offsets)):
        raise ValueError(f"{path}: {name} has invalid data_offsets")
    itemsize = np.dtype(DTYPES.get(dtype, np.uint8)).itemsize  # U8 and BOOL: one byte
    nbytes = math.prod(shape) * itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise ValueError(f"{path}: {name}'s data_offsets span {offsets[1] - offsets[0]} bytes, its shape needs {nbytes}")
    return dtype


def _buffer_shapes(name: str, config: GPTConfig):
    """The shapes a recognised attention buffer may have, or None when `name` is not one."""
    match = ROPE_BUFFER.fullmatch(name) if config.family == "llama" else None
    if match is not None:
        return ((config.head_dim // 2,),) if int(match.group(1)) < config.n_layer else None
    match = BUFFER.fullmatch(name)
    if match is None or int(match.group(1)) >= config.n_layer:
        return None
    return ((1, 1, config.n_positions, config.n_positions),) if match.group(2) == "bias" else ((), (1,))


def _check_head_width(path: Path, header: dict, config: GPTConfig) -> None:
    """A clear ValueError when a q_proj weight's rows are not head_dim x num_attention_heads, or a
    k_proj's not head_dim x num_key_value_heads (checked before any other shape, which would only
    say "the config needs ...")."""
    if config.family != "llama":
        return
    for projection, heads, key in (("q_proj", config.n_head, "num_attention_heads"),
                                   ("k_proj", config.n_kv_head, "num_key_value_heads")):
        for name, entry in header.items():
            shape = entry.get("shape") if isinstance(entry, dict) else None
            if (name.endswith(f"self_attn.{projection}.weight") and isinstance(shape, list) and len(shape) == 2
                    and shape[0] != heads * config.head_dim):
                raise ValueError(f"{path}: {name} has {shape[0]} rows but config.json's head_dim "
                                 f"({config.head_dim}) x {key} ({heads}) = {heads * config.head_dim}")


def _plan_file(path: Path, config: GPTConfig, expected: dict, seen: dict) -> list[tuple[str, str, tuple, int]]:
    """Validate one safetensors file against the config and its size, reading no tensor:
    [(parameter name, dtype code, shape, absolute offset)] of the parameters to read."""
    header, data_start = _read_header(path)
    _check_head_width(path, header, config)
    spans, plan = [], []
    for name, entry in header.items():
        canonical = _canonical(name, config)
        buffer_shapes = _buffer_shapes(canonical, config)
        if canonical not in expected and buffer_shapes is None:
            hint = " (the config ties the head to wte: set tie_word_embeddings false to use it)" if name == HEAD else ""
            raise ValueError(f"{path}: unexpected tensor {name[:80]!r} for this config{hint}")
        if canonical in seen:
            raise ValueError(f"{path}: {canonical} is stored twice ({seen[canonical].name} too)")
        seen[canonical] = path
        shapes = (expected[canonical],) if buffer_shapes is None else buffer_shapes
        dtype = _check_entry(path, name, entry, shapes, buffer_shapes is not None)
        spans.append(tuple(entry["data_offsets"]))
        if buffer_shapes is None:
            plan.append((canonical, dtype, tuple(entry["shape"]), data_start + entry["data_offsets"][0]))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise ValueError(f"{path}: tensor data overlaps or leaves gaps (offset {begin}, expected {end})")
        end = stop
    if data_start + end != path.stat().st_size:
        raise ValueError(f"{path} holds {path.stat().st_size} bytes but its header describes {data_start + end}")
    try:
        with safe_open(str(path), framework="numpy") as opened:  # safetensors' own header check
            names = set(opened.keys())
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({str(error)[:200]})") from None
    if names != set(header):
        raise ValueError(f"{path}: safetensors reads other names than its header lists")
    return plan


def memory_available() -> int:
    """Bytes of memory this machine can still give (MemAvailable; physical memory elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_fits(folder: Path, config: GPTConfig) -> None:
    """ValueError before anything is read when the config's weights cannot fit in memory."""
    needed = sum(math.prod(shape) for shape in param_shapes(config).values()) * 4  # float32
    available = memory_available()
    if needed > available:
        raise ValueError(f"{folder / CONFIG_FILE} describes a model of {needed / 1e9:.1f} GB in float32, more than "
                         f"the {available / 1e9:.1f} GB of memory available")


def _read_tensor(file, dtype: str, shape: tuple, offset: int) -> np.ndarray:
    """One tensor read once from the open `file`, straight into its own array; float16 and
    bfloat16 converted to float32."""
    value = np.empty(shape, dtype=DTYPES[dtype])
    file.seek(offset)
    if file.readinto(memoryview(value).cast("B")) != value.nbytes:
        raise ValueError(f"{file.name} ended before the tensor data its header describes")
    if dtype == "BF16":
        return (value.astype(np.uint32) << np.uint32(16)).view(np.float32)  # bfloat16 = float32's top bits
    return value.astype(np.float32) if dtype == "F16" else value


def _read_params(folder: Path, config: GPTConfig) -> dict[str, np.ndarray]:
    _check_fits(folder, config)
    files = _weight_files(folder)
    expected, seen = param_shapes(config), {}
    plans = [(path, _plan_file(path, config, expected, seen)) for path in files]  # every header before any data
    missing = sorted(expected.keys() - seen.keys())
    if missing:
        hint = " (config.json says tie_word_embeddings false)" if missing == [HEAD] else ""
        where = files[0] if len(files) == 1 else folder / INDEX_FILE
        raise ValueError(f"{where} is missing {', '.join(missing[:3])}{' and more' if len(missing) > 3 else ''}{hint}")
    params = {}
    for path, plan in plans:
        with open(path, "rb") as file:
            params.update({name: _read_tensor(file, dtype, shape, offset) for name, dtype, shape, offset in plan})
    where = files[0] if len(files) == 1 else folder / INDEX_FILE
    for name, value in params.items():
        if not np.isfinite(value).all():
            raise ValueError(f"{where}: {name} holds numbers that are not finite (inf or NaN): a model with them "
                             "computes nothing meaningful")
    try:
        check_params(params, config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None
    return {name: params[name] for name in expected}  # GPT-2's order


def _check_links(folder: Path) -> None:
    """ValueError (naming the file, never what it holds) when a file the reader may open is a
    symbolic link resolving outside `folder`: a checkpoint is its folder, and an error quoting a
    linked file would show a file of the server. Hugging Face's cache is allowed: a snapshot
    folder's links into the same repository's blobs/ folder (models--x/snapshots/REV -> ../../blobs)."""
    inside = folder.resolve()
    blobs = inside.parent.parent / "blobs" if inside.parent.name == "snapshots" else None
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        raise ValueError(f"cannot read the checkpoint folder {folder}: {error.strerror}") from None
    for entry in entries:
        if not entry.is_symlink() or not (entry.name in READ_FILES or entry.name.endswith(".safetensors")):
            continue
        target = entry.resolve()
        if not (target.is_relative_to(inside) or (blobs is not None and target.parent == blobs)):
            raise ValueError(f"{entry} is a symbolic link to a file outside the checkpoint folder: not read")


def read_checkpoint(path) -> tuple[GPTConfig, dict[str, np.ndarray], WordTokenizer | BPETokenizer | HFTokenizer]:
    """(config, params, tokenizer) from the checkpoint folder `path`; ValueError for anything wrong."""
    folder = Path(path)
    recover(folder)
    if not folder.is_dir():
        raise ValueError(f"no checkpoint directory at {folder}")
    _check_links(folder)
    if not (folder / CONFIG_FILE).exists() and (folder / PICKLE_FILE).exists():
        _weight_files(folder)  # the pickle-only message
    config, raw_config = _read_config(folder / CONFIG_FILE)
    tokenizer = _read_tokenizer(folder, config, raw_config)
    return config, _read_params(folder, config), tokenizer


def is_checkpoint(path) -> bool:
    """True for a folder (not a symbolic link) holding config.json and safetensors weights."""
    folder = Path(path)
    return (folder.is_dir() and not folder.is_symlink() and (folder / CONFIG_FILE).is_file()
            and ((folder / WEIGHTS_FILE).is_file() or (folder / INDEX_FILE).is_file()))


def load_history(path) -> list[dict] | None:
    """The training records in `path`/history.json, or None when there are none."""
    file = Path(path) / HISTORY_FILE
    if not file.exists():
        return None
    records = _read_json(file)
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise ValueError(f"{file} must hold a list of records (JSON objects)")
    return records


# --- writing -----------------------------------------------------------------------------------

def history_text(records: list[dict]) -> str:
    """history.json's text: one record per line (the bundled history is written exactly so)."""
    return "[\n" + ",\n".join(json.dumps(record) for record in records) + "\n]\n"


def _json_text(data) -> str:
    return json.dumps(data, indent=2) + "\n"


def _check_creatable(path: Path) -> None:
    """ValueError unless the folder `path` (which does not exist) can be created."""
    existing = next(parent for parent in path.absolute().parents if parent.exists())
    if not existing.is_dir():
        raise ValueError(f"cannot save a checkpoint to {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot save a checkpoint to {path}: no permission to create a folder in {existing}")


def check_target(path, overwrite: bool = False) -> bool:
    """Whether `path` holds a checkpoint to replace; ValueError when save_checkpoint(model, path,
    overwrite=overwrite) would refuse it (so a CLI can check its --out before training)."""
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"cannot save a checkpoint to {path}: it is a symbolic link (not followed)")
    if not path.exists():
        _check_creatable(path)
        return False
    if not path.is_dir():
        raise ValueError(f"cannot save a checkpoint to {path}: it is a file, not a directory")
    entries = list(path.iterdir())
    if not entries:
        return True
    if not is_checkpoint(path) or any(entry.name not in CHECKPOINT_FILES or entry.is_symlink() or not entry.is_file()
                                      for entry in entries):
        raise ValueError(f"cannot save a checkpoint to {path}: it exists and is not a Glassbox checkpoint "
                         "(nothing was written)")
    if not overwrite:
        raise ValueError(f"{path} already holds a checkpoint: pass overwrite=True (CLI: --force) to replace it")
    return True


def _fsync(path: Path) -> None:
    """Flush the file or folder `path` to the disk (a folder's fsync makes its entries durable)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_files(folder: Path, model, history) -> None:
    """Every checkpoint file of `model` into the (new, empty) `folder`, each flushed to the disk,
    then the folder itself."""
    tensors = {name: np.ascontiguousarray(value) for name, value in model.params.items()}
    save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "np"})
    (folder / CONFIG_FILE).write_text(_json_text(model.config.to_hf_dict(eos_token_id=model.tokenizer.eos_id)),
                                      encoding="utf-8")
    if model.tokenizer.kind == "bpe":
        (folder / TOKENIZER_FILE).write_text(model.tokenizer.to_json(), encoding="utf-8")
    else:
        (folder / VOCAB_FILE).write_text(_json_text(model.tokenizer.to_vocab_dict()), encoding="utf-8")
    if history is not None:
        (folder / HISTORY_FILE).write_text(history_text(history), encoding="utf-8")
    for file in folder.iterdir():
        _fsync(file)
    _fsync(folder)


# --- swapping a checkpoint in atomically, and recovering from a save that was killed -------------
#
# The invariant: at every instant the name `path` resolves to a complete checkpoint (the old one
# or the new one), whatever moment a save is killed at (kill -9, power cut after the fsyncs).
#
# A save writes the new checkpoint into a staging folder beside `path`, `.{name}.{token}.partial`,
# fsyncs every file and the folder, and only then makes it visible:
#   - a new name: renameat2(RENAME_NOREPLACE) (os.rename elsewhere) of the complete folder onto
#     the name; a name taken meanwhile by another save fails cleanly (EEXIST / ENOTEMPTY);
#   - an overwrite on Linux: renameat2(RENAME_EXCHANGE) swaps the two folders in one atomic step,
#     so the name goes from the complete old checkpoint to the complete new one, and the staging
#     name then holds the old one, which is deleted;
#   - an overwrite where the exchange is not supported: the old folder is renamed aside to
#     `.{name}.{token}.old`, then the staging folder onto the name. Between the two renames the
#     name is missing, but a complete `.old` copy exists, and recovery puts it back (this
#     fallback keeps the checkpoint, not the "never missing" half of the invariant).
# The saving process holds an exclusive flock on the staging folder (and on `.old`) while it works;
# the kernel drops it when the process dies, however it dies. `recover(path)` (run by every save,
# every load and the models folder's listing) takes each leftover whose lock is free: a `.old`
# whose name is missing is renamed back onto the name; every other leftover is deleted.

RENAME_NOREPLACE, RENAME_EXCHANGE, AT_FDCWD = 1, 2, -100
LEFTOVER = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.(?P<kind>partial|old)")


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """renameat2(source, target, flags) through libc: True when done, False when this system or
    file system does not support it; OSError for any other failure (EEXIST, ENOENT, ...)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if function(AT_FDCWD, os.fsencode(source), AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(target))


def _lock(folder: Path) -> int | None:
    """An open descriptor of `folder` holding its exclusive flock, or None when another process holds
    it (or the folder is gone)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def _staging(parent: Path, name: str, kind: str) -> tuple[Path, int]:
    """A new empty folder `.{name}.{token}.{kind}` in `parent`, and the descriptor holding its lock."""
    while True:
        folder = parent / f".{name}.{secrets.token_hex(4)}.{kind}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        descriptor = _lock(folder)
        if descriptor is not None:
            return folder, descriptor


def recover(path) -> None:
    """Tidy what saves of the checkpoint `path` killed midway left beside it: a `.old` copy whose
    name is missing is put back; every other staging folder no process holds is deleted. Folders a
    live save holds are left alone; a read-only folder is left as it is."""
    path = Path(path)
    try:
        entries = [entry for entry in path.parent.iterdir() if entry.name.startswith(f".{path.name}.")]
    except OSError:
        return
    for entry in sorted(entries, key=lambda entry: not entry.name.endswith(".old")):  # .old first
        match = LEFTOVER.fullmatch(entry.name)
        if match is None or match.group("name") != path.name or entry.is_symlink() or not entry.is_dir():
            continue
        descriptor = _lock(entry)
        if descriptor is None:
            continue
        try:
            if match.group("kind") == "old" and not path.exists() and not path.is_symlink() and is_checkpoint(entry):
                try:
                    if not _renameat2(entry, path, RENAME_NOREPLACE):
                        os.rename(entry, path)
                    continue
                except OSError:
                    pass
            shutil.rmtree(entry, ignore_errors=True)
        finally:
            os.close(descriptor)


def recover_folder(root) -> None:
    """recover() for every checkpoint name with leftovers in the folder `root`."""
    try:
        names = {match.group("name") for entry in Path(root).iterdir()
                 if (match := LEFTOVER.fullmatch(entry.name)) is not None}
    except OSError:
        return
    for name in names:
        recover(Path(root) / name)


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(error)
    return "No space left" in text or "StorageFull" in text or "code: 28" in text or "QuotaExceeded" in text


def _save_error(error: BaseException, path: Path) -> ValueError:
    """The one sentence a failed write becomes (naming the checkpoint, not the server's folders)."""
    if _is_disk_full(error):
        return ValueError(f"could not save {path.name}: the disk is full (free some space and save again; "
                          "nothing was changed)")
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)[:200]
    return ValueError(f"could not save {path.name}: {reason}")


def _swap_in(staging: Path, path: Path, replace: bool) -> None:
    """Make the complete folder `staging` the checkpoint `path` (see the invariant above)."""
    taken = ValueError(f"a checkpoint named {path.name} was saved by someone else at the same time; "
                       "nothing was written (choose another name, or save again to replace it)")
    if not replace or not (path.exists() or path.is_symlink()):
        try:
            if not _renameat2(staging, path, RENAME_NOREPLACE):
                if path.exists() or path.is_symlink():
                    raise taken
                os.rename(staging, path)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                raise taken from None
            raise
        return
    try:
        if _renameat2(staging, path, RENAME_EXCHANGE):  # staging now holds the old checkpoint
            return
    except OSError as error:
        if error.errno == errno.ENOENT:  # the old one went meanwhile: the name is free
            return _swap_in(staging, path, replace=False)
        raise
    descriptor = _lock(path)  # the old checkpoint's own folder: the lock goes with it to `.old`
    old = path.parent / f".{path.name}.{secrets.token_hex(4)}.old"
    try:
        os.rename(path, old)  # the old checkpoint stays whole, under a name recovery puts back
        try:
            os.rename(staging, path)
        except BaseException:
            os.rename(old, path)
            raise
    finally:
        if descriptor is not None:
            os.close(descriptor)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(model, path, *, overwrite: bool = False, history: list[dict] | None = None) -> Path:
    """Write `model` (a core.model.model.Model) as a checkpoint folder at `path`; returns the path.

    Everything (config, weights, vocabulary, history.json when `history` is a list of records)
    is written and flushed into a fresh staging folder beside `path`, which then replaces `path`
    in one atomic step (see the invariant above `recover`): whenever the save stops, even by
    kill -9, `path` is a complete checkpoint, the old one or the new one, and what the save
    left beside it is tidied by the next save, load or listing. A `path` that is a symbolic link,
    a file, or a folder that is not a Glassbox checkpoint is refused; an existing checkpoint is
    replaced only with overwrite=True (its old files, an old history.json included, go with it).
    A full disk, or another save taking the name first, is one ValueError naming the checkpoint."""
    path = Path(path)
    if history is not None and (not isinstance(history, list) or not all(isinstance(r, dict) for r in history)):
        raise TypeError("history must be a list of record dicts or None")
    check_params(model.params, model.config)
    recover(path)
    replace = check_target(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _save_error(error, path) from None
    staging, descriptor = _staging(path.parent, path.name, "partial")
    try:
        try:
            _write_files(staging, model, history)
            _swap_in(staging, path, replace)
            _fsync(path.parent)
        except (OSError, SafetensorError) as error:
            raise _save_error(error, path) from None
    finally:
        os.close(descriptor)
        shutil.rmtree(staging, ignore_errors=True)  # the unfinished new one, or the old one swapped out
    return path
