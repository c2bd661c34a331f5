"""The sidebar, the overview and the step-by-step page on the bundled toy model, through Streamlit's
AppTest: settings kept for the session, links from the overview's diagram into a page's tab,
example prompts, the vocabulary search, prompt limits and notices, figures that fit the page."""
from __future__ import annotations

import pytest
from helpers.dashboard import assert_clean, infos, open_page
from helpers.dashboard import open_tab as open_lazy_tab
from streamlit.testing.v1 import AppTest

from core.text.markdown import escaped
from dashboard import charts, models
from dashboard.navigation import ATTENTION_STEPS, TAB_PARAMETER
from dashboard.prompt import MAX_PROMPT_CHARS, MAX_WORD_SHOWN, WORD_EXAMPLES, prepare_prompt
from dashboard.views import overview  # noqa: F401  (only its constants: the page runs in AppTest)

TIMEOUT = 120


@pytest.fixture
def models_folder(tmp_path, monkeypatch):
    """The sessions of `app` start with an empty models folder."""
    monkeypatch.setenv("GLASSBOX_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture
def app_timeout():
    return TIMEOUT


def open_tab(at: AppTest, label: str) -> AppTest:
    """Open the step-by-step page's tab `label`."""
    return open_lazy_tab(at, "steps_tab", label)


def chart_specs(at: AppTest) -> list[dict]:
    import json

    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def parts(spec: dict) -> list[dict]:
    return spec.get("hconcat") or spec.get("concat") or [spec]


# --- settings kept for the session ----------------------------------------------------------------

def test_step_settings_survive_other_tabs_and_pages(app):
    open_page(app, "attention_steps")
    app.selectbox(key="steps_layer").set_value(1)
    app.selectbox(key="steps_head").set_value(2).run()
    open_tab(app, ATTENTION_STEPS.tabs.one_weight)
    app.selectbox(key="steps_query").set_value(1)
    app.selectbox(key="steps_key").set_value(0).run()
    open_tab(app, ATTENTION_STEPS.tabs.scores)  # the query and key widgets are not drawn in this run
    open_page(app, "overview")
    open_page(app, "attention_steps")
    assert app.session_state["steps_tab"] == ATTENTION_STEPS.tabs.scores  # the tab too
    assert app.selectbox(key="steps_layer").value == 1 and app.selectbox(key="steps_head").value == 2
    open_tab(app, ATTENTION_STEPS.tabs.one_weight)
    assert app.selectbox(key="steps_query").value == 1


def test_a_kept_query_token_outside_a_shorter_prompt_falls_back(app):
    open_page(app, "attention_steps")
    open_tab(app, ATTENTION_STEPS.tabs.one_weight)
    app.selectbox(key="steps_query").set_value(2).run()
    app.text_input(key="prompt").set_value("the sky").run()
    assert_clean(app)
    assert app.selectbox(key="steps_query").value == 1  # the last token of the new prompt


# --- the overview's diagram -----------------------------------------------------------------------

def test_the_diagram_draws_the_residual_connections_clear_of_the_block_label(app):
    dot = app.get("graphviz_chart")[0].proto.spec
    assert dot.count('xlabel="residual"') == 2 and 'label="+"' in dot
    assert "labeljust=l" in dot and "(each adds to the residual stream)" not in dot


def test_every_box_links_to_the_page_and_tab_that_explains_it(app):
    from urllib.parse import parse_qs

    links = app.get("page_link")
    labels = [link.proto.label for link in links]
    dot = app.get("graphviz_chart")[0].proto.spec
    for step in overview.EXPLAINED_IN:
        if step != "+ (residual)":
            assert f'label="{step}: ' in dot
        assert any(label.startswith(f"{step} → ") for label in labels), step
    scores = next(link for link in links if link.proto.label.startswith("scores → "))
    assert scores.proto.page.endswith(ATTENTION_STEPS.url_path)
    assert parse_qs(scores.proto.query_string)[TAB_PARAMETER] == [ATTENTION_STEPS.tabs.scores]


def test_a_link_with_a_tab_opens_that_tab(app):
    app.query_params[TAB_PARAMETER] = ATTENTION_STEPS.tabs.softmax
    open_page(app, "attention_steps")
    assert app.session_state["steps_tab"] == ATTENTION_STEPS.tabs.softmax
    assert any(element.value == "#### 4. Softmax, the stable way" for element in app.markdown)
    assert TAB_PARAMETER not in app.query_params  # used once: later visits keep the learner's own tab


# --- sidebar: examples, vocabulary, prompt limits -------------------------------------------------

def test_example_prompts_are_ones_the_bundled_model_is_unsure_about():
    import core
    from core.explain import sampling_lab

    model = core.load_default()
    for text in WORD_EXAMPLES:
        probs = model.run(text).next_token_probs
        assert sampling_lab.entropy_bits(probs) > 1.5, text  # several plausible next words
        assert probs.max() < 0.7, text


def test_an_example_prompt_is_one_click(app):
    button = next(button for button in app.button if button.label == WORD_EXAMPLES[0])
    button.click().run()
    assert_clean(app)
    assert app.text_input(key="prompt").value == WORD_EXAMPLES[0]
    assert any(element.value.startswith("2 tokens:") for element in app.markdown)


def test_the_vocabulary_search_lists_matching_tokens(app):
    app.text_input(key="vocab_search").set_value("sk").run()
    assert_clean(app)
    listed = next(element.value for element in app.markdown if "`sky`" in element.value
                  and all(word.startswith("`") for word in element.value.split()))  # the list, not the prompt
    tokens = [token.strip("`") for token in listed.split()]
    assert tokens and all("sk" in token for token in tokens)
    assert any(element.value.startswith(f"{len(tokens)} match") for element in app.caption)


def test_one_token_is_one_token(app):
    app.text_input(key="prompt").set_value("sky").run()
    assert_clean(app)
    text = "\n".join(element.value for element in app.markdown)
    assert "1 token:" in text and "1 tokens" not in text


def test_unknown_words_are_quoted_and_cut_short(app):
    long_word = "q" * 500
    app.text_input(key="prompt").set_value(f"the sky is ! {long_word}").run()
    assert_clean(app)
    notice = infos(app)
    assert "`<unk>`: `!`, `" + "q" * MAX_WORD_SHOWN + "…`" in notice
    assert long_word not in notice and "!." not in notice


def test_the_prompt_box_limits_characters_and_a_longer_prompt_is_cut(app):
    import core

    assert app.text_input(key="prompt").proto.max_chars == MAX_PROMPT_CHARS
    app.session_state["prompt"] = "the sky is blue . " * 100  # 1,800 characters, past the box's limit
    app.run()
    assert_clean(app)
    assert len(app.text_input(key="prompt").value) <= MAX_PROMPT_CHARS
    prompt = prepare_prompt(core.load_default(), "the sky is blue . " * 100)  # a prompt set by code
    assert f"the prompt is cut to its first {MAX_PROMPT_CHARS:,} characters" in prompt.notices
    assert len(prompt.text) == MAX_PROMPT_CHARS and len(prompt.ids) == 32


# --- figures that fit the page --------------------------------------------------------------------

def test_a_32_token_prompt_keeps_every_label_and_fits_the_page(app):
    from dashboard.views import attention_steps as steps_page

    app.text_input(key="prompt").set_value(" ".join(["the sky is blue ."] * 7)).run()
    open_page(app, "attention_steps")
    open_tab(app, ATTENTION_STEPS.tabs.scores)
    (figure,) = chart_specs(app)
    charts_ = parts(figure)
    assert [chart["title"] for chart in charts_][2] == "Masked: future tokens hidden (-inf)"
    columns = figure.get("columns", len(charts_))
    widths = [charts.estimated_width(chart) for chart in charts_]
    assert sum(widths[:columns]) <= charts.PAGE_WIDTH
    masked = charts_[2]
    axes = [layer["encoding"][channel]["axis"] for layer in masked["layer"] for channel in ("x", "y")]
    assert all(axis["labelOverlap"] is False for axis in axes)
    assert len(masked["layer"][-1]["encoding"]["y"]["sort"]) == 32
    open_tab(app, ATTENTION_STEPS.tabs.vector_map)
    (figure,) = chart_specs(app)
    assert figure["columns"] == 2  # side by side: each legend on top, inside its chart's width (the
    assert all(chart["width"] == steps_page.PCA_WIDTH for chart in parts(figure))  # browser test measures it)
    assert 2 * steps_page.PCA_WIDTH + 200 <= charts.PAGE_WIDTH


# --- the picker and a trained model ---------------------------------------------------------------

def test_a_trained_model_stays_in_the_picker_while_another_model_is_in_use(app):
    import core

    default = core.load_default()
    params = dict(default.params, **{"lm_head.weight": default.params["lm_head.weight"][::-1].copy()})
    trained = core.Model(default.config, params, default.tokenizer)  # stands in for a model trained in this session
    app.session_state["trained_model"], app.session_state["trained_model_id"] = trained, "run 1"
    app.session_state["model_choice"] = models.TRAINED
    app.run()
    assert_clean(app)
    expected = trained.run("the sky is").top_predictions(1)[0][0]
    assert app.metric[0].value == expected != "blue"
    assert any("Model: " + escaped("your trained model (run 1)") in element.value for element in app.caption)
    picker = app.selectbox(key="model_picker")
    assert list(picker.options) == [models.picker_label(models.BUNDLED), models.picker_label(models.TRAINED)]
    picker.set_value(models.BUNDLED).run()
    assert app.metric[0].value == "blue"
    app.selectbox(key="model_picker").set_value(models.TRAINED).run()
    assert_clean(app)
    assert app.metric[0].value == expected
