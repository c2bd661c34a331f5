"""Every page and every tab on llama-family checkpoints: a small random-weight Llama (grouped-query
attention: 4 query heads sharing 2 key/value heads) and a Qwen3 (q/k norms, its own head_dim),
written by transformers into a temporary models folder, picked in the sidebar, then each page of
navigation.PAGES opened and each of its tabs selected, through Streamlit's AppTest."""
from __future__ import annotations

import pytest
from helpers.dashboard import assert_clean, open_tab
from streamlit.testing.v1 import AppTest

from dashboard import navigation

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

TIMEOUT = 300
BASE = dict(vocab_size=456, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
            tie_word_embeddings=False)
VARIANTS = {
    "tiny-llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "tiny-qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=16)),
}


@pytest.fixture(scope="module")
def llama_models_dir(tmp_path_factory):
    """A models folder with the two random-weight checkpoints (SentencePiece-style tokenizer, 456 tokens)."""
    from helpers.tokenizers import SENTENCEPIECE_VOCAB_SIZE, write_tokenizer
    assert SENTENCEPIECE_VOCAB_SIZE == BASE["vocab_size"]
    root = tmp_path_factory.mktemp("llama-models")
    for name, (config_class, model_class, options) in VARIANTS.items():
        config = getattr(transformers, config_class)(**{**BASE, **options})
        torch.manual_seed(0)
        model = getattr(transformers, model_class)(config)
        with torch.no_grad():
            for parameter_name, parameter in model.named_parameters():
                if parameter.ndim == 2:
                    parameter.normal_(0, 0.3)
        model.save_pretrained(root / name)
        write_tokenizer(root / name, "sentencepiece")
    return root


@pytest.fixture
def models_folder(llama_models_dir, monkeypatch):
    monkeypatch.setenv("GLASSBOX_MODELS", str(llama_models_dir))
    return llama_models_dir


@pytest.fixture
def app_timeout():
    return TIMEOUT


def pick(at: AppTest, name: str) -> AppTest:
    at.selectbox(key="model_picker").set_value(name).run()
    assert_clean(at)
    return at


def test_llama_family_checkpoints_are_listed_in_the_picker(app):
    options = app.selectbox(key="model_picker").options
    assert "tiny-llama" in options and "tiny-qwen3" in options


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_page_and_tab_runs_clean_on_a_llama_family_model(app, name):
    pick(app, name)
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
