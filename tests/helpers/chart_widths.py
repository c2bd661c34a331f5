"""How wide a chart is drawn on the dashboard, without a browser: the chart's Vega-Lite spec drawn
by vl_convert with the settings Streamlit's chart theme adds in the browser (its larger fonts and
16 px paddings around axis labels and titles, copied from Streamlit's CustomTheme). The fonts
here are the system's sans-serif (wider than the browser's Source Sans), so the widths come out
a few per cent above the browser's: a safe side for "fits the page" checks.

Measured against Chromium at 1280 px (the explorer's and the sampling page's charts): 438 px here
for 426 px there, 857 for 839, 899 for 883."""
from __future__ import annotations

import json
import re

import pyarrow.ipc
import vl_convert

PAGE_CONTENT = 820  # pixels of the main column at a 1280 px window, sidebar open (measured in Chromium)
STREAMLIT_THEME = {
    "font": "sans-serif",
    "title": {"align": "left", "anchor": "start", "fontSize": 16, "fontWeight": 600, "offset": 26},
    "header": {"titleFontSize": 16, "labelFontSize": 12},
    "axis": {"labelFontSize": 12, "titleFontSize": 14, "titleFontWeight": 400, "ticks": False, "domain": False,
             "labelFlush": True, "labelFlushOffset": 1, "labelBound": False, "labelLimit": 100,
             "titlePadding": 16, "labelPadding": 16, "labelSeparation": 4, "labelOverlap": True},
    "legend": {"labelFontSize": 14, "titleFontSize": 14, "titleFontWeight": 400, "titlePadding": 8,
               "labelPadding": 16, "columnPadding": 8, "rowPadding": 4, "padding": 8, "symbolStrokeWidth": 4},
    "view": {"strokeWidth": 0, "stroke": "transparent"},
    "bar": {"binSpacing": 4, "discreteBandSize": {"band": 0.85}},
}


def page_charts(at) -> list[dict]:
    """Every chart an AppTest run drew, as its whole Vega-Lite spec (datasets put back in)."""
    found = []
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        spec["datasets"] = {dataset.name: pyarrow.ipc.open_stream(dataset.data.data).read_all().to_pylist()
                            for dataset in chart.proto.datasets}
        found.append(spec)
    return found


def stretches(spec: dict) -> bool:
    """A chart Streamlit sizes to the page (no fixed width, not composed): it cannot be too wide."""
    composed = any(key in spec for key in ("hconcat", "vconcat", "concat", "facet", "repeat"))
    return not composed and not isinstance(spec.get("width"), (int, float))


def drawn_width(spec: dict) -> float:
    """Pixels the chart takes, drawn with Streamlit's theme (its own config wins, as in the browser)."""
    themed = {**spec, "config": merged(STREAMLIT_THEME, spec.get("config", {}))}
    svg = vl_convert.vegalite_to_svg(themed)
    return float(re.search(r'<svg[^>]*\swidth="([\d.]+)"', svg).group(1))


def merged(base: dict, override: dict) -> dict:
    """`base` with `override` on top, nested dicts merged key by key (as Streamlit merges a
    chart's own config over its theme)."""
    result = dict(base)
    for key, value in override.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) \
            else value
    return result


def chart_title(spec: dict) -> str:
    parts = spec.get("hconcat") or spec.get("vconcat") or spec.get("concat") or [{}]
    return str(spec.get("title") or parts[0].get("title") or "untitled")


def too_wide(at) -> list[str]:
    """The fixed-width charts of an AppTest run wider than their place at a 1280 px window: the main
    column (PAGE_CONTENT), or their share of it in st.columns (weight x PAGE_CONTENT, less a gap)."""
    in_columns = {id(chart.proto): column.weight for column in at.columns for chart in column.get("vega_lite_chart")}
    found = []
    for chart, spec in zip(at.get("vega_lite_chart"), page_charts(at)):
        weight = in_columns.get(id(chart.proto))
        room = PAGE_CONTENT if weight is None else weight * PAGE_CONTENT - 16
        if not stretches(spec) and (width := drawn_width(spec)) > room:
            found.append(f"{chart_title(spec)}: {width:.0f} px > {room:.0f} px")
    return found
