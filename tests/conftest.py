"""Fixtures every test folder shares: the attention backends, the bundled toy model, and a
GPT-2-small-shaped checkpoint. Plain functions the tests share live in tests/helpers/."""
from __future__ import annotations

import pytest

import core
from core.native.kernel import available_backends


@pytest.fixture(params=available_backends())
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def gpt2_models_dir(tmp_path_factory):
    """A temporary models folder holding one GPT-2-small-shaped checkpoint, "gpt2-random"
    (12 layers x 12 heads, n_embd 768, context 1024, GPT-2's real 50,257-token BPE, random
    weights in Hugging Face's layout). Sets nothing global: point GLASSBOX_MODELS at it with
    monkeypatch.setenv where needed. Shared by the session: do not write into it."""
    from helpers.gpt2 import GPT2_NAME, write_gpt2_checkpoint

    root = tmp_path_factory.mktemp("models")
    write_gpt2_checkpoint(root / GPT2_NAME)
    return root


@pytest.fixture(scope="session")
def toy_model():
    """The bundled model (core.load_default()), loaded once for the session. Shared: never change
    its parameters; a test that trains or edits a model loads its own copy."""
    return core.load_default()
