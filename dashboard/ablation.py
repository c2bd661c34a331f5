"""Head ablations for the lesson pages, kept per session: one layer's heads at a time (one forward
pass per head, core.explain.questions.ablation_effects), computed once per (model, prompt, token,
layer) by `traces.remembered`."""
import streamlit as st

from core.explain import experiments, questions
from dashboard import models, traces

REQUESTS = "ablate_requests"  # session_state: (model id, ids) and the layers asked for on it


def layer_effects(model, trace, token_id: int, layer: int):
    """The change in `token_id`'s probability when each head of `layer` is zeroed [n_head]."""
    ids = tuple(trace.ids.tolist())
    return traces.remembered("ablation", (ids, token_id, layer), lambda: questions.ablation_effects(
        model, trace.ids, token_id, experiments.heads_to_ablate(model.config, layer)))


def requested_layers(trace) -> set:
    """The layers this session asked to ablate for this model and prompt (a new prompt starts empty)."""
    tag = (models.model_id(), tuple(trace.ids.tolist()))
    requests = st.session_state.get(REQUESTS)
    if requests is None or requests[0] != tag:
        requests = st.session_state[REQUESTS] = (tag, set())
    return requests[1]
