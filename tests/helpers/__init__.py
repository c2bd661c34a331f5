"""Plain functions and constants the tests share (fixtures live in the conftest.py files): small
models, GPT-2-shaped checkpoints, the reference attention, driving the dashboard, chart checks."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project: tests/helpers/ is two folders below it
