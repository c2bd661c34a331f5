"""The checks Glassbox's public entry points run on what they are given, so that a bad value reads
the same wherever it comes in: "top_k must be an integer, got 2.5", "layer 7 does not exist (0..1)".

Each check returns the value (an `int` for a whole number, a float64 array for an array) or raises
TypeError for the wrong kind of value and ValueError for the right kind out of range, naming the
value by `name`. A bool is never a number here: True is not a count of anything. Code behind the
entry points trusts its inputs and checks nothing again.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Qwen 3's tokenizer.json, the largest file a checkpoint folder legitimately holds, is 11 MB: a
# larger JSON file is refused before parsing, since json holds all of it in memory several times
MAX_JSON_BYTES = 20_000_000
# what parsing a hostile file can raise: bad UTF-8, bad JSON, huge integers, nesting deep enough to recurse
PARSE_ERRORS = (ValueError, TypeError, RecursionError, OverflowError, MemoryError, UnicodeDecodeError)


def is_whole(value) -> bool:
    """Whether `value` is an integer, Python's or NumPy's (a bool is not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value) -> bool:
    """Whether `value` is a real number, an integer or a float, Python's or NumPy's (a bool is not)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def whole(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int when it is an integer of at least `low` (None: any) and, when `high` is
    given too, at most `high`."""
    if not is_whole(value):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if high is not None and not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return int(value)


def number(value, name: str):
    """`value` when it is a real number (its range is the caller's to check: each has its own rule)."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return value


def flag(value, name: str) -> bool:
    """`value` when it is True or False (not 0, 1 or "yes")."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def choice(value, options, name: str):
    """`value` when it is one of `options`."""
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def index(value, count: int, name: str) -> int:
    """`value` as an int when it numbers one of `count` things (a layer, a head, a position)."""
    value = whole(value, name)
    if not 0 <= value < count:
        raise ValueError(f"{name} {value} does not exist (0..{count - 1})")
    return value


def as_float_array(values, name: str) -> np.ndarray:
    """`values` as a float64 array (the explanations compute in float64)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers") from None


def as_float_matrix(values, name: str) -> np.ndarray:
    """`values` as a non-empty float64 matrix [L, d]."""
    array = as_float_array(values, name)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty [L, d] matrix, got shape {array.shape}")
    return array


def text(value, name: str = "text") -> str:
    """`value` when it is a string of Unicode characters (a lone surrogate cannot be encoded)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"the {name} holds a lone surrogate, which is not a Unicode character") from None
    return value


def json_file(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> tuple[object, str]:
    """The JSON in the file `path` and its text; ValueError naming the file when it is missing, over
    `max_bytes`, or not JSON. `what` says what the file should be ("a checkpoint file")."""
    if not path.is_file():
        raise ValueError(f"{path} is missing: not {what}?")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path} is too large ({size} bytes, at most {max_bytes}) to be {what}")
    try:
        content = path.read_bytes().decode("utf-8")
        return json.loads(content), content
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be read as {what}") from None
    except PARSE_ERRORS as error:
        raise ValueError(f"{path} is not valid JSON: {type(error).__name__}: {str(error)[:200]}") from None


def text_file(path: Path, what: str, max_bytes: int) -> str:
    """The UTF-8 text of the regular file `path`; ValueError naming the file when it is missing, not
    a regular file (a device such as /dev/zero, a pipe, a folder), over `max_bytes`, or not UTF-8.
    At most `max_bytes` + 1 bytes are read, so a file that grows meanwhile is refused, not swallowed."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} is missing: not {what}?")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file, so it cannot be {what}")
    with open(path, "rb") as file:
        content = file.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise ValueError(f"{path} is too large (more than {max_bytes} bytes) to be {what}")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}), so it cannot be {what}") from None
