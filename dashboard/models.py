"""The model in use: the sidebar picker's choices, loading, and the session's trained model.

The picker offers the bundled toy model (BUNDLED), every checkpoint in the models folder (by its
name: core.io.models_dir's rule, so never a path) and this session's trained model (TRAINED) when
it has one. A base model is loaded once per server by `st.cache_resource` and never modified; the
trained model lives in `st.session_state` only, so several people can use one server without
seeing each other's training. The choice lives in st.session_state["model_choice"]; the sidebar's
widget "model_picker" (dashboard.frame) mirrors it.
"""
from __future__ import annotations

import streamlit as st

import core
from core.text.markdown import escaped
from core.io import models_dir
from core.native.kernel import default_backend

BUNDLED = ""  # picker value of the bundled model (no checkpoint can be named "": models_dir.check_name)
TRAINED = "<trained>"  # picker value of this session's trained model ("<" is not allowed in names either)
DEFAULT_MODEL_ID = "default"
MAX_BASE_MODELS = 3  # base models kept loaded per server (GPT-2 small: about 0.5 GB each)
LOAD_ERRORS = (ValueError, TypeError, OSError, MemoryError)  # what loading a checkpoint may raise
LARGE_MODEL = 10_000_000  # parameters: above this (GPT-2 small) pages cache fewer traces and draw fewer samples


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
    """The picker's values: the bundled model, the models folder's checkpoints (GPT-2 family and
    llama family: llama, qwen2, qwen3, mistral; every page draws from the architecture), the
    trained model."""
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
    choice = st.session_state.get("model_picker", BUNDLED)
    if choice not in model_options():  # whatever the browser sent: only the picker's names
        choice = BUNDLED
    if choice not in (BUNDLED, TRAINED):
        try:
            base_model(choice)
        except LOAD_ERRORS:
            st.session_state["model_error"] = load_error(choice, "the previous model is still in use")
            return
    st.session_state["model_choice"] = choice


def load_error(name: str, consequence: str) -> str:
    """The message for a checkpoint that cannot be loaded: it names the model, never a path."""
    return f"The model '{escaped(name)}' could not be loaded (it is damaged or not a GPT-2- or Llama-family checkpoint); {consequence}."


def backend_name() -> str:
    """The attention backend the model runs on (core.native.kernel), as a learner reads it."""
    return {"c": "C kernel", "numpy": "NumPy fallback"}[default_backend()]
