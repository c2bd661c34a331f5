"""Per-session state of the dashboard: the prompt, the model in use, cached traces, page frame.

One prompt and one model per session, shared by every page:
- the prompt is the sidebar widget `prompt` (drawn by `sidebar()` in app.py on every run), at
  most MAX_PROMPT_CHARS characters, of which the dashboard follows the last MAX_PROMPT_TOKENS tokens;
- the model is picked in the sidebar: the bundled toy model or a checkpoint of the models folder
  (core.models_dir, by name, never a path), each loaded once per server by `st.cache_resource` and
  never modified, or the model this session trained, which lives in `st.session_state` only,
  so several people can use one server without seeing each other's training;
- traces of base models are cached for every session (`st.cache_data`); traces of a trained
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
from core.io import models_dir
from core.native.kernel import default_backend
from dashboard import charts

# Altair validates every chart against the Vega-Lite schema as it is built and again when it is
# converted (jsonschema: most of a page's redraw time). The chart builders' specs are validated
# by tests/test_charts.py, so the running app skips both (see `show_chart`). Inputs are at most
# n_layer x n_head x L x L cells, so Altair's 5000-row guard is not needed either.
alt.utils.schemapi.disable_debug_mode()
alt.data_transformers.disable_max_rows()

DEFAULT_PROMPT = "the sky is"
CACHE_SIZE = 64  # traces and lab results kept per session
LARGE_CACHE_SIZE = 4  # traces of large models kept per server (all large models together)
LARGE_MODEL = 10_000_000  # parameters: above this a model's traces go to the large-model cache
MAX_PROMPT_CHARS = 1000  # the prompt box's limit
MAX_PROMPT_TOKENS = 128  # tokens the dashboard follows (the toy model's context is 32)
MAX_TOKENS_LISTED = 300  # tokens the vocabulary search lists at once
TAB_PARAMETER = "tab"  # query parameter naming the tab a link opens (see lazy_tabs)
# Prompts the bundled model is unsure about (next-token entropy 2-5.5 bits; tests/test_dashboard_steps.py
# checks it), so that temperature and top-p visibly change the choice:
WORD_EXAMPLES = ("the frog", "the horse", "what is the", "the opposite of")
BPE_EXAMPLES = ("The capital of France is", "Once upon a time, there was a", "My favourite colour is",
                "The best way to learn is")
MAX_UNKNOWN_SHOWN, MAX_WORD_SHOWN = 8, 24  # unknown words listed in the notice, characters of each
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


# --- the model ---------------------------------------------------------------------------------
# The picker offers the bundled toy model (BUNDLED), every checkpoint in the models folder (by its
# name: models_dir's rule, so never a path) and this session's trained model (TRAINED) when it has
# one. The choice lives in st.session_state["model_choice"]; the widget "model_picker" mirrors it.

BUNDLED = ""  # picker value of the bundled model (no checkpoint can be named "": models_dir.check_name)
TRAINED = "<trained>"  # picker value of this session's trained model ("<" is not allowed in names either)
MAX_BASE_MODELS = 3  # base models kept loaded per server (GPT-2 small: about 0.5 GB each)
LOAD_ERRORS = (ValueError, TypeError, OSError, MemoryError)  # what loading a checkpoint may raise


@st.cache_resource(show_spinner="Loading the model...", max_entries=MAX_BASE_MODELS)
def base_model(name: str = BUNDLED):
    """A base model by picker name: loaded once per server, shared by every user, never modified."""
    return core.load_default() if name == BUNDLED else models_dir.load_named(name)


def model_choice() -> str:
    """The picker value of the model in use."""
    choice = st.session_state.get("model_choice", BUNDLED)
    return BUNDLED if choice == TRAINED and "trained_model" not in st.session_state else choice


def current_model():
    """This session's model: its trained one or the base model picked in the sidebar (the bundled
    one, with a message, when the picked checkpoint can no longer be read)."""
    choice = model_choice()
    if choice == TRAINED:
        return st.session_state["trained_model"]
    try:
        return base_model(choice)
    except LOAD_ERRORS:
        st.session_state["model_error"] = load_error(choice, "the bundled toy model is in use instead")
        st.session_state["model_choice"] = BUNDLED
        return base_model(BUNDLED)


def model_id() -> str:
    """A key naming the model in use (part of every trace's cache key)."""
    choice = model_choice()
    if choice == TRAINED:
        return st.session_state["trained_model_id"]
    return DEFAULT_MODEL_ID if choice == BUNDLED else f"models/{choice}"


def use_trained_model(model, name: str) -> None:
    """Make `model` this session's model for every page."""
    st.session_state["trained_model"] = model
    st.session_state["trained_model_id"] = name
    st.session_state["model_choice"] = TRAINED


def reset_model() -> None:
    """Go back to the bundled default model."""
    st.session_state.pop("trained_model", None)
    st.session_state.pop("trained_model_id", None)
    st.session_state["model_choice"] = BUNDLED


def model_options() -> list[str]:
    """The picker's values: the bundled model, the models folder's checkpoints, the trained model."""
    trained = [TRAINED] if "trained_model" in st.session_state else []
    return [BUNDLED, *models_dir.checkpoint_names(), *trained]


def picker_label(choice: str) -> str:
    """A picker value as the learner reads it (a pure function: Streamlit may call it outside the
    session's run)."""
    return {BUNDLED: "default toy model (bundled)", TRAINED: "your trained model"}.get(choice, choice)


def model_label(choice: str) -> str:
    """A picker value as the learner reads it, the trained model with its run's name."""
    if choice == TRAINED:
        return f"{picker_label(choice)} ({st.session_state.get('trained_model_id', '')})"
    return picker_label(choice)


def pick_model() -> None:
    """The picker's callback: load the picked base model now, so that a checkpoint that cannot be
    read leaves the previous model in use and a short message naming only the model."""
    choice = st.session_state["model_picker"]
    if choice not in (BUNDLED, TRAINED):
        try:
            base_model(choice)
        except LOAD_ERRORS:
            st.session_state["model_error"] = load_error(choice, "the previous model is still in use")
            return
    st.session_state["model_choice"] = choice


def load_error(name: str, consequence: str) -> str:
    """The message for a checkpoint that cannot be loaded: it names the model, never a path."""
    return f"The model {name!r} could not be loaded (it is damaged or not a GPT-2-family checkpoint); {consequence}."


# --- the prompt ---------------------------------------------------------------------------------

def prepare_prompt(model, text: str) -> Prompt:
    """`text` as `model` reads it (core's Model.encode_prompt), within the dashboard's limits: at
    most MAX_PROMPT_CHARS characters and MAX_PROMPT_TOKENS tokens (the last ones are kept, as
    when a prompt is longer than the context), each cut with a notice; ValueError when nothing is usable."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the prompt is empty: type a few words in the sidebar, for example 'the sky is'")
    notices = []
    if len(text) > MAX_PROMPT_CHARS:
        text = text[:MAX_PROMPT_CHARS]
        notices.append(f"the prompt is cut to its first {MAX_PROMPT_CHARS:,} characters")
    ids, tokens, model_notices = model.encode_prompt(text)
    unknown = model.tokenizer.unknown_words(text)
    notices += [notice for notice in model_notices if not (unknown and notice.startswith("unknown words"))]
    if unknown:
        notices.append(unknown_words_notice(unknown))
    if len(ids) > MAX_PROMPT_TOKENS:
        notices.append(f"the prompt has {len(ids)} tokens; the dashboard follows at most {MAX_PROMPT_TOKENS}: "
                       f"only the last {MAX_PROMPT_TOKENS} are used")
        ids, tokens = ids[-MAX_PROMPT_TOKENS:], tokens[-MAX_PROMPT_TOKENS:]
    return Prompt(text=text, ids=tuple(int(i) for i in ids), tokens=tuple(tokens), notices=tuple(notices))


def unknown_words_notice(words: list[str]) -> str:
    """"unknown words shown as <unk>: `a`, `b`": each word quoted as code and cut to a readable
    length, at most MAX_UNKNOWN_SHOWN of them."""
    shown = [word if len(word) <= MAX_WORD_SHOWN else word[:MAX_WORD_SHOWN] + "…" for word in words[:MAX_UNKNOWN_SHOWN]]
    more = f" and {count(len(words) - MAX_UNKNOWN_SHOWN, 'more word')}" if len(words) > MAX_UNKNOWN_SHOWN else ""
    return f"not in the model's vocabulary, shown as `<unk>`: {', '.join(f'`{word}`' for word in shown)}{more}"


def count(number: int, noun: str, plural: str | None = None) -> str:
    """"1 token", "3 tokens" (`plural` when it is not noun + "s": "1 match", "2 matches")."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


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
        st.info(notice[:1].upper() + notice[1:] + ("" if notice.endswith((".", "…")) else "."))
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


def _base_trace(name: str, ids: tuple[int, ...], interventions):
    return base_model(name).run(np.asarray(ids, dtype=np.int64), interventions=interventions)  # ids [L]


# Traces of base models, which never change: one cache serves every session. Large models get a
# cache of few entries: GPT-2 small's trace of a 128-token prompt holds 143 MiB of arrays.
small_model_trace = st.cache_data(max_entries=CACHE_SIZE, show_spinner=False)(_base_trace)
large_model_trace = st.cache_data(max_entries=LARGE_CACHE_SIZE, show_spinner=False)(_base_trace)


def trace(ids, interventions=None):
    """The current model's trace for token ids: shared by all sessions for a base model, kept in
    this session for a model it trained (cached by model id, ids, interventions)."""
    ids = tuple(int(i) for i in ids)
    choice = model_choice()
    model = current_model()
    if choice != TRAINED:
        cached = large_model_trace if model.parameter_count > LARGE_MODEL else small_model_trace
        return cached(choice, ids, interventions)
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
    (`st.tabs(..., on_change="rerun")`): a rerun such as a prompt change redraws one tab, not all.
    The open tab is kept for the session (a visit to another page comes back to it), and a link
    with the query parameter `tab` (e.g. from the overview's diagram) opens the tab it names."""
    labels = list(drawers)
    linked = st.query_params.get(TAB_PARAMETER)
    if linked in labels:
        st.session_state[key] = linked
        del st.query_params[TAB_PARAMETER]
    open_tab = st.session_state.get(key, st.session_state.get(KEPT + key))  # a click, else the kept copy
    st.session_state[key] = open_tab if open_tab in labels else labels[0]
    for tab, draw in zip(st.tabs(labels, key=key, on_change="rerun"), drawers.values()):
        if tab.open:
            with tab:
                draw()
    st.session_state[KEPT + key] = st.session_state[key]


# --- settings kept for the session ------------------------------------------------------------

KEPT = "kept:"  # prefix of the session's copies of widget values


def keep(key: str, default, allowed=None):
    """The value of widget `key`, kept for the session: Streamlit forgets a widget's value in a run
    that does not draw it (another tab or page), so its value lives in a copy in st.session_state
    (written by the widget's on_change, see `kept_widget`) and is put back before each drawing. A
    kept value not in `allowed` (the widget's options, e.g. after a model change) falls back to
    `default` (a list keeps its allowed items). Call before drawing the widget."""
    value = st.session_state.get(KEPT + key, default)
    if allowed is not None:
        value = [item for item in value if item in allowed] if isinstance(value, list) else \
            (value if value in allowed else default)
    st.session_state[key] = st.session_state[KEPT + key] = value
    return value


def kept_widget(key: str) -> dict:
    """A widget's keyword arguments for a value kept by `keep`: its key and the callback that
    copies each change into the session's copy. Draw the widget with no value of its own."""
    return {"key": key, "on_change": _copy_widget, "args": (key,)}


def _copy_widget(key: str) -> None:
    st.session_state[KEPT + key] = st.session_state[key]


# --- page frame ---------------------------------------------------------------------------------

def sidebar() -> None:
    """The sidebar every page shares: the model picker, the prompt, example prompts and the
    model's vocabulary."""
    # Written on every run, so that every run sends the prompt to the browser: the browser draws a
    # widget only once its code has loaded, and a field first drawn from a run that did not send
    # the value would show, and send back, an empty prompt.
    st.session_state["prompt"] = st.session_state.get("prompt", DEFAULT_PROMPT)
    model = model_picker()
    st.sidebar.text_input("Prompt", key="prompt", max_chars=MAX_PROMPT_CHARS,
                          help=f"Shared by every page; at most {MAX_PROMPT_CHARS:,} characters, and the dashboard "
                               f"follows the last {MAX_PROMPT_TOKENS} tokens. Try 'the dog can'.")
    example_prompts(model)
    known_tokens(model)
    st.sidebar.caption(f"Model: {model_label(model_choice())} · attention backend: {backend_name()}")


def model_picker():
    """The model picker (only names from `model_options`, never a path); returns the model in use."""
    options = model_options()
    if st.session_state.get("model_choice", BUNDLED) not in options:  # deleted from the folder meanwhile
        st.session_state["model_choice"] = BUNDLED
    model = current_model()  # falls back to the bundled model if the picked one cannot be read now
    st.session_state["model_picker"] = model_choice()
    st.sidebar.selectbox("Model", options, key="model_picker", format_func=picker_label, on_change=pick_model,
                         help="The bundled toy model, every checkpoint in this server's models folder, and the "
                              "model you trained in this session. The prompt stays when you switch.")
    if "model_error" in st.session_state:
        st.sidebar.warning(st.session_state.pop("model_error"))
    return model


def use_prompt(text: str) -> None:
    st.session_state["prompt"] = text


def example_prompts(model) -> None:
    """One-click prompts where the model is unsure, so that temperature and top-p visibly matter."""
    examples = WORD_EXAMPLES if tokenizer_kind(model) == "word" else BPE_EXAMPLES
    st.sidebar.caption("Examples where the model hesitates between several next words:")
    for index, text in enumerate(examples):
        st.sidebar.button(text, key=f"example-{index}", on_click=use_prompt, args=(text,), type="tertiary")


def tokenizer_kind(model) -> str:
    return getattr(model.tokenizer, "kind", "word")


def known_tokens(model) -> None:
    """A searchable list of the tokens the model knows (its vocabulary)."""
    tokens = model.tokenizer.tokens
    with st.sidebar.expander(f"The {count(len(tokens), 'token')} the model knows"):
        query = st.text_input("Search", key="vocab_search", max_chars=40, placeholder="e.g. sky")
        found = [token for token in tokens if query.strip().lower() in token.lower()]
        shown = found[:MAX_TOKENS_LISTED]
        st.caption(f"{count(len(found), 'match', 'matches')}" + (f", the first {MAX_TOKENS_LISTED} shown" if len(found) > len(shown)
                                                         else "") + (":" if shown else "."))
        st.markdown(" ".join(f"`{token}`" for token in shown))


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
