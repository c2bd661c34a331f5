"""Helpers the tests share: small models, GPT-2-shaped checkpoints, chart checks (plain functions; fixtures live in conftest.py)."""
