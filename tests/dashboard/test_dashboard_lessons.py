"""The lesson pages through Streamlit's AppTest (The block step by step, Practice, Experiments,
Start here, Glossary): the numbers they show are the model's, the questions' right answers are
the real argmax, typed values are checked within the tolerance, the naive softmax breaks past the
overflow point; and the pages work on a GPT-2-shaped model (12 x 12 heads, width 768)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.dashboard import assert_clean, markdown, open_page, open_tab, rows, titled
from streamlit.testing.v1 import AppTest

import core
from core.explain import exercises
from core.explain import experiments as explain_experiments
from core.explain import questions as explain_questions
from dashboard.navigation import ATTENTION_STEPS, BLOCK_STEPS, EXPERIMENTS, GLOSSARY, OVERVIEW, PRACTICE

TOY = core.load_default()
SKY = TOY.run("the sky is")


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


# --- every page -------------------------------------------------------------------------------------

@pytest.mark.parametrize("page, title", [
    ("block_steps", "The block step by step"), ("practice", "Practice"), ("experiments", "Experiments"),
    ("start_here", "Start here"), ("glossary", "Glossary"),
])
def test_the_lesson_pages_open_clean(app, page, title):
    open_page(app, page)
    assert [element.value for element in app.title] == [title]


# --- the block step by step -------------------------------------------------------------------------

@pytest.mark.parametrize("tab", BLOCK_STEPS.tabs)
def test_every_block_tab_draws_its_chart_and_checks_against_the_model(app, tab):
    open_page(app, "block_steps")
    open_tab(app, "block_tab", tab)
    assert app.get("vega_lite_chart")
    differences = [float(line.rsplit(": ", 1)[1]) for line in markdown(app).splitlines()
                   if line.startswith("Largest difference from the model's own")]
    differences += [float(value) for label, value in metrics(app).items() if label.startswith("largest difference")]
    assert all(difference < 1e-5 for difference in differences)
    assert differences or tab.startswith("5.")


def test_heads_joined_shows_the_attention_output_and_each_heads_piece(app):
    open_page(app, "block_steps")
    open_tab(app, "block_tab", BLOCK_STEPS.tabs.joined)
    assert f"attention output[2 is] = [{SKY.layers[0].attn_out[2, 0]:.4f}," in markdown(app)
    pieces = rows(titled(app, "How big each head's piece"))
    assert [row["label"] for row in pieces] == ["head 0", "head 1", "head 2", "head 3"]


def test_projections_show_the_models_q_for_the_chosen_head(app):
    open_page(app, "block_steps")
    app.selectbox(key="block_layer").set_value(1).run()
    app.selectbox(key="block_head").set_value(2).run()
    text = markdown(app)
    assert "`X [3, 64] @ W_Q [64, 16] + b_Q [16] = Q [3, 16]`" in text
    assert f"= **{SKY.layers[1].q[2, 2, 0]:.4f}**" in text
    assert f"= **{SKY.layers[1].v[2, 2, 0]:.4f}**" in text
    assert "c_attn.weight[:, 160:176]" in "\n".join(caption.value for caption in app.caption)  # V of head 2: 128 + 32


def test_layer_norm_tab_shows_the_mean_and_variance_of_the_token(app):
    open_page(app, "block_steps")
    open_tab(app, "block_tab", BLOCK_STEPS.tabs.layer_norm)
    x = SKY.layers[0].resid_pre[2].astype(np.float64)
    shown = metrics(app)
    assert shown["mean"] == f"{x.mean():.4f}" and shown["variance"] == f"{x.var():.4f}"
    assert float(shown["largest difference from the model"]) < 1e-5


def test_mlp_tab_plots_the_tokens_pre_activations_on_gelu(app):
    open_page(app, "block_steps")
    open_tab(app, "block_tab", BLOCK_STEPS.tabs.mlp)
    chart = titled(app, "GELU, with 2 is's 256 pre-activations")
    assert chart["layer"][1]["mark"]["type"] == "circle"
    assert f"{SKY.layers[0].mlp_out[2, 0]:.4f}" in markdown(app)


def test_residual_tab_contributions_sum_to_the_real_logit(app):
    open_page(app, "block_steps")
    open_tab(app, "block_tab", BLOCK_STEPS.tabs.residual)
    shown = metrics(app)
    logit = float(SKY.logits[-1, TOY.tokenizer.ids["blue"]])
    assert shown["logit of blue"] == f"{logit:.4f}" == shown["sum of the parts + bias term"]
    pushes = {row["label"]: row["value"] for row in rows(titled(app, "pushes the logit of blue"))}
    assert len(pushes) == 6 and max(pushes, key=pushes.get) == "MLP 0"


# --- practice -----------------------------------------------------------------------------------------

def attention_radio(at: AppTest):
    (radio,) = [radio for radio in at.radio if radio.key.startswith("answer-attend-")]
    return radio


def test_a_right_answer_scores_and_reveals_the_real_weights(app):
    open_page(app, "practice")
    assert metrics(app)["Your score this session"] == "0 / 0"
    radio = attention_radio(app)
    row = SKY.layers[0].weights[0, 2]
    right = radio.options[int(np.argmax(row))]
    radio.set_value(right).run()
    assert metrics(app)["Your score this session"] == "1 / 1"
    assert any(element.value.startswith(f"Right: {right}") for element in app.success)
    assert f"({100 * row.max():.3g}%)" in markdown(app)
    attention_radio(app).set_value(radio.options[int(np.argmin(row))]).run()  # a second answer does not count
    assert metrics(app)["Your score this session"] == "1 / 1"


def test_a_wrong_answer_counts_and_says_the_answer(app):
    open_page(app, "practice")
    (radio,) = [radio for radio in app.radio if radio.key.startswith("answer-next-")]
    radio.set_value("red").run()
    assert metrics(app)["Your score this session"] == "0 / 1"
    assert any("the answer is blue" in element.value for element in app.warning)


def test_typed_values_are_checked_within_the_tolerance(app):
    open_page(app, "practice")
    open_tab(app, "practice_tab", PRACTICE.tabs.compute)
    exercise = exercises.score_exercise(SKY, 0, 0, 2, 0, "")
    box = app.text_input(key=[box.key for box in app.text_input if box.key.startswith("typed-score-")][0])
    box.set_value(f"{exercise.answer + 0.5 * exercise.tolerance:.6f}").run()
    assert any(element.value.startswith("Right: the model's own value is") for element in app.success)
    box = app.text_input(key=box.key)
    box.set_value(f"{exercise.answer + 2 * exercise.tolerance:.6f}").run()
    assert not app.success and any(element.value.startswith("Not yet") for element in app.warning)
    app.text_input(key=box.key).set_value("twelve").run()
    assert any("is not a number" in element.value for element in app.warning)
    assert_clean(app)


def test_hints_come_one_at_a_time(app):
    open_page(app, "practice")
    open_tab(app, "practice_tab", PRACTICE.tabs.compute)
    (button,) = [button for button in app.button if button.key.startswith("hint-softmax-")]
    button.click().run()
    scores = SKY.layers[0].masked_scores[0, 2, :3]
    text = markdown(app)
    assert f"The row's largest score: {scores.max():.4f}" in text and "Subtract it" not in text
    app.button(key=button.key).click().run()
    assert "Subtract it" in markdown(app) and "exp of each" not in markdown(app)


# --- experiments --------------------------------------------------------------------------------------

def test_naive_softmax_breaks_past_the_overflow_point_and_the_stable_one_does_not(app):
    open_page(app, "experiments")
    app.selectbox(key="overflow_layer").set_value(1).run()
    app.selectbox(key="overflow_head").set_value(2).run()
    row = SKY.layers[1].masked_scores[2, 2, :3]
    breaking = explain_experiments.breaking_factor(row)
    assert f"breaks past a factor of **{breaking:.2f}**" in markdown(app)
    assert metrics(app)["naive: NaN weights"] == "0"
    past = next(factor for factor in explain_experiments.pressure_factors(breaking) if factor > breaking)
    app.select_slider(key="overflow_factor").set_value(past).run()
    shown = metrics(app)
    assert int(shown["naive: NaN weights"]) >= 1 and shown["stable: sum of weights"] == "1.000000"
    assert float(shown["C kernel vs stable"]) < 1e-5
    table = app.table[0].value
    assert "NaN" in list(table["naive weight"]) and "NaN" not in list(table["stable weight"])
    assert "NaN" not in list(table["C kernel weight"])


def test_minimal_pairs_show_the_change_in_the_next_token(app):
    open_page(app, "experiments")
    open_tab(app, "experiments_tab", EXPERIMENTS.tabs.pairs)
    grass = TOY.run("the grass is")
    result = explain_experiments.minimal_pair(SKY, grass)
    shown = metrics(app)
    assert shown["first: next token"] == "blue" and shown["second: next token"] == "green"
    assert shown["total variation"] == f"{result['next_token']['total_variation']:.4f}"
    distances = [row["y"] for row in rows(titled(app, "Distance between the last tokens"))]
    np.testing.assert_allclose(distances, result["distance"], rtol=1e-9)
    app.text_input(key="pair_b").set_value("").run()
    assert any("Second prompt" in element.value for element in app.warning)
    assert_clean(app)


def test_attention_against_effect_scatter_holds_every_toy_head(app):
    open_page(app, "experiments")
    open_tab(app, "experiments_tab", EXPERIMENTS.tabs.ablation)
    points = rows(titled(app, "Attention against effect on blue"))
    assert len(points) == 8
    heads = explain_experiments.heads_to_ablate(TOY.config, None)
    effects = explain_questions.ablation_effects(TOY, SKY.ids, TOY.tokenizer.ids["blue"], heads)
    largest, _ = explain_experiments.last_token_focus(SKY)
    np.testing.assert_allclose([point["y"] for point in points], effects, atol=1e-12)
    np.testing.assert_allclose([point["x"] for point in points], largest.ravel(), atol=1e-12)


# --- start here and the glossary ----------------------------------------------------------------------

def test_the_path_keeps_progress_and_links_to_the_pages(app):
    from urllib.parse import parse_qs

    open_page(app, "start_here")
    assert [expander.label.split(".")[0] for expander in app.main.expander] == [str(n) for n in range(1, 11)]
    links = [link.proto for link in app.get("page_link")]
    assert [link.label for link in links][:3] == [
        OVERVIEW.title, f'{ATTENTION_STEPS.title}: tab "{ATTENTION_STEPS.tabs.embeddings}"',
        f'{BLOCK_STEPS.title}: tab "{BLOCK_STEPS.tabs.projections}"']
    assert all(link.page_script_hash for link in links)  # each resolves to a page of the navigation
    assert parse_qs(links[1].query_string)["tab"] == [ATTENTION_STEPS.tabs.embeddings]
    assert "0 of 10 stops done" in app.get("progress")[0].proto.text
    app.radio(key="path-path-tokens").set_value("3").run()
    app.run()
    assert "1 of 10 stops done" in app.get("progress")[0].proto.text
    app.radio(key="path-path-softmax").set_value("0").run()
    assert any(element.value.startswith("Not quite") for element in app.warning)
    assert "1 of 10 stops done" in app.get("progress")[0].proto.text


def test_the_glossary_has_an_anchor_for_every_term(app):
    from dashboard import glossary

    open_page(app, "glossary")
    anchors = {element.proto.anchor for element in app.subheader}
    for term in ("logit", "softmax", "entropy", "bits and nats", "KL divergence", "total variation", "surprisal",
                 "perplexity", "PCA", "KV cache", "<unk>", "residual stream", "LayerNorm", "GELU", "head",
                 "d_model", "d_head"):
        assert glossary.anchor(term) in anchors
    assert glossary.link("KV cache") == f"[KV cache]({GLOSSARY.url_path}#kv-cache)"


# --- a GPT-2-shaped model -----------------------------------------------------------------------------

def test_the_block_pages_work_on_a_gpt2_shaped_model(gpt2_app):
    open_page(gpt2_app, "block_steps")
    assert "`X [3, 768] @ W_Q [768, 64] + b_Q [64] = Q [3, 64]`" in markdown(gpt2_app)
    open_tab(gpt2_app, "block_tab", BLOCK_STEPS.tabs.residual)
    shown = metrics(gpt2_app)
    label = next(label for label in shown if label.startswith("logit of "))
    assert shown[label] == shown["sum of the parts + bias term"]
    assert len(rows(titled(gpt2_app, "pushes the logit"))) == 2 + 2 * 12


def test_gpt2_shaped_ablation_waits_for_the_button_and_does_one_layer(gpt2_app):
    open_page(gpt2_app, "experiments")
    open_tab(gpt2_app, "experiments_tab", EXPERIMENTS.tabs.ablation)
    assert not gpt2_app.get("vega_lite_chart")
    gpt2_app.selectbox(key="ablate_layer").set_value(11).run()
    gpt2_app.button(key="ablate_button").click().run()
    assert_clean(gpt2_app)
    points = rows(titled(gpt2_app, "Attention against effect"))
    assert len(points) == 12 and {point["group"] for point in points} == {"layer 11"}


def test_practice_works_on_a_gpt2_shaped_model(gpt2_app):
    open_page(gpt2_app, "practice")
    assert len([radio for radio in gpt2_app.radio if radio.key.startswith("answer-head-")]) <= 1
    open_tab(gpt2_app, "practice_tab", PRACTICE.tabs.compute)
    assert len([box for box in gpt2_app.text_input if box.key.startswith("typed-")]) == 3


# --- the two chart builders the lesson pages added ------------------------------------------------------

def test_the_new_chart_builders_make_valid_vega_lite():
    from dashboard import charts

    scatter = charts.labelled_scatter([0.9, 0.2], [-0.5, 0.01], ["L0H0", "L0H1"], ["layer 0", "layer 0"],
                                      title="Attention against effect", x_title="weight", y_title="change")
    curve = charts.curve_with_points([-1, 0, 1], [-0.16, 0, 0.84], [0.5], [0.35], title="GELU",
                                     x_title="pre", y_title="post")
    for chart in (scatter, curve):
        spec = chart.to_dict()  # validates against the Vega-Lite schema
        assert spec["title"] in ("Attention against effect", "GELU")
    assert [layer["mark"]["type"] for layer in scatter.to_dict()["layer"]] == ["circle", "text"]
