"""The dashboard's pages assume GPT-2: a llama-family checkpoint in the models folder (llama,
qwen2, qwen3, mistral) is left out of the model picker, with a caption saying how many there are,
and the app runs clean."""
from __future__ import annotations

import json

import pytest

from dashboard import models


@pytest.fixture
def models_folder(tmp_path, monkeypatch):
    """A models folder with two llama-family checkpoints (only their config.json is read) and a
    GPT-2 one whose files are not read until picked."""
    for name, model_type in (("tiny-qwen3", "qwen3"), ("tiny-llama", "llama"), ("tiny-gpt2", "gpt2")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
        (folder / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv("GLASSBOX_MODELS", str(tmp_path))
    return tmp_path


def test_llama_family_checkpoints_are_left_out_of_the_picker_with_a_caption(app):
    assert app.selectbox(key="model_picker").options == [models.picker_label(models.BUNDLED), "tiny-gpt2"]
    captions = [caption.value for caption in app.sidebar.caption if "Llama-family" in caption.value]
    assert len(captions) == 1 and captions[0].startswith("2 Llama-family checkpoints")
    assert "later version" in captions[0] and "CLI" in captions[0]
