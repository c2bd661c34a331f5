"""The optional peers the benchmarks compare Glassbox against, PyTorch and transformers: whether
they can be imported, and their versions. They are never dependencies."""
from __future__ import annotations

import importlib
import importlib.util


def importable(*modules: str) -> bool:
    """Whether every one of `modules` can be imported (looked up, not imported: torch takes seconds)."""
    return all(importlib.util.find_spec(module) is not None for module in modules)


def torch_available() -> bool:
    """Whether PyTorch can be imported (the attention benchmark's peer)."""
    return importable("torch")


def transformers_available() -> bool:
    """Whether PyTorch and transformers can be imported (the training and GPT-2 benchmarks' peer)."""
    return importable("torch", "transformers")


def version(module: str) -> str | None:
    """The installed version of `module` ("torch", "transformers"), None when it cannot be imported."""
    return importlib.import_module(module).__version__ if importable(module) else None
