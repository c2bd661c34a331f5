"""Drawing a chart on the page: `show_chart` draws a chart of dashboard.charts with a button under
it that saves it as SVG, named after the chart's title."""
from __future__ import annotations

import re

import altair as alt
import streamlit as st

from dashboard import charts

# Altair validates every chart against the Vega-Lite schema as it is built and again when it is
# converted (jsonschema: most of a page's redraw time). The chart builders' specs are validated
# by tests/dashboard/test_charts.py, so the running app skips both (see `show_chart`). Inputs are at most
# n_layer x n_head x L x L cells, so Altair's 5000-row guard is not needed either.
alt.utils.schemapi.disable_debug_mode()
alt.data_transformers.disable_max_rows()

COMPOSED = {"hconcat", "vconcat", "concat", "facet"}  # specs drawn at their own size, not the page's width
CHART_COUNTER = "charts_drawn"  # session_state key: charts drawn in this run of the page


def show_chart(chart, container=None) -> None:
    """Draw an Altair chart or a Vega-Lite spec dict (in `container`, default the current place)
    without re-validating it, with a button under it that saves it as SVG (Streamlit's toolbar on
    every chart offers "Download as PNG"). Chart and button share one container, so that an
    `st.empty` placeholder (redrawn during training) holds both."""
    spec = chart if isinstance(chart, dict) else chart.to_dict(validate=False)
    fixed_size = isinstance(spec.get("width"), (int, float)) or not COMPOSED.isdisjoint(spec)
    place = (container or st).container()
    place.vega_lite_chart(spec=spec, width="content" if fixed_size else "stretch")
    file_name = svg_file_name(spec)
    place.download_button("Save as SVG", data=lambda: charts.to_svg(spec), file_name=file_name,
                          mime="image/svg+xml", key=f"svg-{next_chart_number()}-{file_name}", on_click="ignore",
                          type="tertiary", icon=":material/download:",
                          help="Save this chart as an SVG file (a vector image that stays sharp at any size).")


def svg_file_name(spec: dict) -> str:
    """The chart's title as a file name ("Layer 0, head 1" -> "layer-0-head-1.svg"); side-by-side charts
    take their first part's title; "chart.svg" untitled."""
    parts = spec.get("hconcat") or spec.get("concat") or [{}]
    title = spec.get("title") or parts[0].get("title")
    text = title.get("text", "") if isinstance(title, dict) else title
    text = " ".join(text) if isinstance(text, list) else str(text or "")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80].strip("-")
    return f"{slug or 'chart'}.svg"


def restart_chart_count() -> None:
    """A page's run starts: its charts are counted from 0 (see `next_chart_number`)."""
    st.session_state[CHART_COUNTER] = 0


def next_chart_number() -> int:
    """Counts the charts drawn since the page's run started (`restart_chart_count`): makes each
    chart's button key unique on the page, even for two charts of one title. A fragment's rerun
    keeps counting from there, so its buttons cannot take a key of the rest of the page."""
    number = st.session_state.get(CHART_COUNTER, 0)
    st.session_state[CHART_COUNTER] = number + 1
    return number
