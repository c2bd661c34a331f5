"""core.explain.learning_step: one training step taken apart, checked against the model's own functions
(core.train.backward's gradients, core.train.optim.clip_gradients' norm, the model's forward pass)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.gpt2 import small_gpt2
from helpers.models import random_model

import core
from core.explain import learning_step
from core.model import forward
from core.model.config import GPTConfig
from core.model.model import Model
from core.model.params import init_params, param_shapes
from core.train import backward
from core.train.optim import clip_gradients


@pytest.fixture(scope="module")
def batch(toy_model):
    return learning_step.step_batch(toy_model)


@pytest.fixture(scope="module")
def gradients(toy_model, batch):
    return learning_step.batch_gradients(toy_model.params, toy_model.config, *batch)


def sky(model):
    return model.encode_prompt("the sky is")[0]


def test_the_batch_is_seeded_and_made_of_next_token_windows(toy_model, batch):
    inputs, targets = batch
    assert inputs.shape == targets.shape == (learning_step.STEP_BATCH, toy_model.config.n_positions)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    again, _ = learning_step.step_batch(toy_model)
    other, _ = learning_step.step_batch(toy_model, seed=1)
    np.testing.assert_array_equal(inputs, again)
    assert not np.array_equal(inputs, other)


def test_the_loss_and_gradients_are_core_backwards(toy_model, batch, gradients):
    loss, grads = gradients
    cache = {}
    logits = forward.gpt_forward(toy_model.params, toy_model.config, batch[0], cache=cache)
    expected_loss, d_logits = backward.softmax_cross_entropy(logits, batch[1])
    expected = backward.gpt_backward(toy_model.params, toy_model.config, cache, d_logits)
    assert loss == expected_loss
    assert set(grads) == set(toy_model.params)
    for name in expected:
        np.testing.assert_array_equal(grads[name], expected[name])


def test_group_norms_cover_every_parameter_and_make_up_the_clipped_norm(toy_model, gradients):
    _, grads = gradients
    norms = learning_step.group_norms(grads)
    assert list(norms) == ["embeddings", "block 0 LayerNorms", "block 0 attention", "block 0 MLP",
                           "block 1 LayerNorms", "block 1 attention", "block 1 MLP", "final LayerNorm", "output head"]
    total = clip_gradients({name: grad.copy() for name, grad in grads.items()}, 1.0)  # training's own norm
    assert math.sqrt(sum(norm**2 for norm in norms.values())) == pytest.approx(total, rel=1e-9)
    head = float(np.linalg.norm(grads["lm_head.weight"].astype(np.float64)))
    assert norms["output head"] == pytest.approx(head, rel=1e-6)
    step = learning_step.one_training_step(toy_model, 0.1, grads=gradients)
    assert step.total_norm == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("optimizer", learning_step.OPTIMIZERS)
def test_a_step_with_learning_rate_zero_changes_nothing(toy_model, gradients, optimizer):
    step = learning_step.one_training_step(toy_model, 0.0, optimizer, grads=gradients)
    for name, value in toy_model.params.items():
        np.testing.assert_array_equal(step.params_after[name], value)
    assert step.loss_after == step.loss_before
    change = learning_step.prompt_change(toy_model, step.params_after, sky(toy_model), 1, 2)
    assert change["distribution"]["total_variation"] == 0.0
    assert not change["pattern_change"].any() and change["largest_pattern_change"] == 0.0


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.01), ("sgd", 0.1), ("adamw", 1e-4), ("adamw", 1e-3)])
def test_a_small_step_lowers_the_loss_on_its_batch(toy_model, gradients, optimizer, lr):
    step = learning_step.one_training_step(toy_model, lr, optimizer, grads=gradients)
    assert step.loss_after < step.loss_before
    assert step.loss_before == pytest.approx(gradients[0])


def test_a_random_models_step_lowers_its_loss_too():
    model = random_model()
    step = learning_step.one_training_step(model, 0.01)
    assert step.loss_after < step.loss_before


def test_plain_sgd_moves_each_parameter_by_lr_times_its_gradient_and_leaves_the_model_alone(toy_model, gradients):
    before = {name: value.copy() for name, value in toy_model.params.items()}
    step = learning_step.one_training_step(toy_model, 0.5, "sgd", grads=gradients)
    _, grads = gradients
    for name in ("lm_head.weight", "transformer.h.0.attn.c_attn.weight", "transformer.wpe.weight"):
        np.testing.assert_allclose(step.params_after[name], before[name] - 0.5 * grads[name], atol=1e-7)
    for name, value in toy_model.params.items():
        np.testing.assert_array_equal(value, before[name])


def test_adamws_first_step_moves_every_parameter_with_a_gradient_by_about_the_learning_rate(toy_model, gradients):
    step = learning_step.one_training_step(toy_model, 1e-3, "adamw", grads=gradients)
    _, grads = gradients
    name = "transformer.h.1.mlp.c_fc.bias"  # no weight decay: the move is lr * g / (|g| + eps)
    moved = np.abs(step.params_after[name] - toy_model.params[name])[np.abs(grads[name]) > 1e-5]
    np.testing.assert_allclose(moved, 1e-3, rtol=0.02)


def test_prompt_change_reads_the_models_own_trace(toy_model, gradients):
    step = learning_step.one_training_step(toy_model, 1.0, grads=gradients)
    change = learning_step.prompt_change(toy_model, step.params_after, sky(toy_model), 1, 2)
    before = toy_model.run("the sky is")
    after = Model(toy_model.config, step.params_after, toy_model.tokenizer).run("the sky is")
    np.testing.assert_array_equal(change["pattern_before"], before.layers[1].weights[2])
    np.testing.assert_allclose(change["pattern_change"], after.layers[1].weights[2] - before.layers[1].weights[2])
    moved = change["distribution"]
    assert toy_model.tokenizer.token(int(moved["ids"][0])) == "blue"
    expected = 0.5 * np.abs(after.next_token_probs - before.next_token_probs).sum()
    assert moved["total_variation"] == pytest.approx(expected) and expected > 0
    with pytest.raises(ValueError, match="head"):
        learning_step.prompt_change(toy_model, step.params_after, sky(toy_model), 0, toy_model.config.n_head)


def test_snapshot_moves_compare_consecutive_snapshots(toy_model, gradients):
    after = learning_step.one_training_step(toy_model, 1.0, grads=gradients).params_after
    moves = learning_step.snapshot_moves(toy_model.config, toy_model.tokenizer,
                                         [(0, toy_model.params), (5, toy_model.params), (9, after)], sky(toy_model))
    assert [(move["from_step"], move["to_step"]) for move in moves] == [(0, 5), (5, 9)]
    assert moves[0]["total_variation"] == 0.0 and moves[0]["kl"] == 0.0
    change = learning_step.prompt_change(toy_model, after, sky(toy_model), 0, 0)["distribution"]
    assert moves[1]["total_variation"] == pytest.approx(change["total_variation"])
    assert moves[1]["top"] == "blue" and 0.99 < moves[1]["top_probability"] <= 1


def test_bad_optimizer_or_learning_rate_is_a_value_error(toy_model, gradients):
    with pytest.raises(ValueError, match="optimizer"):
        learning_step.one_training_step(toy_model, 0.1, "sgd-momentum", grads=gradients)
    for lr in (-0.1, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="lr"):
            learning_step.one_training_step(toy_model, lr, grads=gradients)


def test_models_that_cannot_be_trained_are_refused_with_the_reason(tmp_path):
    bpe = core.load_checkpoint(small_gpt2(tmp_path / "bpe", tied=False))
    assert "BPE" in learning_step.step_refusal(bpe)
    with pytest.raises(ValueError, match="BPE"):
        learning_step.one_training_step(bpe, 0.1)
    toy = core.load_default()
    config = GPTConfig(vocab_size=toy.config.vocab_size, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    zeros = {name: np.zeros(shape, dtype=np.float32) for name, shape in param_shapes(config).items()}  # not touched
    big = Model(config, zeros, toy.tokenizer)
    with pytest.raises(ValueError, match="parameters"):
        learning_step.one_training_step(big, 0.1)
    tied_config = GPTConfig(vocab_size=toy.config.vocab_size, n_positions=32, n_embd=32, n_layer=1, n_head=2, tied=True)
    tied = Model(tied_config, init_params(tied_config), toy.tokenizer)
    assert "tied" in learning_step.step_refusal(tied)
