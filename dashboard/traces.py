"""Traces of the model in use, and other results kept per session.

Traces of base models are cached for every session (`st.cache_data`): a base model never changes.
Traces of a trained model and other results (ablations, lab samples, snapshots) are kept per
session by `remembered`, keyed by (model id, kind, key). A trace is core.model.trace's Trace.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import streamlit as st

from dashboard import models

CACHE_SIZE = 64  # traces and lab results kept per session
LARGE_CACHE_SIZE = 4  # traces of large models kept per server (all large models together)


def remembered(kind: str, key: tuple, compute: Callable[[], object]):
    """`compute()` once per (model id, kind, key) in this session; the most recent results are kept."""
    key = (models.model_id(), kind, key)
    cache = st.session_state.setdefault("remembered", OrderedDict())
    if key not in cache:
        cache[key] = compute()
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return cache[key]


def _base_trace(name: str, ids: tuple[int, ...], interventions):
    return models.base_model(name).run(np.asarray(ids, dtype=np.int64), interventions=interventions)  # ids [L]


# One cache serves every session. Large models get a cache of few entries: GPT-2 small's trace of a
# 128-token prompt holds 143 MiB of arrays.
small_model_trace = st.cache_data(max_entries=CACHE_SIZE, show_spinner=False)(_base_trace)
large_model_trace = st.cache_data(max_entries=LARGE_CACHE_SIZE, show_spinner=False)(_base_trace)


def trace(ids, interventions=None):
    """The current model's trace for token ids: shared by all sessions for a base model, kept in
    this session for a model it trained (cached by model id, ids, interventions)."""
    ids = tuple(int(i) for i in ids)
    choice = models.model_choice()
    model = models.current_model()
    if choice != models.TRAINED:
        cached = large_model_trace if model.parameter_count > models.LARGE_MODEL else small_model_trace
        return cached(choice, ids, interventions)
    return remembered("trace", (ids, interventions),
                      lambda: model.run(np.asarray(ids, dtype=np.int64), interventions=interventions))  # ids [L]
