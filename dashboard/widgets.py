"""The widgets the pages share: layer, head and token pickers, notes, lazy tabs, and the one way a
widget's value is kept for the session (`keep` with `kept_widget`).

Streamlit forgets a widget's value in a run that does not draw it (another tab or page), so every
kept widget has a copy of its value in st.session_state under KEPT + its key: the widget's
on_change writes the copy, `keep` puts it back before the widget is drawn and checks it against
the widget's options (a model or prompt change may take the kept choice away: then the default).
"""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard import navigation

KEPT = "kept:"  # prefix of the session's copies of widget values


def drop_unknown_widget_states() -> None:
    """Forget the values the browser sent for widgets this server never drew. A websocket message
    may name any widget id; Streamlit (1.67) then fails every keyed widget of the run with a
    KeyError while it gathers the session's state, so such values are dropped before the first
    widget is drawn. Streamlit's own ids ("$$ID-...") stay: it handles those itself. Reaches into
    Streamlit's session state; if that changes shape, nothing is dropped."""
    from streamlit.runtime.state import get_session_state
    from streamlit.runtime.state.common import is_element_id

    try:
        widgets = get_session_state()._state._new_widget_state
        for widget_id in list(widgets.states):
            if not is_element_id(widget_id) and widget_id not in widgets.widget_metadata:
                del widgets.states[widget_id]
    except (AttributeError, TypeError):  # another Streamlit version: leave its state alone
        pass


def keep(key: str, default, allowed=None):
    """The value of widget `key`, kept for the session; a kept value not in `allowed` (the widget's
    options) falls back to `default` (a list keeps its allowed items). Call before drawing the
    widget, and draw it with `kept_widget(key)` and no value of its own."""
    value = st.session_state.get(KEPT + key, default)
    if allowed is not None:
        value = [item for item in value if item in allowed] if isinstance(value, list) else \
            (value if value in allowed else default)
    st.session_state[key] = st.session_state[KEPT + key] = value
    return value


def kept_widget(key: str) -> dict:
    """A widget's keyword arguments for a value kept by `keep`: its key and the callback that
    copies each change into the session's copy."""
    return {"key": key, "on_change": _copy_widget, "args": (key,)}


def _copy_widget(key: str) -> None:
    st.session_state[KEPT + key] = st.session_state[key]


# --- pickers (every one kept for the session) ---------------------------------------------------------

def choose_layer(config, key: str, *, place=None, label: str = "Layer", **options) -> int:
    """A layer of the model (`config.n_layer`), first layer by default."""
    layers = range(config.n_layer)
    keep(key, 0, layers)
    return (place or st).selectbox(label, layers, **kept_widget(key), **options)


def choose_head(config, prefix: str, places=None) -> tuple[int, int]:
    """(layer, head): two pickers keyed `<prefix>_layer` and `<prefix>_head`, side by side (or in
    the two containers `places`)."""
    layer_place, head_place = places or st.columns(2)
    layer = choose_layer(config, f"{prefix}_layer", place=layer_place)
    heads = range(config.n_head)
    keep(f"{prefix}_head", 0, heads)
    head = head_place.selectbox("Head", heads, **kept_widget(f"{prefix}_head"))
    return layer, head


def choose_token(labels: list[str], key: str, *, place=None, label: str = "Token", default: int | None = None) -> int:
    """A position of the prompt, shown by its label (charts.token_labels); the last one by default."""
    positions = range(len(labels))
    keep(key, len(labels) - 1 if default is None else default, positions)
    return (place or st).selectbox(label, positions, format_func=labels.__getitem__, **kept_widget(key))


# --- text and tabs ---------------------------------------------------------------------------------------

def note(text: str) -> None:
    """A plain-language explanation above a step."""
    st.info(text, icon=":material/lightbulb:")


def lazy_tabs(page: navigation.Page, drawers: dict[str, Callable[[], None]]) -> None:
    """The tabs of `page` (navigation's labels, in order, each with its drawer), of which only the
    open one is computed and drawn (`st.tabs(..., on_change="rerun")`): a rerun such as a prompt
    change redraws one tab, not all. The open tab is kept for the session (a visit to another page
    comes back to it), and a link with the query parameter TAB_PARAMETER (e.g. from the overview's
    diagram) opens the tab it names."""
    labels, key = list(page.tabs), page.tabs_key
    if list(drawers) != labels:
        raise ValueError(f"the tabs drawn on {page.title!r} are not the ones dashboard.navigation names")
    linked = st.query_params.get(navigation.TAB_PARAMETER)
    if linked in labels:
        st.session_state[key] = linked
        del st.query_params[navigation.TAB_PARAMETER]
    open_tab = st.session_state.get(key, st.session_state.get(KEPT + key))  # a click, else the kept copy
    st.session_state[key] = open_tab if open_tab in labels else labels[0]
    for tab, draw in zip(st.tabs(labels, key=key, on_change="rerun"), drawers.values()):
        if tab.open:
            with tab:
                draw()
    st.session_state[KEPT + key] = st.session_state[key]
