"""Per-session state of the dashboard: the prompt, the model in use, cached traces, page frame.

One prompt and one model per session, shared by every page:
- the prompt is the sidebar widget `prompt` (drawn by `sidebar()` in app.py on every run);
- the model is the bundled default (loaded once per server by `st.cache_resource` and never
  modified) unless this session trained its own, which lives in `st.session_state` only,
  so several people can use one server without seeing each other's training;
- traces of the default model are cached for every session (`st.cache_data`); traces of a trained
  model and other results are kept per session, keyed by (model id, token ids, interventions).
`render_page` draws a page's title and turns an unexpected exception into a short
`st.error` so that a learner never sees a traceback.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import altair as alt
import numpy as np
import streamlit as st

import core
from core.attention import default_backend
from dashboard import charts

# Altair validates every chart against the Vega-Lite schema as it is built and again when it is
# converted (jsonschema: most of a page's redraw time). The chart builders' specs are validated
# by tests/test_charts.py, so the running app skips both (see `show_chart`). Inputs are at most
# n_layer x n_head x L x L cells, so Altair's 5000-row guard is not needed either.
alt.utils.schemapi.disable_debug_mode()
alt.data_transformers.disable_max_rows()

DEFAULT_PROMPT = "the sky is"
CACHE_SIZE = 64  # traces and lab results kept per session
DEFAULT_MODEL_ID = "default"
COMPOSED = {"hconcat", "vconcat", "concat", "facet"}  # specs drawn at their own size, not the page's width
CHART_COUNTER = "charts_drawn"  # session_state key: charts drawn in this run of the page


@dataclass(frozen=True)
class Prompt:
    """The prompt as the model sees it: ids and tokens (after truncation) and notices for the learner."""

    text: str
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    notices: tuple[str, ...] = ()


# --- the model ----------------------------------------------------------------------------------

@st.cache_resource(show_spinner="Loading the default model...")
def default_model():
    """The bundled model: loaded once per server, shared by every user, never modified."""
    return core.load_default()


def current_model():
    """This session's model: the one it trained, else the default."""
    return st.session_state.get("trained_model") or default_model()


def model_id() -> str:
    """A key naming the model in use (part of every trace's cache key)."""
    return st.session_state.get("trained_model_id", DEFAULT_MODEL_ID)


def use_trained_model(model, name: str) -> None:
    """Make `model` this session's model for every page."""
    st.session_state["trained_model"] = model
    st.session_state["trained_model_id"] = name


def reset_model() -> None:
    """Go back to the bundled default model."""
    st.session_state.pop("trained_model", None)
    st.session_state.pop("trained_model_id", None)


# --- the prompt ---------------------------------------------------------------------------------

def prepare_prompt(model, text: str) -> Prompt:
    """`text` as `model` reads it (core's Model.encode_prompt: unknown words become <unk>, a
    prompt longer than the context keeps its last tokens); ValueError when nothing is usable."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the prompt is empty: type a few words in the sidebar, for example 'the sky is'")
    ids, tokens, notices = model.encode_prompt(text)
    return Prompt(text=text, ids=tuple(int(i) for i in ids), tokens=tuple(tokens), notices=tuple(notices))


def current_prompt() -> Prompt | None:
    """The session's prompt prepared for the current model, its notices (unknown words, truncation)
    shown; None, after a warning, when there is nothing the model can read."""
    try:
        prompt = prepare_prompt(current_model(), st.session_state.get("prompt", DEFAULT_PROMPT))
    except ValueError as error:
        message = str(error)
        st.warning(f"{message[:1].upper()}{message[1:]}. The parts of this page that need a prompt wait "
                   "until it is fixed.")
        return None
    for notice in prompt.notices:
        st.info(notice[:1].upper() + notice[1:] + ".")
    return prompt


# --- traces -------------------------------------------------------------------------------------

def remembered(kind: str, key: tuple, compute: Callable[[], object]):
    """`compute()` once per (model id, kind, key) in this session; the most recent results are kept."""
    key = (model_id(), kind, key)
    cache = st.session_state.setdefault("remembered", OrderedDict())
    if key not in cache:
        cache[key] = compute()
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return cache[key]


@st.cache_data(max_entries=CACHE_SIZE, show_spinner=False)
def default_model_trace(ids: tuple[int, ...], interventions=None):
    """A trace of the default model, which never changes: one cache serves every session."""
    return default_model().run(np.asarray(ids, dtype=np.int64), interventions=interventions)  # ids [L]


def trace(ids, interventions=None):
    """The current model's trace for token ids: shared by all sessions for the default model,
    kept in this session for a model it trained (cached by model id, ids, interventions)."""
    ids = tuple(int(i) for i in ids)
    if model_id() == DEFAULT_MODEL_ID:
        return default_model_trace(ids, interventions)
    model = current_model()
    return remembered("trace", (ids, interventions),
                      lambda: model.run(np.asarray(ids, dtype=np.int64), interventions=interventions))  # ids [L]


# --- drawing ------------------------------------------------------------------------------------

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


def next_chart_number() -> int:
    """Counts the charts drawn since the page's run started (`render_page` resets it): makes each
    chart's button key unique on the page, even for two charts of one title. A fragment's rerun
    keeps counting from there, so its buttons cannot take a key of the rest of the page."""
    number = st.session_state.get(CHART_COUNTER, 0)
    st.session_state[CHART_COUNTER] = number + 1
    return number


def lazy_tabs(key: str, drawers: dict[str, Callable[[], None]]) -> None:
    """Tabs labelled by `drawers`' keys, of which only the open one is computed and drawn
    (`st.tabs(..., on_change="rerun")`): a rerun such as a prompt change redraws one tab, not all."""
    for tab, draw in zip(st.tabs(list(drawers), key=key, on_change="rerun"), drawers.values()):
        if tab.open:
            with tab:
                draw()


# --- page frame ---------------------------------------------------------------------------------

def sidebar() -> None:
    """The sidebar every page shares: the prompt and which model is in use."""
    st.session_state.setdefault("prompt", DEFAULT_PROMPT)
    st.sidebar.text_input("Prompt", key="prompt", help="Shared by every page. Try 'the dog can'.")
    name = "default (bundled)" if model_id() == DEFAULT_MODEL_ID else f"your trained model ({model_id()})"
    st.sidebar.caption(f"Model: {name} · attention backend: {backend_name()}")


def backend_name() -> str:
    """The attention backend in use, as a learner reads it."""
    return {"c": "C kernel", "numpy": "NumPy fallback"}[default_backend()]


def render_page(title: str, body: Callable[[], None], intro: str = "") -> None:
    """Draw a page: its title, an intro, then `body`; an unexpected error becomes a short message."""
    st.session_state[CHART_COUNTER] = 0
    st.title(title)
    if intro:
        st.caption(intro)
    try:
        body()
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        st.error(f"{error}")
    except Exception as error:  # noqa: BLE001 - never a traceback in front of a learner
        st.error(f"Something went wrong on this page ({type(error).__name__}: {error}). "
                 "Try another prompt or setting; the other pages still work.")
