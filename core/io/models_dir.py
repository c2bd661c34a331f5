"""The models folder: one folder per server where the dashboard saves models under a name.

A visitor never types a path: a model is saved as `<models root>/<name>`, where the name is
letters, digits, '-' and '_' (at most MAX_NAME characters), never over an existing name.
The root is `GLASSBOX_MODELS` (default ./models, relative to the working directory), created on
the first save. Messages name the model, never a server path.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from pathlib import Path

from core.io.checkpoint import is_checkpoint, recover, recover_folder, save_checkpoint
from core.model.model import Model, load_checkpoint

ROOT_VARIABLE = "GLASSBOX_MODELS"
MAX_NAME = 40
NAME_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NAME}}}")


def models_root() -> Path:
    """The models folder (it may not exist yet: `save_named` creates it)."""
    return Path(os.environ.get(ROOT_VARIABLE) or "models")


def check_name(name) -> str:
    """`name` when it is a valid model name; ValueError (naming the rule) otherwise."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= MAX_NAME + 10 else repr(name)[:MAX_NAME] + "..."
        raise ValueError(f"model name {shown} is not allowed: use 1 to {MAX_NAME} letters, digits, '-' or '_'")
    return name


def checkpoint_names() -> list[str]:
    """The sorted names of the checkpoints in the models folder ([] when it does not exist)."""
    root = models_root()
    if not root.is_dir():
        return []
    recover_folder(root)  # what a save killed midway left: a name put back, staging folders removed
    return sorted(entry.name for entry in root.iterdir()
                  if NAME_PATTERN.fullmatch(entry.name) and is_checkpoint(entry))


def load_named(name: str) -> Model:
    """The model saved under `name`; ValueError naming the model (not the server path) otherwise."""
    path = models_root() / check_name(name)
    recover(path)
    if not is_checkpoint(path):
        raise ValueError(f"there is no saved model named {name!r}")
    try:
        return load_checkpoint(path)
    except ValueError as error:
        raise ValueError(str(error).replace(str(path), f"saved model {name!r}")) from None


def free_name(stem: str) -> str:
    """`stem` if no model has that name yet, else the first free of stem-2, stem-3, ..."""
    check_name(stem)
    root, number, name = models_root(), 1, stem
    while (root / name).exists() or (root / name).is_symlink():
        number += 1
        suffix = f"-{number}"
        name = stem[:MAX_NAME - len(suffix)] + suffix
    return name


def save_named(model: Model, name: str, history: list[dict] | None = None) -> str:
    """Save `model` (and its training records) as `name` in the models folder; returns the name.
    ValueError when the name is invalid or taken (the message suggests a free one)."""
    check_name(name)
    root = models_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    recover(path)
    if path.exists() or path.is_symlink():
        raise ValueError(f"a model named {name!r} already exists; choose another name, e.g. {free_name(name)!r}")
    try:
        save_checkpoint(model, path, overwrite=False, history=history)
    except (OSError, ValueError) as error:
        reason = str(error).removeprefix(f"could not save {name}: ")  # save_checkpoint's own sentence
        raise ValueError(f"could not save the model as {name!r}: "
                         f"{reason.replace(str(path), name).replace(str(root), 'the models folder')}") from None
    return name


def checkpoint_zip(model: Model, history: list[dict] | None = None) -> bytes:
    """The checkpoint's files (config.json, model.safetensors, vocab.json, history.json) as a zip."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="glassbox-zip-") as scratch:
        folder = Path(scratch) / "model"
        save_checkpoint(model, folder, history=history)
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(folder.iterdir()):
                archive.write(file, arcname=file.name)
    return buffer.getvalue()
