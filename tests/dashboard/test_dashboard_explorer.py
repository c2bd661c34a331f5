"""The attention explorer through Streamlit's AppTest: GPT-2's shapes (12 layers x 12 heads,
d_model 768, 3,072 MLP units), every head and layer labelled, the logit lens as a layers x
positions table, a symmetric MLP colour scale, "what if" applied to every view, and the
explorer's settings kept for the session."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.dashboard import FULL_CONTEXT, LONG_WORDS, assert_clean, assert_every_tab_fits, infos, open_page
from helpers.dashboard import open_tab, rows, set_prompt, titled, use_gpt2

import core
from core.explain import heads as explain_heads
from core.explain import stream as explain_stream
from core.model.interventions import Interventions
from dashboard import charts, models
from dashboard.navigation import EXPLORER

PROMPT = "the sky is"


def labels_of(model, prompt: str = PROMPT) -> list[str]:
    return charts.token_labels(model.run(prompt).tokens)


@pytest.fixture
def gpt2_explorer(app, gpt2):
    open_page(app, "explorer")
    return use_gpt2(app)


# --- GPT-2's shapes -------------------------------------------------------------------------------

def test_gpt2_shaped_every_head_in_one_chart_and_12_x_12_summaries(gpt2_explorer, gpt2):
    at = gpt2_explorer
    tiles = titled(at, r"^All 12 layers x 12 heads")
    assert {(row["layer"], row["head"]) for row in rows(tiles)} == {(l, h) for l in range(12) for h in range(12)}
    assert len(rows(tiles)) == 144 * 3 * 3  # "the sky is": every weight of every head, in one chart
    assert "facet" not in tiles and tiles["width"] <= 600
    for title in ("Entropy", "previous token", "first token"):
        summary = titled(at, title)
        assert len(rows(summary)) == 144
        assert {row["col"] for row in rows(summary)} == {str(h) for h in range(12)}
        assert summary["layer"][0]["encoding"]["x"]["axis"]["labelOverlap"] is False  # every head labelled
    expected = explain_heads.head_summaries(gpt2.run(PROMPT).layers[11].weights)["entropy"][7]
    shown = {(row["row"], row["col"]): row["value"] for row in rows(titled(at, "Entropy"))}
    assert shown[("11", "7")] == pytest.approx(expected, rel=1e-6)
    assert "rows 1 to L-1" in "\n".join(element.value for element in at.caption)
    at.selectbox(key="explorer_layer").set_value(11)
    at.selectbox(key="explorer_head").set_value(5).run()
    assert_clean(at)
    large = rows(titled(at, r"^Layer 11, head 5$"))
    weights = gpt2.run(PROMPT).layers[11].weights[5]
    labels = labels_of(gpt2)
    assert labels == ["0 the", "1 ␣sky", "2 ␣is"]  # GPT-2's BPE, a leading space shown as ␣
    assert {(row["row"], row["col"]): row["value"] for row in large}[(labels[2], labels[1])] == \
        pytest.approx(weights[2, 1], rel=1e-5)


def test_gpt2_shaped_logit_lens_is_a_layers_by_positions_table(gpt2_explorer, gpt2):
    at = open_tab(gpt2_explorer, "explorer_tab", EXPLORER.tabs.lens)
    lens = rows(titled(at, "Top next-token guesses at each position"))
    assert {row["row"] for row in lens} == {"embeddings", *(f"after block {i}" for i in range(12))}
    labels = labels_of(gpt2)
    assert {row["col"] for row in lens} == set(labels)
    model = gpt2
    assert model.config.vocab_size == 50257
    trace = model.run(PROMPT)
    final = {row["col"]: row for row in lens if row["row"] == "after block 11"}
    for position, label in enumerate(labels):
        probs = np.exp(trace.logits[position] - trace.logits[position].max())
        probs /= probs.sum()
        assert final[label]["token"] == model.tokenizer.token(int(probs.argmax()))
        assert final[label]["probability"] == pytest.approx(probs.max(), rel=1e-4)


def test_gpt2_shaped_mlp_shows_the_most_active_of_3072_units_on_a_symmetric_scale(gpt2_explorer, gpt2):
    at = open_tab(gpt2_explorer, "explorer_tab", EXPLORER.tabs.mlp)
    at.selectbox(key="explorer_mlp_layer").set_value(3).run()
    assert_clean(at)
    chart = titled(at, r"The 24 of 3,072 hidden units that fire most")
    post = gpt2.run(PROMPT).layers[3].mlp_post  # [3, 3072]
    units = explain_stream.top_units(post, 24)
    assert [row["col"] for row in rows(chart)][:24] == [f"unit {u}" for u in units]
    values = [row["value"] for row in rows(chart)]
    largest = max(abs(value) for value in values)
    scale = next(layer["encoding"]["color"]["scale"] for layer in chart["layer"] if "color" in layer["encoding"])
    assert scale["domain"] == pytest.approx([-largest, largest])  # equal colours, equal sizes on both sides of 0
    assert scale["domainMid"] == 0


# --- what if, on every view -------------------------------------------------------------------------

def test_what_if_applies_to_every_view_with_the_plain_model_one_click_away(app):
    open_page(app, "explorer")
    plain_large = {(row["row"], row["col"]): row for row in rows(titled(app, r"^Layer 0, head 0$"))}
    assert plain_large[("0 the", "2 is")]["value"] == 0.0  # the mask hides the future
    open_tab(app, "explorer_tab", EXPLORER.tabs.what_if)
    app.toggle(key="whatif_mask").set_value(True).run()
    assert_clean(app)
    open_tab(app, "explorer_tab", EXPLORER.tabs.every_head)
    assert "What if: no causal mask" in infos(app) and "bottom row" in infos(app)
    large = {(row["row"], row["col"]): row for row in rows(titled(app, r"^Layer 0, head 0 · what if$"))}
    no_mask = core.load_default().run("the sky is", interventions=Interventions(causal=False))
    assert large[("0 the", "2 is")]["value"] > 0.0
    assert large[("0 the", "2 is")]["value"] == pytest.approx(no_mask.layers[0].weights[0, 0, 2], rel=1e-5)
    assert titled(app, r"^All 2 layers x 4 heads · what if$")
    open_tab(app, "explorer_tab", EXPLORER.tabs.lens)
    lens = rows(titled(app, r"Top next-token guesses at each position · what if$"))
    assert lens and titled(app, r"vector · what if$")
    open_tab(app, "explorer_tab", EXPLORER.tabs.mlp)
    assert titled(app, r"fire most \(after GELU\) · what if$")

    app.toggle(key="explorer_plain").set_value(True).run()  # one click back to the plain model
    assert_clean(app)
    assert titled(app, r"fire most \(after GELU\)$")
    open_tab(app, "explorer_tab", EXPLORER.tabs.every_head)
    assert rows(titled(app, r"^Layer 0, head 0$")) == list(plain_large.values())
    assert "Showing the plain model" in infos(app)


def test_what_if_says_why_a_switch_cannot_act_on_a_one_token_prompt(app):
    open_page(app, "explorer")
    set_prompt(app, "the")
    open_tab(app, "explorer_tab", EXPLORER.tabs.what_if)
    app.toggle(key="whatif_scale").set_value(True).run()
    assert_clean(app)
    assert "one-token prompt" in infos(app) and "cannot change anything" in infos(app)
    assert float(next(m.value for m in app.metric if m.label == "Total variation")) == 0.0
    assert "do not change the next-token distribution" in infos(app)


# --- settings kept for the session ------------------------------------------------------------------

def test_layer_head_and_switches_survive_other_tabs_and_pages(app):
    open_page(app, "explorer")
    app.selectbox(key="explorer_layer").set_value(1)
    app.selectbox(key="explorer_head").set_value(3).run()
    open_tab(app, "explorer_tab", EXPLORER.tabs.what_if)
    app.multiselect(key="whatif_heads").set_value([(1, 2)])
    app.toggle(key="whatif_relu").set_value(True).run()
    open_tab(app, "explorer_tab", EXPLORER.tabs.mlp)
    app.selectbox(key="explorer_mlp_layer").set_value(1).run()
    open_page(app, "sampling")
    open_page(app, "explorer")
    open_tab(app, "explorer_tab", EXPLORER.tabs.mlp)
    assert app.selectbox(key="explorer_mlp_layer").value == 1
    assert titled(app, r"fire most \(after ReLU\) · what if$")  # the switches still apply
    open_tab(app, "explorer_tab", EXPLORER.tabs.every_head)
    assert (app.selectbox(key="explorer_layer").value, app.selectbox(key="explorer_head").value) == (1, 3)
    assert titled(app, r"^Layer 1, head 3 · what if$")
    open_tab(app, "explorer_tab", EXPLORER.tabs.what_if)
    assert app.multiselect(key="whatif_heads").value == [(1, 2)] and app.toggle(key="whatif_relu").value


def test_a_kept_layer_that_the_next_model_lacks_falls_back(app, gpt2):
    open_page(app, "explorer")
    use_gpt2(app)
    app.selectbox(key="explorer_layer").set_value(11).run()
    app.session_state["model_choice"] = models.BUNDLED  # back to the bundled 2-layer model
    app.run()
    assert_clean(app)
    assert app.selectbox(key="explorer_layer").value == 0
    assert titled(app, r"^Layer 0, head 0$")


def test_a_long_prompt_pools_the_overview_and_labels_the_enlarged_head(app, gpt2):
    open_page(app, "explorer")
    use_gpt2(app)
    long_prompt = " ".join(["the sky is blue ."] * 8)
    labels = labels_of(gpt2, long_prompt)
    assert len(labels) == 40
    set_prompt(app, long_prompt)
    assert_clean(app)
    tiles = rows(titled(app, r"^All 12 layers x 12 heads"))
    assert len(tiles) == 144 * 9 * 9  # blocks of about 4 positions
    assert any("blocks of about 4 positions" in element.value for element in app.caption)
    large = titled(app, r"^Layer 0, head 0$")
    assert len({row["col"] for row in rows(large)}) == 40
    assert large["layer"][0]["encoding"]["x"]["axis"]["labelOverlap"] is False
    assert large["width"] <= 900
    open_tab(app, "explorer_tab", EXPLORER.tabs.lens)
    assert {row["col"] for row in rows(titled(app, "Top next-token guesses"))} == \
        set(labels[32:])  # the last 8 positions: only what is shown is computed


# --- every figure fits the page at 1280 px ---------------------------------------------------

@pytest.mark.parametrize("prompt", [PROMPT, FULL_CONTEXT])
def test_every_explorer_figure_fits_the_page_at_1280_px(app, prompt):
    app.session_state["kept:whatif_mask"] = True  # titles marked "· what if", the longest
    open_page(app, "explorer")
    set_prompt(app, prompt)
    assert_every_tab_fits(app, "explorer_tab", EXPLORER.tabs)


@pytest.mark.parametrize("prompt", [LONG_WORDS, " ".join([LONG_WORDS] * 8)])
def test_every_explorer_figure_fits_the_page_at_1280_px_on_gpt2_shapes(app, gpt2, prompt):
    """Long BPE tokens beside the overview (12 tokens), and a long prompt below it."""
    open_page(app, "explorer")
    use_gpt2(app)
    set_prompt(app, prompt)
    assert_every_tab_fits(app, "explorer_tab", EXPLORER.tabs)


# --- the new chart builders draw ---------------------------------------------------------------------

def test_head_tiles_and_lens_grid_are_valid_vega_lite_with_every_label():
    import altair as alt

    from dashboard import charts
    patterns = np.tril(np.ones((12, 12, 4, 4)))
    patterns /= patterns.sum(axis=-1, keepdims=True)
    tiles = charts.head_tiles(patterns, ["0 a", "1 b", "2 c", "3 d"], selected=(11, 11), width=320)
    svg = charts.to_svg(tiles)
    assert svg.count("<text") >= 24 + 1  # 12 layer and 12 head labels, the title
    assert tiles["width"] == 12 * 26 and tiles["height"] == 12 * 26
    alt.Chart.from_dict({k: v for k, v in tiles.items() if k != "$schema"}, validate=True)
    lens = charts.lens_grid(["embeddings", "after block 0"], ["0 a", "1 b"], [["x", "y"], ["z", "w"]],
                            [[0.5, 0.25], [1.0, 0.0]], [["x 50%", "y 25%"], ["z 100%", "w 0%"]], title="lens")
    assert "z" in charts.to_svg(lens)
    alt.Chart.from_dict({k: v for k, v in lens.items() if k != "$schema"}, validate=True)
    with pytest.raises(ValueError):
        charts.lens_grid(["a"], ["b"], [["x"]], [[0.5, 0.5]], [["x"]], title="bad")


def test_a_legend_below_the_cells_makes_a_figure_narrower():
    from helpers.chart_widths import drawn_width

    from dashboard import charts
    values = np.linspace(0, 1, 12 * 12).reshape(12, 12)
    labels = [str(i) for i in range(12)]
    beside = charts.heatmap(values, labels, labels, title="t", cell=12)
    below = charts.heatmap(values, labels, labels, title="t", cell=12, legend_below=True)
    assert below["layer"][0]["encoding"]["color"]["legend"] == {"orient": "bottom"}
    assert "legend" not in beside["layer"][0]["encoding"]["color"]
    assert drawn_width(below) < drawn_width(beside) - 40
    tiles = charts.head_tiles(values.reshape(2, 2, 6, 6), labels[:6], width=200, legend_below=True)
    assert tiles["layer"][0]["encoding"]["color"]["legend"] == {"orient": "bottom"}
    lens = charts.lens_grid(["a"], ["0 x", "1 y"], [["p", "q"]], [[0.5, 0.5]], [["p", "q"]], title="lens",
                            col_width=60, legend_below=True)
    assert lens["width"] == 120 and lens["layer"][0]["encoding"]["color"]["legend"] == {"orient": "bottom"}
    assert lens["layer"][1]["mark"]["limit"] == 54  # a token's text stays inside its cell
