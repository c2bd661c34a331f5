"""Every dashboard page through Streamlit's AppTest: it opens without an exception or error, and
changing the prompt, layer, head, sampling settings, or training a few steps changes what is shown.
Pages are reached as a user reaches them: dashboard/app.py runs, then AppTest.switch_page."""
from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.ipc
import pytest
from helpers.dashboard import (
    APP,
    TIMEOUT,
    assert_clean,
    benchmark_json,
    markdown,
    open_page,
    open_tab,
    rows,
    set_prompt,
    specs,
    titled,
    train_and_wait,
)
from streamlit.testing.v1 import AppTest

from core.text.markdown import escaped
from dashboard.navigation import ATTENTION_STEPS, EXPLORER, OVERVIEW, SAMPLING


def svg_buttons(at: AppTest) -> list:
    """The "Save as SVG" buttons on the page."""
    return [button for button in at.download_button if button.label == "Save as SVG"]


# --- every page -----------------------------------------------------------------------------------

@pytest.mark.parametrize("page, title, charts", [
    ("overview", "Overview", 1), ("attention_steps", "Attention step by step", 3),
    ("explorer", "Attention explorer", 5), ("sampling", "Next token and sampling", 4),
    ("training", "Training", 0), ("benchmark", "Kernel benchmark", 0),
])
def test_every_page_opens_with_its_title_and_charts(app, page, title, charts):
    if page != "overview":
        open_page(app, page)
    assert [element.value for element in app.title] == [title]
    assert len(specs(app)) >= charts
    assert len(svg_buttons(app)) == len(app.get("vega_lite_chart"))  # one "Save as SVG" under every chart
    assert app.text_input(key="prompt").value == "the sky is"


def test_the_svg_button_names_the_file_after_the_chart_and_draws_it_only_on_click(app):
    (button,) = svg_buttons(app)
    assert button.key.endswith("-the-10-most-likely-next-tokens.svg")
    assert "SVG file" in button.help and button.proto.type == "tertiary" and button.proto.ignore_rerun
    assert button.proto.deferred_file_id and not button.proto.url  # a callable: no SVG drawn while the page runs


def test_svg_file_names_come_from_the_chart_titles():
    from dashboard import figures

    assert figures.svg_file_name({"title": "Layer 0, head 1"}) == "layer-0-head-1.svg"
    assert figures.svg_file_name({"hconcat": [{"title": "Raw scores q · k"}, {"title": "Scaled"}]}) == "raw-scores-q-k.svg"
    assert figures.svg_file_name({"concat": [{"mark": "bar"}], "columns": 2}) == "chart.svg"


def test_every_run_sends_the_prompt_to_the_browser(app):
    """A browser draws the prompt field once its code has loaded, which may be after the first run:
    a run that did not send the value left that field empty, and its next request emptied the prompt."""
    set_prompt(app, "the dog can")
    open_page(app, "sampling")
    app.run()
    field = app.text_input(key="prompt").proto
    assert (field.set_value, field.value) == (True, "the dog can")


def test_the_prompt_is_shared_by_every_page(app):
    set_prompt(app, "the dog can")
    open_page(app, "attention_steps")
    assert app.text_input(key="prompt").value == "the dog can"
    open_tab(app, "steps_tab", ATTENTION_STEPS.tabs.scores)
    labels = {row["row"] for row in rows(titled(app, "Raw scores"))}
    assert labels == {"0 the", "1 dog", "2 can"}


# --- overview -------------------------------------------------------------------------------------

def test_overview_follows_the_prompt(app):
    import core

    before = app.get("graphviz_chart")[0].proto.spec
    assert "[3]" in before
    set_prompt(app, "the cow lives on the")
    assert_clean(app)
    after = app.get("graphviz_chart")[0].proto.spec
    assert "[5]" in after and after != before
    expected = core.load_default().run("the cow lives on the").next_token_probs
    bars = {row["label"]: row["value"] for row in rows(titled(app, "The 10 most likely next tokens"))}
    top = max(bars, key=bars.get)
    assert app.metric[0].value == top
    assert bars[top] == pytest.approx(expected.max(), rel=1e-6)


def test_overview_model_card_names_the_backend(app):
    from core.native.kernel import default_backend

    card = app.table[0].value.set_index("")["value"]
    assert {"C kernel": "c", "NumPy fallback": "numpy"}[card["attention backend"]] == default_backend()


# --- attention step by step -----------------------------------------------------------------------

def test_attention_steps_draw_only_the_open_step(app):
    open_page(app, "attention_steps")
    assert [tab.label for tab in app.tabs][:3] == list(ATTENTION_STEPS.tabs[:3])
    assert {spec["title"] for spec in specs(app)} == {"Token embeddings [L, d_model]", "Position embeddings [L, d_model]",
                                                      "Input to layer 0's attention (after ln_1) [L, d_model]"}
    open_tab(app, "steps_tab", ATTENTION_STEPS.tabs.scores)
    assert [spec["title"] for spec in specs(app)][0] == "Raw scores q · k"
    assert not any("embeddings" in spec["title"] for spec in specs(app))


def test_attention_steps_follow_layer_and_head(app):
    open_page(app, "attention_steps")
    open_tab(app, "steps_tab", ATTENTION_STEPS.tabs.qkv)
    first = rows(titled(app, r"^Q \(queries\)"))
    app.selectbox(key="steps_head").set_value(2).run()
    assert_clean(app)
    other_head = rows(titled(app, r"^Q \(queries\)"))
    app.selectbox(key="steps_layer").set_value(1).run()
    other_layer = rows(titled(app, r"^Q \(queries\)"))
    assert first != other_head != other_layer


def test_attention_steps_softmax_rows_sum_to_one(app):
    open_page(app, "attention_steps")
    open_tab(app, "steps_tab", ATTENTION_STEPS.tabs.softmax)
    weights = rows(titled(app, "Divide by the row sum"))
    totals = {}
    for row in weights:
        totals[row["row"]] = totals.get(row["row"], 0.0) + (row["value"] or 0.0)
    assert totals and all(total == pytest.approx(1.0, abs=1e-5) for total in totals.values())
    open_tab(app, "steps_tab", ATTENTION_STEPS.tabs.scores)
    masked = rows(titled(app, "Masked"))
    assert {(row["row"], row["col"]) for row in masked if row["hidden"]} == {("0 the", "1 sky"), ("0 the", "2 is"),
                                                                             ("1 sky", "2 is")}


def test_worked_weight_matches_both_backends(app):
    import core
    from core.native.kernel import available_backends

    open_page(app, "attention_steps")
    open_tab(app, "steps_tab", ATTENTION_STEPS.tabs.one_weight)
    app.selectbox(key="steps_query").set_value(2)
    app.selectbox(key="steps_key").set_value(1).run()
    assert_clean(app)
    shown = {metric.label: metric.value for metric in app.metric}
    weights = core.load_default().run("the sky is").layers[0].weights[0]
    assert float(shown["NumPy fallback"]) == pytest.approx(weights[2, 1], abs=1e-6)
    if "c" in available_backends():
        assert float(shown["C kernel"]) == pytest.approx(weights[2, 1], abs=1e-6)
        assert float(shown["difference"]) < 1e-5
    assert "weight =" in markdown(app)
    app.selectbox(key="steps_query").set_value(0)
    app.selectbox(key="steps_key").set_value(2).run()
    assert any("mask hides it" in element.value for element in app.warning)


# --- attention explorer ---------------------------------------------------------------------------

def test_explorer_selected_head_and_what_if(app):
    open_page(app, "explorer")
    large = titled(app, r"^Layer 0, head 0$")
    app.selectbox(key="explorer_layer").set_value(1)
    app.selectbox(key="explorer_head").set_value(3).run()
    assert_clean(app)
    assert rows(titled(app, r"^Layer 1, head 3$")) != rows(large)
    open_tab(app, "explorer_tab", EXPLORER.tabs.what_if)
    assert float(next(m.value for m in app.metric if m.label == "Total variation")) == 0.0
    app.toggle(key="whatif_mask").set_value(True).run()
    assert_clean(app)
    assert float(next(m.value for m in app.metric if m.label == "Total variation")) > 0.0


def test_explorer_logit_lens_has_every_layer(app):
    open_page(app, "explorer")
    open_tab(app, "explorer_tab", EXPLORER.tabs.lens)
    lens = rows(titled(app, "Top next-token guesses"))
    assert {row["row"] for row in lens} == {"embeddings", "after block 0", "after block 1"}


# --- next token and sampling ----------------------------------------------------------------------

def stage_rows(at: AppTest) -> list[dict]:
    return rows(titled(at, "The distribution at every stage"))


def kept(at: AppTest, stage: str) -> int:
    return int(next(metric.value for metric in at.metric if metric.label == stage).split()[0])


def test_sampling_stages_follow_the_sliders(app):
    open_page(app, "sampling")
    plain = stage_rows(app)
    app.slider(key="temperature").set_value(0.3).run()
    assert_clean(app)
    cooler = stage_rows(app)
    assert plain != cooler
    vocab = kept(app, "raw softmax")
    app.number_input(key="top_k").set_value(5).run()
    assert kept(app, "after top-k") == 5 < vocab
    app.slider(key="top_p").set_value(0.001).run()
    assert_clean(app)
    assert kept(app, "after top-p (renormalised)") == 1
    assert any("tiny top-p" in element.value for element in app.info)


def test_sampling_extreme_settings_explain_themselves(app):
    open_page(app, "sampling")
    app.slider(key="temperature").set_value(0.0)
    app.number_input(key="top_k").set_value(100_000).run()
    assert_clean(app)
    notes = " ".join(element.value for element in app.info)
    assert "greedy" in notes and "keeps every token" in notes
    assert kept(app, "after temperature") == 1


def test_generation_steps_show_the_growing_kv_cache(app):
    open_page(app, "sampling")
    app.slider(key="new_tokens").set_value(3).run()
    last = titled(app, "new query over")
    assert "5 cached keys" in last["title"]
    app.slider(key="kv_step").set_value(1).run()
    assert "3 cached keys" in titled(app, "new query over")["title"]


def test_sampling_lab_compares_settings(app):
    open_page(app, "sampling")
    assert not any(spec["title"].endswith(": first token") for spec in specs(app))  # the lab's tab is closed
    open_tab(app, "sampling_tab", SAMPLING.tabs.lab)
    summary = app.dataframe[-1].value
    assert list(summary["setting"]) == ["greedy", "T=0.7", "T=1.5", "top-k 5", "top-p 0.9"]
    greedy = summary.set_index("setting").loc["greedy"]
    assert greedy["tokens kept"] == 1 and greedy["mean surprisal (bits)"] == 0.0
    assert (summary["tokens kept"] >= 1).all()


# --- training -------------------------------------------------------------------------------------

def test_training_a_few_steps_changes_the_model(app):
    open_page(app, "training")
    assert any("No training yet" in element.value for element in app.info)
    train_and_wait(app)
    losses = rows(titled(app, "^Loss of every run"))
    assert sorted({row["x"] for row in losses if row["series"] == "train"}) == [1, 2, 3]
    labels = [metric.label for metric in app.metric]
    assert "Held-out accuracy after" in labels
    assert any(escaped("your trained model (run 1") in element.value for element in app.caption)  # Markdown
    frames = app.select_slider[0]
    assert list(frames.options) == ["0", "1", "2", "3"]
    frames.set_value(0).run()
    assert_clean(app)
    assert titled(app, r"^Step 0: layer 0") and titled(app, "step 0 marked")
    app.button(key="train_reset").click().run()
    assert any("Model: default" in element.value for element in app.caption)


def test_one_session_training_leaves_another_sessions_model_alone(app):
    other = AppTest.from_file(str(APP), default_timeout=TIMEOUT)  # a second user: same process, same caches
    other.run()
    default_bars = rows(titled(other, "The 10 most likely next tokens"))
    open_page(app, "training")
    train_and_wait(app)
    app.switch_page(OVERVIEW.script).run()
    assert any("your trained model" in element.value for element in app.caption)
    assert rows(titled(app, "The 10 most likely next tokens")) != default_bars
    other.run()
    assert any("Model: default" in element.value for element in other.caption)
    assert rows(titled(other, "The 10 most likely next tokens")) == default_bars


# --- benchmark ------------------------------------------------------------------------------------

def test_benchmark_runs_the_chosen_grid(app):
    open_page(app, "benchmark")
    assert not app.dataframe and any("Nothing timed yet" in element.value for element in app.info)
    app.multiselect[0].set_value([32])
    app.button[0].click().run()
    assert_clean(app)
    names = set(app.dataframe[0].value["name"])
    assert names == {"dashboard h4 L32x32 d64 f32 causal"}


def line_rows(at: AppTest, pattern: str) -> list[dict]:
    """The data rows of the lines (first layer) of the one chart whose title matches `pattern`."""
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        if re.search(pattern, str(spec.get("title", ""))):
            datasets = {dataset.name: pyarrow.ipc.open_stream(dataset.data.data).read_all().to_pylist()
                        for dataset in chart.proto.datasets}
            return datasets[spec["layer"][0]["data"]["name"]]
    raise AssertionError(f"no chart titled {pattern}")


def test_benchmark_page_plots_saved_suite_results(app):
    open_page(app, "benchmark")
    saved = [("numpy", 256, 4e-3), ("c", 256, 5e-4), ("numpy", 1024, 6e-2), ("c", 1024, 4e-3)]
    app.get("file_uploader")[0].upload("results.json", benchmark_json(saved), "application/json")
    app.run()
    assert_clean(app)
    times = line_rows(app, "^Saved suite: time per call")
    assert {(row["series"], row["x"], round(row["y"], 9)) for row in times} == \
        {(backend, length, round(seconds * 1e3, 9)) for backend, length, seconds in saved}  # in ms
    speedups = {(row["series"], row["x"]): row["y"] for row in rows(titled(app, "^Saved suite: speed-up over NumPy$"))
                if row["series"] == "c"}
    assert speedups == {("c", 256): pytest.approx(8.0), ("c", 1024): pytest.approx(15.0)}
    app.get("file_uploader")[0].upload("broken.json", b"{not json", "application/json")
    app.run()
    assert not app.exception
    assert any("Could not read" in element.value for element in app.error)


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["overview", "attention_steps", "explorer", "sampling", "training"])
@pytest.mark.parametrize("prompt, message", [("", "empty"), ("zzz qqq", "vocabulary")])
def test_unusable_prompts_warn_and_the_page_still_works(app, page, prompt, message):
    if page != "overview":
        open_page(app, page)
    set_prompt(app, prompt)
    assert_clean(app)
    assert any(message in element.value for element in app.warning)
    assert app.title[0].value


def test_a_prompt_longer_than_the_context_is_truncated_with_a_notice(app):
    long_prompt = " ".join(["the sky is blue ."] * 12)
    set_prompt(app, long_prompt)
    assert_clean(app)
    assert any("only the last 32" in element.value for element in app.info)
    assert "[32]" in app.get("graphviz_chart")[0].proto.spec
    open_page(app, "explorer")
    grid = rows(titled(app, "All 2 layers"))
    assert len(grid) == 2 * 4 * 32 * 32 and np.isfinite([row["weight"] for row in grid]).all()
