"""The model picker lists every checkpoint of the models folder, llama-family ones (llama, qwen2,
qwen3, mistral) too, without a caption setting them apart: every page draws from the architecture
(tests/dashboard/test_dashboard_llama.py opens each page and tab on them)."""
from __future__ import annotations

import json

import pytest

from dashboard import models


@pytest.fixture
def models_folder(tmp_path, monkeypatch):
    """A models folder with two llama-family checkpoints and a GPT-2 one (only listed: their files
    are not read until picked)."""
    for name, model_type in (("tiny-qwen3", "qwen3"), ("tiny-llama", "llama"), ("tiny-gpt2", "gpt2")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
        (folder / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv("GLASSBOX_MODELS", str(tmp_path))
    return tmp_path


def test_llama_family_checkpoints_are_listed_in_the_picker(app):
    assert app.selectbox(key="model_picker").options == [models.picker_label(models.BUNDLED), "tiny-gpt2",
                                                         "tiny-llama", "tiny-qwen3"]
    assert not [caption.value for caption in app.sidebar.caption if "Llama-family" in caption.value]
