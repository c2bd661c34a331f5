"""Experiments > "Watch learning happen" through Streamlit's AppTest: the loss, gradient norms and
changes shown are core.explain.learning_step's for the model in use; a trained run's snapshots are
compared one to the next; a model that cannot be trained shows the reason instead."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.dashboard import assert_clean, open_page, open_tab, rows, titled, train_and_wait
from streamlit.testing.v1 import AppTest

from core.explain import learning_step
from dashboard.navigation import EXPERIMENTS

TAB = EXPERIMENTS.tabs.learning


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def open_watch(at: AppTest) -> AppTest:
    open_page(at, "experiments")
    return open_tab(at, "experiments_tab", TAB)


@pytest.fixture(scope="module")
def toy_steps(toy_model):
    """The toy model's step at the page's default (plain SGD, lr 0.1) and with AdamW at lr 0.001."""
    return (toy_model, learning_step.one_training_step(toy_model, 0.1),
            learning_step.one_training_step(toy_model, 0.001, "adamw"))


def test_the_page_shows_the_steps_loss_and_gradient_norms(app, toy_steps):
    toy, step, _ = toy_steps
    open_watch(app)
    shown = metrics(app)
    assert shown["loss before the step"] == f"{step.loss_before:.4f}"
    assert shown["loss after the step"] == f"{step.loss_after:.4f}"
    assert step.loss_after < step.loss_before
    assert shown["gradient norm (all)"] == f"{step.total_norm:.4f}"
    bars = {row["label"]: row["value"] for row in rows(titled(app, "^Gradient norm of each parameter group"))}
    assert list(bars) == list(step.norms)
    assert bars == pytest.approx(step.norms, rel=1e-6)
    change = learning_step.prompt_change(toy, step.params_after, toy.encode_prompt("the sky is")[0], 0, 0)
    assert shown["next token: total variation"] == f"{change['distribution']['total_variation']:.6f}"
    assert shown["head 0.0: largest weight change"] == f"{change['largest_pattern_change']:.6f}"
    cells = rows(titled(app, "^Layer 0, head 0: attention after the step minus before"))
    assert max(abs(cell["value"]) for cell in cells if cell["value"] is not None) == pytest.approx(
        np.abs(change["pattern_change"]).max(), rel=1e-5)


def test_learning_rate_zero_changes_nothing_and_adamw_takes_its_own_step(app, toy_steps):
    _, _, adamw = toy_steps
    open_watch(app)
    app.select_slider(key="learn_lr").set_value(0.0).run()
    assert_clean(app)
    shown = metrics(app)
    assert shown["loss after the step"] == shown["loss before the step"]
    assert shown["next token: total variation"] == "0.000000"
    assert shown["head 0.0: largest weight change"] == "0.000000"
    app.select_slider(key="learn_lr").set_value(0.001).run()
    app.radio(key="learn_optimizer").set_value("adamw").run()
    assert_clean(app)
    assert metrics(app)["loss after the step"] == f"{adamw.loss_after:.4f}"
    assert any("AdamW's first step" in caption.value for caption in app.caption)


def test_a_trained_runs_snapshots_are_compared_one_to_the_next(app):
    open_page(app, "training")
    train_and_wait(app, steps=3)
    open_watch(app)
    run = app.session_state["train_runs"][-1]
    ids = run.tokenizer.encode("the sky is")
    expected = learning_step.snapshot_moves(run.config, run.tokenizer, run.snapshots, ids)
    table = app.dataframe[0].value
    assert list(table["from step"]) == [0, 1, 2] and list(table["to step"]) == [1, 2, 3]
    assert list(table["total variation"]) == pytest.approx([move["total_variation"] for move in expected])
    assert all(value > 0 for value in table["total variation"])  # every step of a fresh model moves it
    line = rows(titled(app, "^Next-token distribution: change between consecutive snapshots"))
    assert [row["y"] for row in line] == pytest.approx([move["total_variation"] for move in expected])


def test_without_a_trained_run_the_snapshot_part_says_how_to_get_one(app):
    open_watch(app)
    assert not app.dataframe
    assert any("Train a model on the Training page" in caption.value for caption in app.caption)


def test_a_model_that_cannot_be_trained_shows_the_reason(gpt2_app):
    open_watch(gpt2_app)
    assert any("BPE" in warning.value for warning in gpt2_app.warning)
    assert not gpt2_app.metric and not gpt2_app.get("vega_lite_chart")
