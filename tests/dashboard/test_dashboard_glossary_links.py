"""Glossary links on the other pages (Overview, Attention step by step, the explorer, sampling, Training,
Kernel benchmark):
each page's text links its terms to the Glossary, and every anchor linked exists on the Glossary page."""
from __future__ import annotations

import re

import pytest
from helpers.dashboard import open_page, open_tab
from streamlit.testing.v1 import AppTest

from dashboard.navigation import ATTENTION_STEPS, GLOSSARY

LINK = re.compile(rf"\]\({GLOSSARY.url_path}#([a-z0-9-]+)\)")


def linked_anchors(at: AppTest) -> set[str]:
    """The glossary anchors linked from the page's markdown, captions and notes."""
    text = "\n".join(element.value for kind in (at.markdown, at.caption, at.info) for element in kind)
    return set(LINK.findall(text))


def glossary_anchors(at: AppTest) -> set[str]:
    open_page(at, "glossary")
    return {element.proto.anchor for element in at.subheader}


@pytest.mark.parametrize("page, tab, expected", [
    ("overview", None, {"residual-stream", "query-key-value", "mlp", "d-model", "d-head", "head", "layernorm",
                        "gelu", "softmax", "logit"}),
    ("attention_steps", ATTENTION_STEPS.tabs.embeddings, {"d-model", "embedding", "layernorm"}),
    ("attention_steps", ATTENTION_STEPS.tabs.qkv, {"query-key-value", "head", "d-head"}),
    ("attention_steps", ATTENTION_STEPS.tabs.scores, {"softmax", "causal-mask"}),
    ("attention_steps", ATTENTION_STEPS.tabs.vector_map, {"pca"}),
    ("training", None, {"cross-entropy-loss", "bits-and-nats", "gradient", "learning-rate"}),
    ("benchmark", None, {"head", "d-head", "causal-mask", "softmax"}),
    ("explorer", None, {"head", "residual-stream", "logit", "ablation", "entropy"}),
    ("sampling", None, {"softmax", "temperature", "top-k-and-top-p", "kv-cache", "kl-divergence",
                        "total-variation", "bits-and-nats"}),
])
def test_the_pages_link_their_terms_to_existing_glossary_entries(app, page, tab, expected):
    open_page(app, page)
    if tab is not None:
        open_tab(app, "steps_tab", tab)
    linked = linked_anchors(app)
    assert expected <= linked, expected - linked
    anchors = glossary_anchors(app)
    assert linked <= anchors, linked - anchors
