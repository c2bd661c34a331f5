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
import math

import altair as alt
import numpy as np
import pandas as pd
import vl_convert

from core.model.trace import token_labels  # the axis labels of tokens: core's questions use the same

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
MIN_LABEL_GAP = 13  # pixels per label on a rotated axis: narrower columns get every k-th label
LABEL_ROOM = 190  # pixels beside a chart's plot for its axis labels, axis title and legend (estimated_width)
DEFAULT_PLOT_WIDTH = 300  # Vega-Lite's plot width when a chart sets none
CONCAT_GAP = 20  # pixels between the charts of a row
EVERY_LABEL = {"labelOverlap": False, "labelLimit": 160}  # axis options: draw every label, cut at 160 px
PAGE_WIDTH = 780  # pixels a fixed-width figure may take: the main column at a 1280 px window, sidebar open (820)
LEGEND_BELOW = {"orient": "bottom"}  # a colour legend under the plot, not beside it (narrower figures)


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
            cell: int | None = None, every_label: bool = False, symmetric: bool = False,
            max_width: int | None = None, row_height: int | None = None, legend_below: bool = False) -> dict:
    """A labelled heatmap of values [R, C]; hidden cells (-inf) stay grey (and read "−∞").

    `diverging` centres a red-blue scale on 0 (for signed numbers such as q, k, v);
    `symmetric` (with `diverging`) makes its domain [-m, m], m = the largest |value|, so that
    equal colours mean equal sizes on both sides of 0; `text` writes each value in its cell
    (default: when the matrix is small); `cell` is the side of a cell in pixels (default: as
    large as readable, smaller for long prompts); `every_label` draws every row and column
    label (Streamlit's theme otherwise drops labels it thinks overlap). `max_width` (pixels of
    cells) narrows the columns of a wide matrix until it fits, every row label still drawn and the
    column labels thinned to every k-th (e.g. d0, d64, ...) once they cannot all be read;
    `row_height` sets the rows' height in pixels apart from the columns' width; `legend_below`
    puts the colour legend under the cells instead of to their right.

    Returns the Vega-Lite spec as a dict, written out as Altair would write it: a page draws a
    dozen heatmaps per prompt change, and Altair's layering deep-copies every part (about 20 ms
    a heatmap, against well under 1 ms for the dict).
    """
    rows, cols = list(rows), list(cols)
    cells = _cells(values, rows, cols)
    cell = cell or max(MIN_CELL, min(CELL, MAX_SIDE // max(len(rows), len(cols))))
    width, height = cell * len(cols), (row_height or cell) * len(rows)
    if max_width is not None and width > max_width:
        width, text = max_width, False
    text = cell >= CELL if text is None else text
    scheme = {"name": "redblue", "extent": [0.85, 0.15]} if diverging else \
        {"name": "blues", "extent": [0.0, 0.75]}  # light enough for black numbers on top
    scale = {"scheme": scheme, "domainMid": 0} if diverging else {"scheme": scheme}
    if diverging and symmetric:
        scale["domain"] = _symmetric_domain(values)
    labels = EVERY_LABEL if every_label else {}
    x_axis = {"labelAngle": -45, **labels}
    if width / len(cols) < MIN_LABEL_GAP:  # too narrow for every label: every k-th one, all of them drawn
        every = 2 ** math.ceil(math.log2(MIN_LABEL_GAP * len(cols) / width))  # a power of two: d0, d32, d64, ...
        x_axis.update(values=cols[::every], labelOverlap=False)
    encoding = {
        # a long explicit sort costs the browser a lookup per cell: a wide matrix's cells come in column order
        "x": {"field": "col", "type": "nominal", "title": col_title, "sort": None if "values" in x_axis else cols,
              "axis": x_axis},
        "y": {"field": "row", "type": "nominal", "title": row_title, "sort": rows, **({"axis": labels} if labels else {})},
        "tooltip": [{"field": "row", "type": "nominal", "title": row_title},
                    {"field": "col", "type": "nominal", "title": col_title},
                    {"field": "value", "type": "quantitative", "title": value_title},
                    {"field": "hidden", "type": "nominal", "title": "hidden by the mask"}],
    }
    colour = {"field": "value", "type": "quantitative", "title": value_title, "scale": scale,
              **({"legend": LEGEND_BELOW} if legend_below else {})}
    layers = [{"mark": {"type": "rect"}, "encoding": {**encoding, "color": colour}}]
    if any(record["hidden"] for record in cells):  # grey underneath: the coloured layer leaves hidden (None) cells out
        layers.insert(0, {"mark": {"type": "rect", "color": HIDDEN_COLOUR}, "encoding": encoding})
    if text:
        layers.append({"mark": {"type": "text", "fontSize": 10},
                       "encoding": {**encoding, "text": {"field": "text", "type": "nominal"}}})
    name = "cells-" + _digest(values, rows, cols)
    return {"$schema": alt.SCHEMA_URL, "title": title, "data": {"name": name}, "layer": layers,
            "width": max(width, 120), "height": max(height, 60), "autosize": {"type": "pad"},
            "datasets": {name: cells}}


def _digest(values, rows, cols) -> str:
    """A short name for a matrix's cells: the hash of its numbers and labels (hashing the bytes
    takes a millisecond where the JSON of GPT-2's [L, 768] cells takes over 100)."""
    digest = hashlib.sha1(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    digest.update(json.dumps([rows, cols]).encode())
    return digest.hexdigest()[:16]


def _symmetric_domain(values) -> list[float]:
    """[-m, m] with m the largest finite |value| (1e-12 at least, so the domain is never empty)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.abs(values[np.isfinite(values)])
    largest = max(float(finite.max(initial=0.0)), 1e-12)
    return [-largest, largest]


def vectors_heatmap(values, tokens, *, title: str, value_title: str = "value", max_width: int | None = None,
                    every_label: bool = False) -> dict:
    """Per-token vectors [L, d] (embeddings, q, k, v): tokens on the rows, dimensions on the columns.
    `max_width` (pixels) fits a wide matrix such as GPT-2's [L, 768] in that width, every token's
    row kept at least MIN_CELL pixels high; `every_label` draws every token's label."""
    values = np.asarray(values)
    dims = [f"d{i}" for i in range(values.shape[1])]
    cell = CELL if values.size <= 96 else max(MIN_CELL, min(16, 2 * MAX_SIDE // values.shape[1]))
    return heatmap(values, token_labels(tokens), dims, title=title, value_title=value_title,
                   row_title="token", col_title="dimension", diverging=True, text=values.size <= 96,
                   cell=cell, max_width=max_width, every_label=every_label,
                   row_height=max(cell, MIN_CELL if len(tokens) > 24 else 16) if max_width else None)


def bars(labels, values, *, title: str, value_title: str = "probability", label_title: str = "token",
         highlight: str | None = None, every_label: bool = False) -> alt.Chart:
    """Horizontal bars in the given order, with exact values in the tooltip (`every_label`: every
    label drawn, none dropped as overlapping or cut short)."""
    labels = list(labels)
    data = pd.DataFrame({"label": labels, "value": np.asarray(values, dtype=np.float64)})
    data["chosen"] = data["label"] == highlight
    return alt.Chart(data).mark_bar().encode(
        y=_nominal(alt.Y, "label", label_title, labels, **(EVERY_LABEL if every_label else {})),
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


def stage_bars(stages: dict[str, np.ndarray], labels, *, title: str, every_label: bool = False) -> alt.FacetChart:
    """The same tokens' probability at every sampling stage, one small bar chart per stage
    (`every_label`: every token named, none dropped as overlapping)."""
    labels, names = list(labels), list(stages)
    data = pd.DataFrame([
        {"stage": name, "token": label, "probability": float(value)}
        for name in names for label, value in zip(labels, stages[name])
    ])
    axis = EVERY_LABEL if every_label else {}
    return alt.Chart(data).mark_bar().encode(
        y=_nominal(alt.Y, "token", "token", labels, **axis),
        x=_quantitative(alt.X, "probability", "probability", scale=alt.Scale(domain=[0, 1])),
        tooltip=[_tip("stage", "nominal"), _tip("token", "nominal"), _tip("probability")],
    ).properties(width=130, height=max(18 * len(labels), 60)).facet(
        column=alt.Column(field="stage", type="nominal", sort=names, title=None)).properties(title=title)


def scatter_2d(coords, labels, groups, *, title: str, share=None, width: int | None = None) -> alt.LayerChart:
    """Points [N, 2] (a PCA projection) with their labels written beside them, coloured by group;
    `width` in pixels (default: Vega-Lite's); the legend sits on top, inside the chart's width."""
    coords = np.asarray(coords, dtype=np.float64)
    data = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "label": list(labels), "group": list(groups)})
    x_title, y_title = "PC 1", "PC 2"
    if share is not None:
        x_title, y_title = f"PC 1 ({share[0]:.0%} of variance)", f"PC 2 ({share[1]:.0%} of variance)"
    colour = alt.Color(field="group", type="nominal", title=None,
                       legend=alt.Legend(orient="top") if width else alt.Undefined)
    base = alt.Chart().encode(x=_quantitative(alt.X, "x", x_title), y=_quantitative(alt.Y, "y", y_title), color=colour)
    points = base.mark_circle(size=90).encode(
        tooltip=[_tip("label", "nominal"), _tip("group", "nominal"), _tip("x", title=x_title),
                 _tip("y", title=y_title)])
    names = base.mark_text(align="left", dx=7, fontSize=11).encode(text=alt.Text(field="label", type="nominal"))
    size = {"width": width} if width else {}
    return alt.layer(points, names, data=data).properties(title=title, height=300, **size)


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


def head_tiles(patterns, labels, *, selected: tuple[int, int] | None = None, width: int = 600,
               title: str | None = None, legend_below: bool = False) -> dict:
    """Every layer x head as one compact chart: a tile per head, patterns [n_layer, n_head, S, S]
    (S positions, or blocks of positions, named by `labels` [S]), layer 0 at the top, every
    layer and head labelled, the selected head outlined. One mark instead of n_layer x n_head
    facets, so that GPT-2's 144 heads draw quickly; at most `width` pixels wide (tiles of at least
    24 pixels), the colour legend to the right or (`legend_below`) under the tiles.

    Returns the Vega-Lite spec as a dict (see `heatmap`).
    """
    patterns = np.asarray(patterns, dtype=np.float64)
    n_layer, n_head, side, _ = patterns.shape
    labels = list(labels)
    step = side + max(1, round(side * 0.15))  # a tile and the gap after it, in cells
    layer, head, row, col = np.indices(patterns.shape).reshape(4, -1)
    x, y = head * step + col, layer * step + row
    cells = [{"layer": int(l), "head": int(h), "row": labels[r], "col": labels[c], "weight": float(w),
              "x": int(x0), "y": int(y0)}
             for l, h, r, c, w, x0, y0 in zip(layer, head, row, col, patterns.ravel(), x, y)]
    pixels = max(24, min(90, width // n_head))  # one tile and its gap
    centres = [index * step + side / 2 for index in range(max(n_layer, n_head))]
    axis = {"labelOverlap": False, "ticks": False, "domain": False, "grid": False}
    encoding = {
        "x": {"field": "x", "type": "quantitative", "scale": {"domain": [0, n_head * step - (step - side)]},
              "axis": {**axis, "title": "head", "orient": "top", "values": centres[:n_head],
                       "labelExpr": f"floor(datum.value / {step})"}},
        "x2": {"field": "x2"},
        "y": {"field": "y", "type": "quantitative",
              "scale": {"domain": [0, n_layer * step - (step - side)], "reverse": True},
              "axis": {**axis, "title": "layer", "values": centres[:n_layer],
                       "labelExpr": f"floor(datum.value / {step})"}},
        "y2": {"field": "y2"},
    }
    layers = [{"transform": [{"calculate": "datum.x + 1", "as": "x2"}, {"calculate": "datum.y + 1", "as": "y2"}],
               "mark": {"type": "rect"},
               "encoding": {**encoding, "color": {"field": "weight", "type": "quantitative", "title": "weight",
                                                  "scale": {"scheme": "blues", "domain": [0, 1]},
                                                  **({"legend": LEGEND_BELOW} if legend_below else {})},
                            "tooltip": [{"field": "layer", "type": "quantitative"},
                                        {"field": "head", "type": "quantitative"},
                                        {"field": "row", "type": "nominal", "title": QUERY_TITLE},
                                        {"field": "col", "type": "nominal", "title": KEY_TITLE},
                                        {"field": "weight", "type": "quantitative"}]}}]
    if selected is not None:
        outline = {"x": selected[1] * step - 0.5, "x2": selected[1] * step + side + 0.5,
                   "y": selected[0] * step - 0.5, "y2": selected[0] * step + side + 0.5}
        layers.append({"data": {"values": [outline]}, "mark": {"type": "rect", "fill": None,
                                                                "stroke": HIGHLIGHT_COLOUR, "strokeWidth": 2},
                       "encoding": {**encoding, "x2": {"field": "x2"}, "y2": {"field": "y2"}}})
    name = "tiles-" + hashlib.sha1(json.dumps(cells).encode()).hexdigest()[:16]
    return {"$schema": alt.SCHEMA_URL, "title": title or f"All {n_layer} layers x {n_head} heads "
            "(in each tile: rows = queries, columns = keys)", "data": {"name": name}, "layer": layers,
            "width": pixels * n_head, "height": pixels * n_layer, "autosize": {"type": "pad"},
            "datasets": {name: cells}}


def lens_grid(row_labels, col_labels, tokens, probs, details, *, title: str, row_title: str = "read off",
              col_title: str = "position", col_width: int = 80, legend_below: bool = False) -> dict:
    """The logit lens as a table: rows (points of the residual stream) x columns (positions), each
    cell the top token written in it and coloured by its probability [R, C], with `details` [R, C]
    (e.g. the runners-up) in the tooltip. Every row and column labelled; columns `col_width`
    pixels wide; the colour legend to the right or (`legend_below`) under the table.

    Returns the Vega-Lite spec as a dict (see `heatmap`).
    """
    row_labels, col_labels = list(row_labels), list(col_labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"probs of shape {probs.shape} do not match {len(row_labels)} rows and "
                         f"{len(col_labels)} columns")
    cells = [{"row": row, "col": col, "token": str(token), "probability": float(prob), "details": str(detail)}
             for row, row_tokens, row_probs, row_details in zip(row_labels, tokens, probs, details)
             for col, token, prob, detail in zip(col_labels, row_tokens, row_probs, row_details)]
    labels = EVERY_LABEL
    encoding = {"x": {"field": "col", "type": "nominal", "title": col_title, "sort": col_labels,
                      "axis": {"orient": "top", "labelAngle": -30, **labels}},
                "y": {"field": "row", "type": "nominal", "title": row_title, "sort": row_labels, "axis": labels},
                "tooltip": [{"field": "row", "type": "nominal", "title": row_title},
                            {"field": "col", "type": "nominal", "title": col_title},
                            {"field": "token", "type": "nominal", "title": "top token"},
                            {"field": "probability", "type": "quantitative"},
                            {"field": "details", "type": "nominal", "title": "top guesses"}]}
    layers = [{"mark": {"type": "rect"},
               "encoding": {**encoding, "color": {"field": "probability", "type": "quantitative",
                                                  "scale": {"scheme": "greens", "domain": [0, 1]},
                                                  **({"legend": LEGEND_BELOW} if legend_below else {})}}},
              {"mark": {"type": "text", "fontSize": 11, "limit": col_width - 6},
               "encoding": {**encoding, "text": {"field": "token", "type": "nominal"}}}]
    name = "lens-" + hashlib.sha1(json.dumps(cells).encode()).hexdigest()[:16]
    return {"$schema": alt.SCHEMA_URL, "title": title, "data": {"name": name}, "layer": layers,
            "width": col_width * len(col_labels), "height": 24 * len(row_labels), "autosize": {"type": "pad"},
            "datasets": {name: cells}}


def lines(x, series: dict[str, np.ndarray], *, title: str, x_title: str, y_title: str,
          x_sort=None, log_x: bool = False, log_y: bool = False, marker: float | None = None,
          x_ticks=None, spread: dict[str, tuple] | None = None) -> alt.LayerChart:
    """One line per series over shared x values; None/NaN points are gaps. `marker` draws a rule at x.

    x is numeric unless `x_sort` gives the order of categorical x values. `x_ticks`: the x values
    to put ticks at (e.g. the measured sizes on a log axis). `spread`: per series (low values,
    high values) over x, drawn as a vertical bar at each point (e.g. fastest to slowest repeat).
    """
    rows = [{"x": xv, "series": name, "y": float(yv)}
            for name, values in series.items() for xv, yv in zip(x, values)
            if yv is not None and np.isfinite(yv)]
    data = pd.DataFrame(rows, columns=["x", "series", "y"])
    if x_sort is None:
        whole = all(isinstance(value, (int, np.integer)) for value in x)  # steps, lengths: no ticks at 1.5
        x_channel = _quantitative(alt.X, "x", x_title, scale=alt.Scale(type="log") if log_x else alt.Undefined,
                                  axis=alt.Axis(format="d", tickMinStep=1,
                                                values=list(x_ticks) if x_ticks is not None else alt.Undefined)
                                  if whole else alt.Undefined)
        x_tip = _tip("x", title=x_title)
    else:
        x_channel, x_tip = _nominal(alt.X, "x", x_title, x_sort), _tip("x", "nominal", x_title)
    y_channel = _quantitative(alt.Y, "y", y_title, scale=alt.Scale(type="log") if log_y else alt.Scale(zero=False))
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=x_channel, y=y_channel, color=alt.Color(field="series", type="nominal", title=None),
        tooltip=[_tip("series", "nominal"), x_tip, _tip("y", title=y_title)])
    layers = [chart]
    if spread:
        layers.append(_spread_bars(x, spread, x_channel, y_title))
    if marker is not None:
        layers.append(alt.Chart(pd.DataFrame({"x": [marker]})).mark_rule(color=HIGHLIGHT_COLOUR, strokeDash=[4, 3])
                      .encode(x=_quantitative(alt.X, "x", x_title), tooltip=[_tip("x", title=x_title)]))
    return alt.layer(*layers).properties(title=title, height=240, autosize=FIT_WIDTH)


def _spread_bars(x, spread: dict[str, tuple], x_channel, y_title: str) -> alt.Chart:
    """A vertical rule from low to high at every x of every series in `spread` (lines' spread)."""
    rows = [{"x": xv, "series": name, "low": float(low), "high": float(high)}
            for name, (lows, highs) in spread.items() for xv, low, high in zip(x, lows, highs)
            if low is not None and high is not None and np.isfinite(low) and np.isfinite(high)]
    data = pd.DataFrame(rows, columns=["x", "series", "low", "high"])
    return alt.Chart(data).mark_rule(strokeWidth=2, opacity=0.6).encode(
        x=x_channel, y=alt.Y(field="low", type="quantitative"), y2=alt.Y2(field="high"),
        color=alt.Color(field="series", type="nominal", title=None),
        tooltip=[_tip("series", "nominal"), _tip("low", title=f"fastest ({y_title})"),
                 _tip("high", title=f"slowest ({y_title})")])


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


def side_by_side(figures, *, columns: int | None = None, max_width: int | None = None) -> dict:
    """Several charts drawn as one figure (the browser draws one figure much faster than several),
    each with its own colour scale: all in one row, or wrapped after `columns` (1 = stacked), or,
    with `max_width` (pixels), as many per row as fit in that width (`estimated_width`).

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
    if columns is None and max_width is not None:
        columns = columns_that_fit([estimated_width(part) for part in parts], max_width)
    layout = {"hconcat": parts} if columns is None else {"concat": parts, "columns": columns}
    return {"$schema": alt.SCHEMA_URL, **layout, "datasets": datasets, "resolve": {"scale": {"color": "independent"}}}


def estimated_width(spec: dict) -> int:
    """About how many pixels a (non-composed) chart takes: its plot width, its axis labels and
    title on the left and its colour legend on the right (LABEL_ROOM), however long its labels."""
    plot = spec.get("width")
    return int(plot if isinstance(plot, (int, float)) else DEFAULT_PLOT_WIDTH) + LABEL_ROOM


def columns_that_fit(widths, max_width: int) -> int:
    """How many charts of these widths (in order, at least one) fit in one row of `max_width` pixels."""
    total, count = 0, 0
    for width in widths:
        total += width + CONCAT_GAP
        if count and total > max_width:
            break
        count += 1
    return max(count, 1)


def pipeline_dot(steps, n_layer: int, *, adds_after=()) -> str:
    """A Graphviz diagram (DOT source) of the pipeline, top to bottom: one box per (step, what, shape,
    in_block); the steps inside the transformer block sit in a frame saying how often it repeats.

    `adds_after` names the block's steps whose output is added to the residual stream: each gets a
    "+" node after it, fed by the residual connection (a red edge) that skips the steps before it
    from the block's input or the previous "+". The frame's label sits at its top left, clear of
    the arrow entering the block.
    """
    lines_ = ["digraph pipeline {", '  node [shape=box, style="rounded,filled", fillcolor="#eef4fb", '
              'fontname="Helvetica", fontsize=10]; edge [arrowsize=0.6];',
              f'  subgraph cluster_block {{ label="transformer block, x {n_layer}"; labeljust=l; labelloc=t; '
              'style=dashed; fontname="Helvetica"; fontsize=10;']
    chain = [f"s{index}" for index in range(len(steps))]  # the main path, "+" nodes inserted
    block = [index for index, (*_, in_block) in enumerate(steps) if in_block]
    residual = []  # (from, to) of the residual connections
    if adds_after and block:
        lines_.append('    block_in [shape=point, width=0.08, label=""];')
        chain.insert(chain.index(f"s{block[0]}"), "block_in")
        source = "block_in"
        for index in block:
            if steps[index][0] in adds_after:
                lines_.append(f'    add{index} [shape=circle, label="+", width=0.3, fixedsize=true, '
                              f'fillcolor="#fde2e2"];')
                chain.insert(chain.index(f"s{index}") + 1, f"add{index}")
                residual.append((source, f"add{index}"))
                source = f"add{index}"
    for index, (step, what, shape, in_block) in enumerate(steps):
        if in_block:
            lines_.append(f'    s{index} [label="{step}: {what}\\n{shape}"];')
    lines_.append("  }")
    for index, (step, what, shape, in_block) in enumerate(steps):
        if not in_block:
            lines_.append(f'  s{index} [label="{step}: {what}\\n{shape}"];')
    lines_ += [f"  {before} -> {after};" for before, after in zip(chain, chain[1:])]
    lines_ += [f'  {before} -> {after} [color="{HIGHLIGHT_COLOUR}", penwidth=1.6, xlabel="residual", '
               f'fontsize=9, fontcolor="{HIGHLIGHT_COLOUR}", fontname="Helvetica"];' for before, after in residual]
    lines_.append("}")
    return "\n".join(lines_)


def labelled_scatter(x, y, labels, groups, *, title: str, x_title: str, y_title: str) -> alt.LayerChart:
    """Points (x [N], y [N]) named by `labels` (written beside them when there are few), coloured by group."""
    data = pd.DataFrame({"x": np.asarray(x, dtype=np.float64), "y": np.asarray(y, dtype=np.float64),
                         "label": list(labels), "group": list(groups)})
    base = alt.Chart().encode(x=_quantitative(alt.X, "x", x_title), y=_quantitative(alt.Y, "y", y_title),
                              color=alt.Color(field="group", type="nominal", title=None))
    points = base.mark_circle(size=80).encode(
        tooltip=[_tip("label", "nominal"), _tip("x", title=x_title), _tip("y", title=y_title)])
    layers = [points]
    if len(data) <= 24:
        layers.append(base.mark_text(align="left", dx=7, fontSize=11).encode(text=alt.Text(field="label", type="nominal")))
    return alt.layer(*layers, data=data).properties(title=title, height=300, autosize=FIT_WIDTH)


def curve_with_points(curve_x, curve_y, points_x, points_y, *, title: str, x_title: str,
                      y_title: str) -> alt.LayerChart:
    """A function's curve (curve_x, curve_y [N]) with some inputs marked on it as points."""
    curve = pd.DataFrame({"x": np.asarray(curve_x, dtype=np.float64), "y": np.asarray(curve_y, dtype=np.float64)})
    points = pd.DataFrame({"x": np.asarray(points_x, dtype=np.float64), "y": np.asarray(points_y, dtype=np.float64)})
    x, y = _quantitative(alt.X, "x", x_title), _quantitative(alt.Y, "y", y_title)
    line = alt.Chart(curve).mark_line(color=BAR_COLOUR).encode(x=x, y=y)
    marks = alt.Chart(points).mark_circle(size=30, color=HIGHLIGHT_COLOUR, opacity=0.6).encode(
        x=x, y=y, tooltip=[_tip("x", title=x_title), _tip("y", title=y_title)])
    return alt.layer(line, marks).properties(title=title, height=260, autosize=FIT_WIDTH)


def to_svg(spec: dict) -> str:
    """A Vega-Lite spec dict (as `show_chart` draws it, top-level "datasets" included) drawn as SVG text."""
    return vl_convert.vegalite_to_svg(spec)
