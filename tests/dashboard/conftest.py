"""Fixtures of the dashboard tests: fresh AppTest sessions of dashboard/app.py, and the GPT-2-shaped
model. The plain functions that drive and read a session are in helpers/dashboard.py."""
from __future__ import annotations

import pytest
import streamlit as st
from helpers.dashboard import APP, TIMEOUT, assert_clean, new_session
from helpers.gpt2 import GPT2_NAME
from streamlit.testing.v1 import AppTest

import core


@pytest.fixture
def models_folder():
    """The folder the sessions' model picker lists (GLASSBOX_MODELS); None leaves the environment's.
    A test module overrides this fixture to give its sessions another folder: `app` requests it, so
    the variable is set before the session starts."""
    return None


@pytest.fixture
def app_timeout():
    """Seconds each AppTest run of `app` may take; a test module with slower pages overrides it."""
    return TIMEOUT


@pytest.fixture
def app(models_folder, app_timeout):
    """A fresh session of the dashboard, run once (on the Overview page)."""
    st.cache_resource.clear()
    st.cache_data.clear()
    return new_session(app_timeout)


@pytest.fixture
def gpt2_app(gpt2_models_dir, monkeypatch):
    """A session that picked the GPT-2-small-shaped checkpoint (12 x 12 heads, 768, GPT-2's BPE)."""
    monkeypatch.setenv("GLASSBOX_MODELS", str(gpt2_models_dir))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="model_picker").set_value(GPT2_NAME).run()
    assert_clean(at)
    return at


@pytest.fixture(scope="session")
def gpt2_model(gpt2_models_dir):
    """The GPT-2-small-shaped checkpoint of gpt2_models_dir, loaded once for the session (the expected
    numbers). Shared: never change its parameters."""
    return core.load_checkpoint(gpt2_models_dir / GPT2_NAME)


@pytest.fixture
def gpt2(gpt2_model, gpt2_models_dir, monkeypatch):
    """GPT-2 small's shapes (12 layers, 12 heads, n_embd 768, context 1024, GPT-2's 50,257-token BPE),
    random weights, as the only checkpoint of the models folder; returns the model (for the expected
    numbers)."""
    monkeypatch.setenv("GLASSBOX_MODELS", str(gpt2_models_dir))
    return gpt2_model
