"""What holds on every CPU when the bundled model's recipe is re-run.

`python -m core train --mode full --steps 1000 --out DIR` gives the bundled checkpoint byte for
byte only where NumPy and OpenBLAS pick the same kernels as the machine that made it (see
the README). Elsewhere the metrics still agree: here the first 50 steps of that exact run (same
model, data, schedule and dropout) are compared with the bundled history.json within stated
tolerances. (Between NumPy's AVX2 and AVX-512 kernels for float32 x**3 the differences after
100 steps were about 1e-7 relative on the losses and 1e-6 on the gradient norm.)
"""
from __future__ import annotations

import pytest

from core.bench.training import bundled_shape_model
from core.data import DEFAULT_CHECKPOINT
from core.io.checkpoint import load_history
from core.train.loop import train
from core.train.settings import TrainSettings

STEPS = 50  # the first evaluation of the recipe (eval_every 50)
LOSS_TOLERANCE = 1e-4  # relative, train and validation loss, held-out perplexity
GRAD_NORM_TOLERANCE = 1e-3  # relative


def test_the_first_50_steps_of_the_recipe_match_the_bundled_history():
    recorded = load_history(DEFAULT_CHECKPOINT)[:STEPS]
    history = train(bundled_shape_model(seed=0), TrainSettings(),
                    callback=lambda record, params: record["step"] < STEPS)
    assert [record["step"] for record in history.records] == list(range(1, STEPS + 1))
    for got, want in zip(history.records, recorded):
        assert got["lr"] == want["lr"]
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=LOSS_TOLERANCE), got["step"]
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=GRAD_NORM_TOLERANCE), got["step"]
    [got], want = history.evaluations(), recorded[STEPS - 1]
    assert got["step"] == want["step"] == STEPS and got["accuracy"] == want["accuracy"]
    assert got["val_loss"] == pytest.approx(want["val_loss"], rel=LOSS_TOLERANCE)
    assert got["heldout_perplexity"] == pytest.approx(want["heldout_perplexity"], rel=LOSS_TOLERANCE)
