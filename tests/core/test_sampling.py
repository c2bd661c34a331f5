"""Tests for core.model.sampling: every stage by hand, the edge cases, bad settings, and the
statistics of seeded draws."""
from __future__ import annotations

import numpy as np
import pytest

from core.model.sampling import Sampler, distribution_stages

LOGITS = np.log(np.array([0.1, 0.4, 0.2, 0.3]))  # most likely: 1, 3, 2, 0


def test_raw_and_tempered_stages():
    stages = distribution_stages(LOGITS, temperature=0.5)
    np.testing.assert_allclose(stages["raw"], [0.1, 0.4, 0.2, 0.3])
    squared = np.array([0.01, 0.16, 0.04, 0.09])
    np.testing.assert_allclose(stages["tempered"], squared / squared.sum())
    np.testing.assert_allclose(stages["top_p"], stages["tempered"])  # top-k and top-p off by default


def test_top_k_then_top_p_then_renormalise():
    stages = distribution_stages(LOGITS, top_k=3, top_p=0.7)
    np.testing.assert_allclose(stages["top_k"], [0, 0.4 / 0.9, 0.2 / 0.9, 0.3 / 0.9])
    # after top-k: 0.444, 0.333 reach 0.778 >= 0.7 -> tokens 1 and 3
    np.testing.assert_allclose(stages["top_p"], [0, 0.4 / 0.7, 0, 0.3 / 0.7])


def test_top_p_keeps_the_smallest_set_reaching_p():
    assert np.count_nonzero(distribution_stages(LOGITS, top_p=0.4)["top_p"]) == 1  # 0.4 reaches 0.4
    assert np.count_nonzero(distribution_stages(LOGITS, top_p=0.41)["top_p"]) == 2
    assert np.count_nonzero(distribution_stages(LOGITS, top_p=0.9)["top_p"]) == 3
    assert np.count_nonzero(distribution_stages(LOGITS, top_p=0.95)["top_p"]) == 4


def test_top_p_keeps_at_least_the_most_likely_token():
    kept = distribution_stages(LOGITS, top_p=1e-9)["top_p"]
    np.testing.assert_array_equal(kept, [0, 1, 0, 0])


def test_temperature_zero_is_greedy():
    stages = distribution_stages(LOGITS, temperature=0)
    np.testing.assert_array_equal(stages["tempered"], [0, 1, 0, 0])
    sampler = Sampler(temperature=0, seed=None)
    assert all(sampler.sample(LOGITS) == 1 for _ in range(20))


def test_top_k_larger_than_the_vocabulary_keeps_all():
    np.testing.assert_allclose(distribution_stages(LOGITS, top_k=100)["top_k"], [0.1, 0.4, 0.2, 0.3])


def test_ties_are_broken_by_lower_id():
    flat = np.zeros(5)
    np.testing.assert_array_equal(distribution_stages(flat, top_k=2)["top_k"], [0.5, 0.5, 0, 0, 0])
    np.testing.assert_array_equal(distribution_stages(flat, temperature=0)["tempered"], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(distribution_stages(flat, top_p=0.4)["top_p"], [0.5, 0.5, 0, 0, 0])
    assert Sampler(temperature=0).sample([0.0, 3.0, 3.0]) == 1


def test_tiny_temperatures_and_huge_logits_stay_finite():
    stages = distribution_stages([1e300, -1e300, 0.0], temperature=1e-300)
    np.testing.assert_array_equal(stages["tempered"], [1, 0, 0])
    assert np.isfinite(distribution_stages([1e308, 1e308], temperature=100.0)["raw"]).all()


@pytest.mark.parametrize("settings, error", [
    ({"temperature": -0.1}, ValueError), ({"temperature": float("nan")}, ValueError),
    ({"temperature": float("inf")}, ValueError), ({"top_k": -1}, ValueError), ({"top_k": 2.5}, TypeError),
    ({"top_p": 0.0}, ValueError), ({"top_p": 1.01}, ValueError), ({"top_p": float("nan")}, ValueError),
    ({"temperature": "1"}, TypeError), ({"top_p": None}, TypeError),
])
def test_bad_settings_raise(settings, error):
    with pytest.raises(error):
        distribution_stages(LOGITS, **settings)
    with pytest.raises(error):
        Sampler(**settings)


@pytest.mark.parametrize("logits, error", [
    ([1.0, float("nan")], ValueError), ([float("-inf"), 0.0], ValueError), ([], ValueError),
    ([[1.0, 2.0]], ValueError), (["a", "b"], TypeError),
])
def test_bad_logits_raise(logits, error):
    with pytest.raises(error):
        Sampler().sample(logits)


def test_same_seed_same_draws():
    draws = [Sampler(seed=5).sample(LOGITS) for _ in range(3)]
    assert len(set(draws)) == 1
    first, second = Sampler(seed=5), Sampler(seed=5)
    assert [first.sample(LOGITS) for _ in range(50)] == [second.sample(LOGITS) for _ in range(50)]


def test_draw_frequencies_match_the_distribution():
    sampler = Sampler(temperature=1.0, seed=0)
    draws = np.array([sampler.sample(LOGITS) for _ in range(20_000)])
    frequencies = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(frequencies, [0.1, 0.4, 0.2, 0.3], atol=0.015)


def test_top_k_never_samples_outside_the_k_best():
    logits = np.random.default_rng(0).normal(size=50)
    best = set(np.argsort(-logits)[:5].tolist())
    sampler = Sampler(temperature=2.0, top_k=5, seed=1)
    draws = {sampler.sample(logits) for _ in range(3000)}
    assert draws == best  # all five are reached, nothing else


def test_top_p_never_samples_outside_the_nucleus():
    logits = np.random.default_rng(1).normal(size=50) * 3
    kept = distribution_stages(logits, top_p=0.8)["top_p"]
    sampler = Sampler(top_p=0.8, seed=2)
    draws = np.array([sampler.sample(logits) for _ in range(5000)])
    assert np.all(kept[draws] > 0)
    frequencies = np.bincount(draws, minlength=50) / draws.size
    np.testing.assert_allclose(frequencies, kept, atol=0.02)


def test_combined_stages_sum_to_one():
    logits = np.random.default_rng(2).normal(size=30)
    for stage in distribution_stages(logits, temperature=0.7, top_k=10, top_p=0.5).values():
        assert stage.sum() == pytest.approx(1.0) and np.all(stage >= 0)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize(
    "probs, message",
    [
        ([0.0, 0.0, 0.0], "all zero"),
        ([0.5, np.nan, 0.5], "finite"),
        ([0.5, np.inf, 0.5], "finite"),
        ([0.7, -0.2, 0.5], "negative"),
        ([[0.5, 0.5]], "vector"),
        ([], "vector"),
        (["a", "b"], "numbers"),
    ],
)
def test_choose_rejects_invalid_probabilities(temperature, probs, message):
    with pytest.raises(ValueError, match=message):
        Sampler(temperature=temperature, seed=0).choose(probs)


def test_choose_draws_in_range_from_unnormalised_weights():
    draws = {Sampler(seed=seed).choose(np.array([0.0, 2.0, 0.0, 6.0])) for seed in range(50)}
    assert draws == {1, 3}
