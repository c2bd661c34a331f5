"""The model picker, the overview and attention step by step on a GPT-2-small-shaped
checkpoint (12 layers x 12 heads, n_embd 768, context 1,024, GPT-2's 50,257-token BPE, random
weights in Hugging Face's layout) in a temporary models folder, through Streamlit's AppTest."""
from __future__ import annotations

import json

import numpy as np
import pytest
import streamlit as st
from helpers.dashboard import assert_clean, new_session, open_page, pick_model
from helpers.dashboard import open_tab as open_lazy_tab
from helpers.gpt2 import GPT2_NAME as GPT2
from streamlit.testing.v1 import AppTest

from dashboard import models, prompt
from dashboard.navigation import ATTENTION_STEPS

TIMEOUT = 300
STEP_TABS = ATTENTION_STEPS.tabs


@pytest.fixture
def models_folder(gpt2_models_dir, monkeypatch):
    """The sessions of `app` start with the GPT-2-shaped checkpoint in their models folder."""
    monkeypatch.setenv("GLASSBOX_MODELS", str(gpt2_models_dir))
    return gpt2_models_dir


@pytest.fixture
def app_timeout():
    return TIMEOUT


def open_tab(at: AppTest, label: str) -> AppTest:
    """Open the step-by-step page's tab `label`."""
    return open_lazy_tab(at, "steps_tab", label)


def views(at: AppTest) -> list[dict]:
    """Every (sub)chart's spec on the page, with its rows under "rows"."""
    import pyarrow.ipc

    found = []
    for chart in at.get("vega_lite_chart"):
        datasets = {dataset.name: pyarrow.ipc.open_stream(dataset.data.data).read_all().to_pylist()
                    for dataset in chart.proto.datasets}
        spec = json.loads(chart.proto.spec)
        for part in spec.get("hconcat") or spec.get("concat") or [spec]:
            found.append(dict(part, rows=datasets.get(part.get("data", {}).get("name"), [])))
    return found


def titled(at: AppTest, start: str) -> dict:
    (found,) = [view for view in views(at) if str(view.get("title", "")).startswith(start)]
    return found


# --- the picker -----------------------------------------------------------------------------------

def test_the_picker_offers_the_bundled_model_and_the_folder_s_checkpoints(app):
    picker = app.selectbox(key="model_picker")
    assert list(picker.options) == [models.picker_label(models.BUNDLED), GPT2]
    assert picker.value == models.BUNDLED


def test_switching_to_gpt2_keeps_the_prompt_and_shows_its_card_and_prediction(app, gpt2):
    app.text_input(key="prompt").set_value("The capital of France is").run()
    pick_model(app, GPT2)
    assert app.text_input(key="prompt").value == "The capital of France is"
    card = app.table[0].value.set_index("")["value"]
    assert (card["vocabulary"], card["layers"], card["heads per layer"], card["width d_model"], card["d_head"]) == \
        ("50,257", "12", "12", "768", "64")
    assert card["context (positions)"] == "1,024" and card["model"] == GPT2
    expected = gpt2.run("The capital of France is").top_predictions(10)
    bars = titled(app, "The 10 most likely next tokens")["rows"]
    assert [(row["label"], row["value"]) for row in bars] == [(word, pytest.approx(prob, rel=1e-6))
                                                           for word, prob in expected]
    assert app.metric[0].value == expected[0][0]
    tokens = [gpt2.tokenizer.token(int(i)) for i in gpt2.tokenizer.encode("The capital of France is")]
    assert any(element.value == f"{len(tokens)} tokens: " + " · ".join(f"`{token}`" for token in tokens)
               for element in app.markdown)
    assert "␣capital" in tokens  # subwords as the tokenizer displays them
    assert "[5, 768]" in app.get("graphviz_chart")[0].proto.spec


def test_base_models_are_shared_but_each_session_picks_its_own(app):
    pick_model(app, GPT2)
    other = new_session(TIMEOUT)
    assert other.selectbox(key="model_picker").value == models.BUNDLED
    assert other.table[0].value.set_index("")["value"]["layers"] == "2"
    pick_model(other, GPT2)
    assert models.base_model(GPT2) is models.base_model(GPT2)  # one copy per server


def test_a_checkpoint_that_cannot_be_loaded_gives_a_short_message_naming_only_the_model(tmp_path, monkeypatch):
    broken = tmp_path / "models" / "broken"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    (broken / "model.safetensors").write_bytes(b"\0" * 16)
    monkeypatch.setenv("GLASSBOX_MODELS", str(tmp_path / "models"))
    st.cache_resource.clear()
    at = new_session(TIMEOUT)
    at.selectbox(key="model_picker").set_value("broken").run()
    assert_clean(at)
    (warning,) = [element.value for element in at.warning]
    assert "'broken' could not be loaded" in warning and str(tmp_path) not in warning
    assert at.selectbox(key="model_picker").value == models.BUNDLED  # the previous model stays in use
    assert at.table[0].value.set_index("")["value"]["layers"] == "2"


# --- prompt limits --------------------------------------------------------------------------------

def test_a_long_prompt_is_cut_to_the_dashboard_s_token_limit_with_a_notice(app):
    pick_model(app, GPT2)
    app.text_input(key="prompt").set_value("the sky is blue and " * 40).run()  # 200 GPT-2 tokens, 800 characters
    assert_clean(app)
    assert any(f"only the last {prompt.MAX_PROMPT_TOKENS} are used" in element.value for element in app.info)
    assert f"[{prompt.MAX_PROMPT_TOKENS}, 768]" in app.get("graphviz_chart")[0].proto.spec


# --- attention step by step on GPT-2 --------------------------------------------------------------

def test_every_step_opens_on_gpt2_with_real_numbers(app, gpt2):
    from dashboard.views import attention_steps as steps_page

    pick_model(app, GPT2)
    open_page(app, "attention_steps")
    app.selectbox(key="steps_layer").set_value(11)
    app.selectbox(key="steps_head").set_value(7).run()
    trace = gpt2.run("the sky is")
    embed = titled(app, "Token embeddings [L, d_model]")
    assert len(embed["rows"]) == 3 * 768 and embed["width"] <= steps_page.PLOT_WIDTH
    table = app.dataframe[0].value
    assert list(table.columns) == [f"d{i}" for i in range(16)]
    np.testing.assert_allclose(table.to_numpy(), trace.token_embeddings[:, :16], rtol=1e-6)
    app.selectbox(key="steps_embed_slice").set_value(752).run()
    np.testing.assert_allclose(app.dataframe[0].value.to_numpy(), trace.token_embeddings[:, 752:], rtol=1e-6)
    open_tab(app, ATTENTION_STEPS.tabs.qkv)
    q = titled(app, "Q (queries) [L, d_head]")
    assert len(q["rows"]) == 3 * 64
    values = {(row["row"], row["col"]): row["value"] for row in q["rows"]}
    assert values[("2 ␣is", "d63")] == pytest.approx(float(trace.layers[11].q[7][2, 63]), rel=1e-6)
    for tab in STEP_TABS[2:STEP_TABS.index(ATTENTION_STEPS.tabs.rope)]:
        open_tab(app, tab)
        assert app.get("vega_lite_chart") or tab in (ATTENTION_STEPS.tabs.influence, ATTENTION_STEPS.tabs.one_weight), tab
    assert "more terms" in "\n".join(element.value for element in app.markdown)  # 64 products, the first shown
    open_tab(app, ATTENTION_STEPS.tabs.rope)  # GPT-2 learns its positions (wpe): the tab says so, and draws no rotation
    assert any("no RoPE" in element.value for element in app.info) and not app.get("vega_lite_chart")


def test_a_picked_checkpoint_that_stops_loading_falls_back_to_the_bundled_model(tmp_path, monkeypatch):
    """The checkpoint loaded when picked, then the server dropped it from its cache and its files were
    damaged: the next run uses the bundled model and says so, naming only the model."""
    import core

    folder = tmp_path / "models" / "tiny"
    core.load_default().save(folder)
    monkeypatch.setenv("GLASSBOX_MODELS", str(tmp_path / "models"))
    st.cache_resource.clear()
    at = new_session(TIMEOUT)
    pick_model(at, "tiny")
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    st.cache_resource.clear()
    at.run()
    assert_clean(at)
    (warning,) = [element.value for element in at.warning]
    assert "'tiny' could not be loaded" in warning and "bundled toy model is in use" in warning
    assert str(tmp_path) not in warning
    assert at.selectbox(key="model_picker").value == models.BUNDLED
