"""Altair chart builders for the dashboard: pure functions from arrays and labels to charts.

No Streamlit and no maths here: every builder takes numbers the model or core.explain
computed and returns an Altair chart (testable with `chart.to_dict()`), except the heatmaps,
which return the same Vega-Lite spec as a plain dict because a page draws a dozen of them
per prompt change and Altair's layering is slow (see `heatmap`). Conventions:
token axes use `token_labels` ("0 the", "1 sky", ...) so a repeated word stays two
rows; attention matrices put the tokens asking (queries) on the rows and the tokens
attended to (keys) on the columns; every mark has a tooltip with the exact value.
Channels are built typed (`field=`, `type=`) rather than from shorthand strings such as
"value:Q", which Altair parses slowly: a page draws a dozen charts per prompt change.
"""
from __future__ import annotations

import hashlib
import json

import altair as alt
import numpy as np
import pandas as pd
import vl_convert

QUERY_TITLE = "query: token asking"
KEY_TITLE = "key: token attended to"
CELL = 26  # pixels per heatmap cell when the matrix is small enough to write the numbers in
MIN_CELL = 9
MAX_SIDE = 330  # a heatmap grows to about this many pixels before its cells shrink
PAD = alt.AutoSizeParams(type="pad")  # fixed-size charts: axes and legend come on top of the cells
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")  # page-wide charts keep their plot height
HIDDEN_COLOUR = "#e0e0e0"
HIGHLIGHT_COLOUR = "#d62728"
BAR_COLOUR = "#1f77b4"


def token_labels(tokens) -> list[str]:
    """Unique axis labels for tokens: position and word ("0 the", "1 sky", "2 the")."""
    return [f"{position} {token}" for position, token in enumerate(tokens)]


def _nominal(channel, name: str, title, sort=None, **axis):
    """A categorical channel (alt.X, alt.Y, ...) in the given order."""
    return channel(field=name, type="nominal", title=title, sort=list(sort) if sort is not None else alt.Undefined,
                   axis=alt.Axis(**axis) if axis else alt.Undefined)


def _quantitative(channel, name: str, title, **options):
    return channel(field=name, type="quantitative", title=title, **options)


def _tip(name: str, kind: str = "quantitative", title: str | None = None) -> alt.Tooltip:
    """One tooltip line; numbers unformatted, so the tooltip shows the exact value."""
    return alt.Tooltip(field=name, type=kind, title=title or name)


def _cells(values, rows, cols) -> list[dict]:
    """A matrix [R, C] as one record per cell; a hidden cell (-inf or NaN) has value None and text "−∞"."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(rows), len(cols)):
        raise ValueError(f"values of shape {values.shape} do not match {len(rows)} row and {len(cols)} column labels")
    finite = np.isfinite(values)
    return [{"row": row, "col": col, "value": float(value) if ok else None, "text": f"{value:.2f}" if ok else "−∞",
             "hidden": not ok}
            for row, row_values, row_finite in zip(rows, values.tolist(), finite.tolist())
            for col, value, ok in zip(cols, row_values, row_finite)]


def heatmap(values, rows, cols, *, title: str, value_title: str = "weight", row_title: str = QUERY_TITLE,
            col_title: str = KEY_TITLE, diverging: bool = False, text: bool | None = None,
            cell: int | None = None) -> dict:
    """A labelled heatmap of values [R, C]; hidden cells (-inf) stay grey (and read "−∞").

    `diverging` centres a red-blue scale on 0 (for signed numbers such as q, k, v);
    `text` writes each value in its cell (default: when the matrix is small); `cell` is the
    side of a cell in pixels (default: as large as readable, smaller for long prompts).

    Returns the Vega-Lite spec as a dict, written out as Altair would write it: a page draws a
    dozen heatmaps per prompt change, and Altair's layering deep-copies every part (about 20 ms
    a heatmap, against well under 1 ms for the dict).
    """
    rows, cols = list(rows), list(cols)
    cells = _cells(values, rows, cols)
    cell = cell or max(MIN_CELL, min(CELL, MAX_SIDE // max(len(rows), len(cols))))
    text = cell >= CELL if text is None else text
    scheme = {"name": "redblue", "extent": [0.85, 0.15]} if diverging else \
        {"name": "blues", "extent": [0.0, 0.75]}  # light enough for black numbers on top
    scale = {"scheme": scheme, "domainMid": 0} if diverging else {"scheme": scheme}
    encoding = {
        "x": {"field": "col", "type": "nominal", "title": col_title, "sort": cols, "axis": {"labelAngle": -45}},
        "y": {"field": "row", "type": "nominal", "title": row_title, "sort": rows},
        "tooltip": [{"field": "row", "type": "nominal", "title": row_title},
                    {"field": "col", "type": "nominal", "title": col_title},
                    {"field": "value", "type": "quantitative", "title": value_title},
                    {"field": "hidden", "type": "nominal", "title": "hidden by the mask"}],
    }
    colour = {"field": "value", "type": "quantitative", "title": value_title, "scale": scale}
    layers = [{"mark": {"type": "rect"}, "encoding": {**encoding, "color": colour}}]
    if any(record["hidden"] for record in cells):  # grey underneath: the coloured layer leaves hidden (None) cells out
        layers.insert(0, {"mark": {"type": "rect", "color": HIDDEN_COLOUR}, "encoding": encoding})
    if text:
        layers.append({"mark": {"type": "text", "fontSize": 10},
                       "encoding": {**encoding, "text": {"field": "text", "type": "nominal"}}})
    name = "cells-" + hashlib.sha1(json.dumps(cells).encode()).hexdigest()[:16]
    return {"$schema": alt.SCHEMA_URL, "title": title, "data": {"name": name}, "layer": layers,
            "width": max(cell * len(cols), 120), "height": max(cell * len(rows), 60), "autosize": {"type": "pad"},
            "datasets": {name: cells}}


def vectors_heatmap(values, tokens, *, title: str, value_title: str = "value") -> dict:
    """Per-token vectors [L, d] (embeddings, q, k, v): tokens on the rows, dimensions on the columns."""
    values = np.asarray(values)
    dims = [f"d{i}" for i in range(values.shape[1])]
    return heatmap(values, token_labels(tokens), dims, title=title, value_title=value_title,
                   row_title="token", col_title="dimension", diverging=True, text=values.size <= 96,
                   cell=CELL if values.size <= 96 else max(MIN_CELL, min(16, 2 * MAX_SIDE // values.shape[1])))


def bars(labels, values, *, title: str, value_title: str = "probability", label_title: str = "token",
         highlight: str | None = None) -> alt.Chart:
    """Horizontal bars in the given order, with exact values in the tooltip."""
    labels = list(labels)
    data = pd.DataFrame({"label": labels, "value": np.asarray(values, dtype=np.float64)})
    data["chosen"] = data["label"] == highlight
    return alt.Chart(data).mark_bar().encode(
        y=_nominal(alt.Y, "label", label_title, labels),
        x=_quantitative(alt.X, "value", value_title),
        color=alt.Color(field="chosen", type="nominal", legend=None,
                        scale=alt.Scale(domain=[False, True], range=[BAR_COLOUR, HIGHLIGHT_COLOUR])),
        tooltip=[_tip("label", "nominal", label_title), _tip("value", title=value_title)],
    ).properties(title=title, height=max(20 * len(data), 60), autosize=FIT_WIDTH)


def grouped_bars(labels, series: dict[str, np.ndarray], *, title: str, value_title: str = "probability",
                 label_title: str = "token", width: int | None = None) -> alt.Chart:
    """Bars of several series side by side per label (e.g. observed vs theoretical); `width` in
    pixels, else as wide as the page."""
    labels, names = list(labels), list(series)
    data = pd.DataFrame([
        {"label": label, "series": name, "value": float(value)}
        for name, values in series.items() for label, value in zip(labels, values)
    ])
    size = {"width": width, "height": 200} if width else {"autosize": FIT_WIDTH}
    return alt.Chart(data, title=title, **size).mark_bar().encode(
        x=_nominal(alt.X, "label", label_title, labels, labelAngle=-45),
        xOffset=alt.XOffset(field="series", type="nominal", sort=names),
        y=_quantitative(alt.Y, "value", value_title),
        color=alt.Color(field="series", type="nominal", sort=names, title=None, legend=alt.Legend(orient="top")),
        tooltip=[_tip("label", "nominal", label_title), _tip("series", "nominal"), _tip("value", title=value_title)],
    )


def stage_bars(stages: dict[str, np.ndarray], labels, *, title: str) -> alt.FacetChart:
    """The same tokens' probability at every sampling stage, one small bar chart per stage."""
    labels, names = list(labels), list(stages)
    data = pd.DataFrame([
        {"stage": name, "token": label, "probability": float(value)}
        for name in names for label, value in zip(labels, stages[name])
    ])
    return alt.Chart(data).mark_bar().encode(
        y=_nominal(alt.Y, "token", "token", labels),
        x=_quantitative(alt.X, "probability", "probability", scale=alt.Scale(domain=[0, 1])),
        tooltip=[_tip("stage", "nominal"), _tip("token", "nominal"), _tip("probability")],
    ).properties(width=130, height=max(18 * len(labels), 60)).facet(
        column=alt.Column(field="stage", type="nominal", sort=names, title=None)).properties(title=title)


def scatter_2d(coords, labels, groups, *, title: str, share=None) -> alt.LayerChart:
    """Points [N, 2] (a PCA projection) with their labels written beside them, coloured by group."""
    coords = np.asarray(coords, dtype=np.float64)
    data = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "label": list(labels), "group": list(groups)})
    x_title, y_title = "PC 1", "PC 2"
    if share is not None:
        x_title, y_title = f"PC 1 ({share[0]:.0%} of variance)", f"PC 2 ({share[1]:.0%} of variance)"
    colour = alt.Color(field="group", type="nominal", title=None)
    base = alt.Chart().encode(x=_quantitative(alt.X, "x", x_title), y=_quantitative(alt.Y, "y", y_title), color=colour)
    points = base.mark_circle(size=90).encode(
        tooltip=[_tip("label", "nominal"), _tip("group", "nominal"), _tip("x", title=x_title),
                 _tip("y", title=y_title)])
    names = base.mark_text(align="left", dx=7, fontSize=11).encode(text=alt.Text(field="label", type="nominal"))
    return alt.layer(points, names, data=data).properties(title=title, height=300)


def head_grid(patterns, tokens, *, selected: tuple[int, int] | None = None) -> alt.FacetChart:
    """Small heatmaps of every layer x head, patterns [n_layer, n_head, L, L]; the selected one outlined."""
    patterns = np.asarray(patterns, dtype=np.float64)
    n_layer, n_head, length, _ = patterns.shape
    labels = token_labels(tokens)
    layer, head, row, col = np.indices(patterns.shape).reshape(4, -1)
    data = pd.DataFrame({"layer": [f"layer {i}" for i in layer], "head": [f"head {i}" for i in head],
                         "row": [labels[i] for i in row], "col": [labels[i] for i in col],
                         "weight": patterns.ravel(),
                         "selected": [(l, h) == selected for l, h in zip(layer, head)]})
    cell = max(4, min(12, 120 // length))
    show_labels = length <= 8
    return alt.Chart(data).mark_rect().encode(
        x=_nominal(alt.X, "col", None, labels, labels=show_labels, ticks=False),  # titles: in the chart's title
        y=_nominal(alt.Y, "row", None, labels, labels=show_labels, ticks=False),
        color=_quantitative(alt.Color, "weight", "weight", scale=alt.Scale(scheme="blues", domain=[0, 1])),
        stroke=alt.Stroke(field="selected", type="nominal", legend=None,
                          scale=alt.Scale(domain=[False, True], range=["transparent", HIGHLIGHT_COLOUR])),
        strokeWidth=alt.value(2),
        tooltip=[_tip("layer", "nominal"), _tip("head", "nominal"), _tip("row", "nominal", QUERY_TITLE),
                 _tip("col", "nominal", KEY_TITLE), _tip("weight")],
    ).properties(width=cell * length, height=cell * length).facet(
        row=alt.Row(field="layer", type="nominal", title=None),
        column=alt.Column(field="head", type="nominal", title=None),
    ).properties(title=f"All {n_layer} layers x {n_head} heads (rows: queries, columns: keys)")


def lines(x, series: dict[str, np.ndarray], *, title: str, x_title: str, y_title: str,
          x_sort=None, log_x: bool = False, log_y: bool = False, marker: float | None = None) -> alt.LayerChart:
    """One line per series over shared x values; None/NaN points are gaps. `marker` draws a rule at x.

    x is numeric unless `x_sort` gives the order of categorical x values.
    """
    rows = [{"x": xv, "series": name, "y": float(yv)}
            for name, values in series.items() for xv, yv in zip(x, values)
            if yv is not None and np.isfinite(yv)]
    data = pd.DataFrame(rows, columns=["x", "series", "y"])
    if x_sort is None:
        whole = all(isinstance(value, (int, np.integer)) for value in x)  # steps, lengths: no ticks at 1.5
        x_channel = _quantitative(alt.X, "x", x_title, scale=alt.Scale(type="log") if log_x else alt.Undefined,
                                  axis=alt.Axis(format="d", tickMinStep=1) if whole else alt.Undefined)
        x_tip = _tip("x", title=x_title)
    else:
        x_channel, x_tip = _nominal(alt.X, "x", x_title, x_sort), _tip("x", "nominal", x_title)
    y_channel = _quantitative(alt.Y, "y", y_title, scale=alt.Scale(type="log") if log_y else alt.Scale(zero=False))
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=x_channel, y=y_channel, color=alt.Color(field="series", type="nominal", title=None),
        tooltip=[_tip("series", "nominal"), x_tip, _tip("y", title=y_title)])
    layers = [chart]
    if marker is not None:
        layers.append(alt.Chart(pd.DataFrame({"x": [marker]})).mark_rule(color=HIGHLIGHT_COLOUR, strokeDash=[4, 3])
                      .encode(x=_quantitative(alt.X, "x", x_title), tooltip=[_tip("x", title=x_title)]))
    return alt.layer(*layers).properties(title=title, height=240, autosize=FIT_WIDTH)


def top_tokens_table(rows_labels, ranks_tokens, ranks_probs, *, title: str, row_title: str) -> alt.LayerChart:
    """A grid of guesses: for each row (e.g. a layer) the top tokens, coloured by probability (logit lens)."""
    rows_labels, ranks_probs = list(rows_labels), np.asarray(ranks_probs, dtype=np.float64)
    data = pd.DataFrame([
        {"row": row, "rank": f"#{rank + 1}", "token": token, "probability": float(prob)}
        for row, tokens, probs in zip(rows_labels, ranks_tokens, ranks_probs)
        for rank, (token, prob) in enumerate(zip(tokens, probs))
    ])
    ranks = [f"#{rank + 1}" for rank in range(ranks_probs.shape[1])]
    base = alt.Chart().encode(x=_nominal(alt.X, "rank", "guess", ranks),
                              y=_nominal(alt.Y, "row", row_title, rows_labels))
    cells = base.mark_rect().encode(
        color=_quantitative(alt.Color, "probability", "probability", scale=alt.Scale(scheme="greens", domain=[0, 1])),
        tooltip=[_tip("row", "nominal", row_title), _tip("rank", "nominal"), _tip("token", "nominal"),
                 _tip("probability")])
    words = base.mark_text(fontSize=12).encode(text=alt.Text(field="token", type="nominal"))
    return alt.LayerChart(layer=[cells, words], data=data, title=title, width=90 * len(ranks),
                          height=32 * len(rows_labels), autosize=PAD)


def side_by_side(figures, *, columns: int | None = None) -> dict:
    """Several charts drawn as one figure (the browser draws one figure much faster than several),
    each with its own colour scale: all in one row, or wrapped after `columns` (1 = stacked).

    Returns the Vega-Lite spec as a dict: Altair's own concatenation deep-copies every part
    several times, which made a page's redraw about three times slower.
    """
    parts, datasets = [], {}
    for figure in figures:
        spec = dict(figure) if isinstance(figure, dict) else figure.to_dict(validate=False)
        datasets.update(spec.pop("datasets", {}))
        for top_level_only in ("$schema", "config", "autosize"):
            spec.pop(top_level_only, None)
        parts.append(spec)
    layout = {"hconcat": parts} if columns is None else {"concat": parts, "columns": columns}
    return {"$schema": alt.SCHEMA_URL, **layout, "datasets": datasets, "resolve": {"scale": {"color": "independent"}}}


def pipeline_dot(steps, n_layer: int) -> str:
    """A Graphviz diagram (DOT source) of the pipeline, top to bottom: one box per (step, what, shape,
    in_block); the steps inside the transformer block sit in a frame saying how often it repeats."""
    lines_ = ["digraph pipeline {", '  node [shape=box, style="rounded,filled", fillcolor="#eef4fb", '
              'fontname="Helvetica", fontsize=10]; edge [arrowsize=0.6];',
              f'  subgraph cluster_block {{ label="transformer block, x {n_layer} (each adds to the residual stream)"; '
              'style=dashed; fontname="Helvetica"; fontsize=10;']
    for index, (step, what, shape, in_block) in enumerate(steps):
        if in_block:
            lines_.append(f'    s{index} [label="{step}: {what}\\n{shape}"];')
    lines_.append("  }")
    for index, (step, what, shape, in_block) in enumerate(steps):
        if not in_block:
            lines_.append(f'  s{index} [label="{step}: {what}\\n{shape}"];')
    lines_ += [f"  s{index - 1} -> s{index};" for index in range(1, len(steps))]
    lines_.append("}")
    return "\n".join(lines_)


def to_svg(spec: dict) -> str:
    """A Vega-Lite spec dict (as `show_chart` draws it, top-level "datasets" included) drawn as SVG text."""
    return vl_convert.vegalite_to_svg(spec)
