"""Training that notices divergence and which models the dashboard may train."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers.training import HELDOUT, SENTENCES, snapshot, tiny_model

import core
from core.text.corpus import heldout_scores
from core.train.loop import divergence, train
from core.train.settings import TrainSettings, trainability


def no_warnings_train(model, settings, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a diverging run is reported in the History, never as a NumPy warning
        return train(model, settings, **options)


def test_a_huge_learning_rate_stops_at_once_and_keeps_the_last_good_parameters():
    model = tiny_model()
    before = snapshot(model.params)
    kept = []
    history = no_warnings_train(model, TrainSettings(mode="full", steps=40, batch_size=4, lr=1e3, eval_every=100,
                                                     val_fraction=0.0, dropout=0.0),
                                corpus=SENTENCES, heldout=HELDOUT,
                                callback=lambda record, params: kept.append(snapshot(params)))
    assert history.diverged and "diverged at step" in history.stop_reason
    assert len(history.records) < 40
    losses = [record["train_loss"] for record in history.records]
    assert max(losses) <= 3 * losses[0] + 1  # no accepted loss far above the start
    assert all(np.isfinite(value).all() for value in model.params.values())
    # the parameters whose loss was the last accepted one: those the last recorded step started from
    start = kept[-2] if len(kept) > 1 else before
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, start[name])


def test_the_last_update_is_checked_too():
    model = core.load_default()
    before = snapshot(model.params)
    history = no_warnings_train(model, TrainSettings(mode="head", steps=1, lr=1e300))
    assert history.diverged and "non-finite" in history.stop_reason and history.records == []
    assert np.isfinite(model.params["lm_head.weight"]).all()
    np.testing.assert_array_equal(model.params["lm_head.weight"], before["lm_head.weight"])


def test_the_dashboards_largest_learning_rate_on_the_whole_model_is_flagged():
    # the dashboard's maxima: lr 1.0, whole model, 100 steps of 16 (today: loss 0.78 -> 120, 0% accuracy, no word)
    model = core.load_default()
    history = no_warnings_train(model, TrainSettings(mode="full", steps=100, batch_size=16, lr=1.0, eval_every=50))
    assert history.diverged and "loss rose" in history.stop_reason
    assert heldout_scores(model)["accuracy"] >= 0.9  # the kept parameters still work


def test_ordinary_training_is_not_flagged():
    model = tiny_model()
    history = train(model, TrainSettings(steps=60, batch_size=4, lr=1e-2, eval_every=60, val_fraction=0.2),
                    corpus=SENTENCES, heldout=HELDOUT)
    assert not history.diverged and history.stop_reason is None and len(history.records) == 60


@pytest.mark.parametrize("loss, grad_norm, first, expected", [
    (5.0, 2.0, None, None),
    (float("nan"), 2.0, None, "loss became nan"),
    (4.0, float("inf"), (4.0, 1.0), "gradient norm inf"),
    (16.9, 2.0, (5.3, 2.5), None),
    (17.0, 2.0, (5.3, 2.5), "loss rose to 17"),
    (0.5, 3000.0, (0.5, 2.5), "gradient norm exploded"),
    (0.5, 50.0, (0.5, 0.01), None),  # 5000 times a tiny start, but an ordinary size
])
def test_divergence_rules(loss, grad_norm, first, expected):
    reason = divergence(loss, grad_norm, first)
    assert reason is None if expected is None else expected in reason


class _Stub:
    def __init__(self, kind=None, parameters=10):
        self.tokenizer = type("Tok", (), {} if kind is None else {"kind": kind})()
        self.params = {"w": np.zeros(parameters, dtype=np.float32)}


def test_trainability():
    assert trainability(core.load_default()) is None
    assert trainability(_Stub()) is None  # a tokenizer without .kind is word-level
    assert "BPE" in trainability(_Stub(kind="bpe"))


def test_the_perplexity_of_a_hopeless_model_is_inf_without_a_warning():
    model = tiny_model()

    class Hopeless:  # puts all its probability far away from every expected word
        tokenizer = model.tokenizer

        def forward(self, ids):
            logits = np.zeros((len(ids), model.config.vocab_size))
            logits[:, model.tokenizer.eos_id] = 1e6
            return logits

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = heldout_scores(Hopeless(), HELDOUT)
    assert scores["perplexity"] == float("inf") and scores["accuracy"] == 0.0
