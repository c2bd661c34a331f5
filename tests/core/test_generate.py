"""Tests for Model.generate: KV-cache decoding equals full recompute, stopping rules, the
per-step report, reproducibility and bad arguments."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.models import model_that_always_says, random_model

from core.model.sampling import Sampler


@pytest.fixture(scope="module")
def model():
    return random_model(seed=1, dtype=np.float64)


@pytest.mark.parametrize("sampler", [None, Sampler(temperature=1.5, seed=3), Sampler(top_k=5, top_p=0.8, seed=4)])
def test_cached_logits_equal_a_full_rerun(model, sampler):
    generation = model.generate("what colour is the sky ?", 12, sampler)
    ids = list(generation.prompt_ids)
    for step in generation.steps:
        full = model.forward(np.array(ids))[-1]  # the whole sequence again, no cache
        np.testing.assert_allclose(step.logits, full, rtol=0, atol=1e-10)
        ids.append(step.token_id)


def test_each_step_reports_what_the_new_query_saw(model):
    generation = model.generate("the sky is", 4, Sampler(seed=0))
    config = model.config
    for number, step in enumerate(generation.steps):
        seen = len(generation.prompt_ids) + number  # tokens in the cache when this step's logits were made
        assert step.distribution.shape == (config.vocab_size,) and step.distribution.sum() == pytest.approx(1)
        assert step.probability == step.distribution[step.token_id] > 0
        assert step.token == model.tokenizer.tokens[step.token_id]
        assert len(step.queries) == len(step.keys) == len(step.weights) == config.n_layer
        for query, keys, weights in zip(step.queries, step.keys, step.weights):
            assert query.shape == (config.n_head, config.d_head)
            assert keys.shape == (config.n_head, seen, config.d_head)
            assert weights.shape == (config.n_head, seen) and np.allclose(weights.sum(-1), 1)
    # the last step's query and keys are those of a full trace over the same tokens
    tokens = generation.prompt_ids + [step.token_id for step in generation.steps[:-1]]
    trace = model.run(tokens)
    last = generation.steps[-1]
    for layer, layer_trace in enumerate(trace.layers):
        np.testing.assert_allclose(last.queries[layer], layer_trace.q[:, -1], atol=1e-10)
        np.testing.assert_allclose(last.keys[layer], layer_trace.k, atol=1e-10)
        np.testing.assert_allclose(last.weights[layer], layer_trace.weights[:, -1], atol=1e-10)


def test_greedy_by_default_and_seeded_sampling_repeats(model):
    greedy = model.generate("the sky is", 6)
    assert all(step.probability == 1.0 for step in greedy.steps)
    assert all(step.token_id == int(np.argmax(step.logits)) for step in greedy.steps)
    first = model.generate("the sky is", 8, Sampler(temperature=2.0, seed=11))
    again = model.generate("the sky is", 8, Sampler(temperature=2.0, seed=11))
    assert first.text == again.text and first.text != model.generate("the sky is", 8, Sampler(2.0, seed=12)).text


def test_stops_after_max_new_tokens(model):
    generation = model_that_always_says("blue").generate("the sky is", 3)
    assert generation.stop_reason == "max_new_tokens"
    assert generation.new_tokens == ["blue"] * 3 and generation.text == "the sky is blue blue blue"


def test_stops_at_end_of_text():
    generation = model_that_always_says("<|endoftext|>").generate("the sky is", 10)
    assert generation.stop_reason == "end_of_text" and len(generation.steps) == 1
    assert generation.steps[0].token == "<|endoftext|>" and generation.new_tokens == []
    assert generation.text == "the sky is"


def test_stops_when_the_context_is_full():
    model = model_that_always_says("blue")
    prompt = " ".join(["the"] * 30)
    generation = model.generate(prompt, 10)
    # 30 prompt tokens: the 31st and 32nd are fed back, the 33rd is predicted from a full context
    assert generation.stop_reason == "context_full" and len(generation.steps) == 3


def test_a_too_long_prompt_is_truncated_with_a_notice():
    model = model_that_always_says("blue")
    generation = model.generate(" ".join(["the"] * 40), 5)
    assert len(generation.prompt_ids) == 32 and "40 tokens" in generation.notices[0]
    assert generation.stop_reason == "context_full" and len(generation.steps) == 1


def test_unknown_words_are_reported(model):
    assert model.generate("the zebra is", 1).notices == ["unknown words shown as <unk>: zebra"]


@pytest.mark.parametrize("arguments, error", [
    (("the sky is", 0), ValueError), (("the sky is", -3), ValueError), (("the sky is", "5"), TypeError),
    (("the sky is", 2.0), TypeError), (("the sky is", 5, "greedy"), TypeError), (("", 5), ValueError),
    (("qqq", 5), ValueError),
])
def test_bad_arguments_are_clear_errors(model, arguments, error):
    with pytest.raises(error):
        model.generate(*arguments)
