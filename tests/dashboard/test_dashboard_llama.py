"""Every page and every tab on llama-family checkpoints: a small random-weight Llama (grouped-query
attention: 4 query heads sharing 2 key/value heads) and a Qwen3 (q/k norms, its own head_dim),
written by transformers into a temporary models folder, picked in the sidebar, then each page of
navigation.PAGES opened and each of its tabs selected, through Streamlit's AppTest."""
from __future__ import annotations

import pytest
from helpers.dashboard import assert_clean, open_tab, pick_model
from helpers.llama import write_tiny
from streamlit.testing.v1 import AppTest

from dashboard import navigation

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

TIMEOUT = 300
VARIANTS = {
    "tiny-llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "tiny-qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=16)),
}


@pytest.fixture(scope="module")
def llama_models_dir(tmp_path_factory):
    """A models folder with the two random-weight checkpoints (SentencePiece-style tokenizer)."""
    root = tmp_path_factory.mktemp("llama-models")
    for name, (config_class, model_class, options) in VARIANTS.items():
        write_tiny(root / name, config_class, model_class, **options)
    return root


@pytest.fixture
def models_folder(llama_models_dir, monkeypatch):
    monkeypatch.setenv("GLASSBOX_MODELS", str(llama_models_dir))
    return llama_models_dir


@pytest.fixture
def app_timeout():
    return TIMEOUT


def test_llama_family_checkpoints_are_listed_in_the_picker(app):
    options = app.selectbox(key="model_picker").options
    assert "tiny-llama" in options and "tiny-qwen3" in options


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_page_and_tab_runs_clean_on_a_llama_family_model(app, name):
    pick_model(app, name)
    card = app.table[0].value.set_index("")["value"]
    assert card["family"] == "llama" and card["key/value heads"] == "2" and card["norm"].startswith("RMSNorm")
    assert card["MLP"].startswith("SwiGLU") and card["positions"].startswith("RoPE")
    for page in navigation.PAGES:
        app.switch_page(page.script).run()
        assert_clean(app)
        for label in page.tabs:
            open_tab(app, page.tabs_key, label)
            if label in EXPECTED:
                assert EXPECTED[label] in text(app), (page.title, label)


EXPECTED = {  # a tab's words that only the llama family's drawing has
    navigation.ATTENTION_STEPS.tabs.embeddings: "no position embedding",
    navigation.ATTENTION_STEPS.tabs.rope: "Only the distance counts",
    navigation.BLOCK_STEPS.tabs.projections: "query heads 0, 1",
    navigation.BLOCK_STEPS.tabs.joined: "o_proj",
    navigation.BLOCK_STEPS.tabs.layer_norm: "RMSNorm",
    navigation.BLOCK_STEPS.tabs.mlp: "SwiGLU",
    navigation.BLOCK_STEPS.tabs.residual: "final RMSNorm",
    navigation.EXPLORER.tabs.lens: "final RMSNorm",
    navigation.EXPLORER.tabs.mlp: "SwiGLU",
    navigation.EXPLORER.tabs.what_if: "ReLU for the activation",
    navigation.PRACTICE.tabs.compute: "RMSNorm",
}


def text(at: AppTest) -> str:
    """Every piece of text the page shows (markdown, captions, notes, metrics' labels, widget labels)."""
    parts = [element.value for kind in ("markdown", "caption", "info") for element in at.get(kind)]
    parts += [element.label for kind in ("metric", "toggle", "multiselect") for element in at.get(kind)]
    return "\n".join(str(part) for part in parts)
