"""Tests for dashboard.charts: the Vega-Lite specs carry token labels, axis titles and exact tooltips."""
from __future__ import annotations

import json

import altair as alt
import numpy as np
import pytest

from dashboard import charts


def _spec(chart) -> dict:
    """The chart's Vega-Lite spec, validated against the schema (heatmaps are already specs)."""
    if isinstance(chart, dict):
        alt.LayerChart.from_dict(chart)  # raises on a spec Vega-Lite would reject
        return chart
    return chart.to_dict()


def _data(spec: dict) -> list[dict]:
    """Every inline row of a spec (Altair moves data into `datasets`)."""
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


def _walk(spec):
    """Every dict inside a spec."""
    if isinstance(spec, dict):
        yield spec
        for value in spec.values():
            yield from _walk(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from _walk(value)


def _axis_titles(spec) -> set[str]:
    return {node["title"] for node in _walk(spec) if "field" in node and isinstance(node.get("title"), str)}


def test_token_labels_keep_repeated_words_apart():
    assert charts.token_labels(["the", "cat", "the"]) == ["0 the", "1 cat", "2 the"]


def test_heatmap_names_the_axes_and_marks_hidden_cells():
    weights = np.array([[1.0, -np.inf], [0.25, 0.75]])
    spec = _spec(charts.heatmap(weights, ["0 a", "1 b"], ["0 a", "1 b"], title="weights"))
    titles = _axis_titles(spec)
    assert charts.QUERY_TITLE in titles and charts.KEY_TITLE in titles
    rows = _data(spec)
    assert len(rows) == 4
    hidden = [row for row in rows if row["hidden"]]
    assert hidden == [{"row": "0 a", "col": "1 b", "value": None, "text": "−∞", "hidden": True}]
    assert {row["value"] for row in rows if not row["hidden"]} == {1.0, 0.25, 0.75}
    json.dumps(spec)  # no NaN or inf left in the spec


def test_heatmap_tooltips_show_the_value():
    spec = _spec(charts.heatmap(np.eye(2), ["a", "b"], ["a", "b"], title="t", value_title="score"))
    tooltips = [item for node in _walk(spec) if "tooltip" in node for item in node["tooltip"]]
    assert any(item.get("field") == "value" and item.get("title") == "score" for item in tooltips)


def test_heatmap_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        charts.heatmap(np.eye(2), ["a"], ["a", "b"], title="t")


def test_heatmap_axis_order_follows_the_tokens():
    labels = charts.token_labels(["z", "a", "m"])
    spec = _spec(charts.heatmap(np.eye(3), labels, labels, title="t"))
    sorts = [node["sort"] for node in _walk(spec) if node.get("field") in ("row", "col") and "sort" in node]
    assert sorts and all(sort == labels for sort in sorts)


def test_vectors_heatmap_labels_dimensions():
    spec = _spec(charts.vectors_heatmap(np.arange(6.0).reshape(2, 3), ["the", "sky"], title="q"))
    assert {row["col"] for row in _data(spec)} == {"d0", "d1", "d2"}
    assert {"token", "dimension"} <= _axis_titles(spec)


def test_bars_highlight_and_keep_values():
    spec = _spec(charts.bars(["blue", "green"], [0.9, 0.1], title="next", highlight="blue"))
    rows = _data(spec)
    assert [(row["label"], row["value"], row["chosen"]) for row in rows] == [("blue", 0.9, True), ("green", 0.1, False)]


def test_grouped_and_stage_bars_hold_every_series():
    spec = _spec(charts.grouped_bars(["a", "b"], {"observed": [0.5, 0.5], "theoretical": [0.6, 0.4]}, title="t"))
    assert len(_data(spec)) == 4
    stages = {"raw": np.array([0.6, 0.4]), "top_k": np.array([1.0, 0.0])}
    spec = _spec(charts.stage_bars(stages, ["a", "b"], title="stages"))
    assert {row["stage"] for row in _data(spec)} == {"raw", "top_k"}
    assert "facet" in spec


def test_scatter_2d_titles_carry_the_variance_share():
    spec = _spec(charts.scatter_2d(np.zeros((2, 2)), ["a", "b"], ["q", "k"], title="pca", share=[0.75, 0.25]))
    assert "PC 1 (75% of variance)" in _axis_titles(spec)


def test_head_grid_has_every_cell_and_the_selection():
    patterns = np.random.default_rng(0).random((2, 3, 4, 4))
    spec = _spec(charts.head_grid(patterns, ["a", "b", "c", "d"], selected=(1, 2)))
    rows = _data(spec)
    assert len(rows) == 2 * 3 * 16
    selected = {(row["layer"], row["head"]) for row in rows if row["selected"]}
    assert selected == {("layer 1", "head 2")}
    assert sorted(row["weight"] for row in rows) == sorted(patterns.ravel())


def test_lines_skip_missing_points_and_draw_the_marker():
    chart = charts.lines([1, 2, 3], {"train": [3.0, 2.0, 1.0], "validation": [None, 2.5, np.nan]},
                         title="loss", x_title="step", y_title="loss", marker=2)
    spec = _spec(chart)
    rows = _data(spec)
    assert len([row for row in rows if row.get("series") == "validation"]) == 1
    assert any(row == {"x": 2} for row in rows)
    assert {"step", "loss"} <= _axis_titles(spec)


def test_lines_log_axes():
    spec = _spec(charts.lines([16, 32], {"c": [1e-5, 4e-5]}, title="t", x_title="L", y_title="s",
                              log_x=True, log_y=True))
    scales = [node["scale"] for node in _walk(spec) if node.get("field") in ("x", "y") and "scale" in node]
    assert scales and all(scale.get("type") == "log" for scale in scales)


def test_top_tokens_table_writes_the_tokens():
    spec = _spec(charts.top_tokens_table(["embeddings", "block 0"], [["a", "b"], ["c", "d"]],
                                         [[0.5, 0.2], [0.9, 0.05]], title="lens", row_title="after"))
    assert {row["token"] for row in _data(spec)} == {"a", "b", "c", "d"}


def test_side_by_side_is_one_valid_spec_with_every_dataset():
    figures = [charts.heatmap(np.eye(2) * scale, ["a", "b"], ["a", "b"], title=f"t{scale}") for scale in (1, 2)]
    spec = charts.side_by_side(figures)
    alt.HConcatChart.from_dict(spec)  # validates against the Vega-Lite schema
    assert [part["title"] for part in spec["hconcat"]] == ["t1", "t2"]
    names = [part["data"]["name"] for part in spec["hconcat"]]
    assert set(names) == set(spec["datasets"]) and len(set(names)) == 2
    stacked = charts.side_by_side(figures, columns=1)
    assert stacked["columns"] == 1 and len(stacked["concat"]) == 2
    alt.ConcatChart.from_dict(stacked)


def test_pipeline_dot_chains_the_steps_and_frames_the_block():
    dot = charts.pipeline_dot([("tokens", "split", "[3]", False), ("ln_1", "norm", "[3, 4]", True),
                               ("logits", "scores", "[3, 10]", False)], n_layer=2)
    assert dot.startswith("digraph") and "s0 -> s1" in dot and "s1 -> s2" in dot and "[3, 10]" in dot
    block = dot[dot.index("cluster_block"):dot.index("  }")]
    assert "x 2" in block and "s1 [" in block and "s0 [" not in block


def test_to_svg_draws_a_spec_with_its_datasets_and_title():
    spec = charts.side_by_side([charts.heatmap(np.eye(2), ["0 a", "1 b"], ["0 a", "1 b"], title="Layer 0, head 1")])
    svg = charts.to_svg(spec)
    assert svg.startswith("<svg")
    assert ">Layer 0, head 1</text>" in svg and ">1 b</text>" in svg  # the title, and a label from the data


def test_heatmap_max_width_narrows_wide_matrices_and_thins_their_column_labels():
    values = np.random.default_rng(0).normal(size=(3, 768))
    spec = _spec(charts.vectors_heatmap(values, ["a", "b", "c"], title="wte", max_width=500, every_label=True))
    assert spec["width"] == 500 and len(_data(spec)) == 3 * 768
    x_axis = spec["layer"][0]["encoding"]["x"]["axis"]
    every = int(x_axis["values"][1][1:])  # d0, d<every>, d<2 every>, ...
    assert x_axis["values"] == [f"d{i}" for i in range(0, 768, every)] and x_axis["labelOverlap"] is False
    assert every * 500 / 768 >= charts.MIN_LABEL_GAP  # labels far enough apart to be read
    assert spec["layer"][0]["encoding"]["y"]["axis"]["labelOverlap"] is False  # every token named
    assert not any(layer["mark"]["type"] == "text" for layer in spec["layer"])
    small = _spec(charts.vectors_heatmap(values[:, :4], ["a", "b", "c"], title="q", max_width=500))
    assert "values" not in small["layer"][0]["encoding"]["x"]["axis"]  # fits: every dimension labelled


def test_side_by_side_max_width_wraps_what_does_not_fit():
    figures = [charts.heatmap(np.eye(32), list(map(str, range(32))), list(map(str, range(32))), title=f"t{i}")
               for i in range(3)]
    one_per_row = charts.side_by_side(figures, max_width=780)
    assert one_per_row["columns"] == 1
    small = [charts.heatmap(np.eye(2), ["a", "b"], ["a", "b"], title=f"s{i}") for i in range(3)]
    assert charts.side_by_side(small, max_width=2000)["columns"] == 3
    assert charts.columns_that_fit([900, 100], 500) == 1  # one chart per row at least
    alt.ConcatChart.from_dict(one_per_row)


def test_bars_every_label_and_scatter_width():
    spec = _spec(charts.bars(["a", "b"], [0.5, 0.5], title="t", every_label=True))
    y_axes = [node["axis"] for node in _walk(spec) if node.get("field") == "label" and "axis" in node]
    assert y_axes and y_axes[0]["labelOverlap"] is False
    spec = _spec(charts.scatter_2d(np.zeros((2, 2)), ["a", "b"], ["q", "k"], title="pca", width=300))
    assert spec["width"] == 300


def test_pipeline_dot_draws_residual_connections_around_the_added_steps():
    steps = [("tokens", "split", "[3]", False), ("ln_1", "norm", "[3, 4]", True), ("attention out", "proj", "[3, 4]", True),
             ("MLP", "mlp", "[3, 4]", True), ("logits", "scores", "[3, 10]", False)]
    dot = charts.pipeline_dot(steps, n_layer=2, adds_after=("attention out", "MLP"))
    for edge in ("s0 -> block_in", "block_in -> s1", "s2 -> add2", "add2 -> s3", "s3 -> add3", "add3 -> s4"):
        assert f"  {edge};" in dot, edge
    assert "block_in -> add2 [" in dot and "add2 -> add3 [" in dot  # the skips, drawn as residual edges
    assert dot.count('xlabel="residual"') == 2
    assert "labeljust=l" in dot  # the frame's label at its top left, clear of the arrow into the block
    assert "add" not in charts.pipeline_dot(steps, n_layer=2)  # without adds_after: no residual drawn
