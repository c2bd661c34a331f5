"""Fixtures of the core tests."""
from __future__ import annotations

import pytest
from helpers.models import random_model


@pytest.fixture(scope="session")
def small_model():
    """helpers.models.random_model(): two layers over the corpus vocabulary, random weights, shared by
    the session. Never change its parameters; a test that does makes its own random_model()."""
    return random_model()
