"""Tests for core.explain: the dashboard's maths, checked against the attention kernel and by hand."""
from __future__ import annotations

import numpy as np
import pytest

from core import explain
from core.attention import scaled_dot_product_attention


@pytest.fixture
def head():
    """One head's q, k, v [5, 4] in float64."""
    rng = np.random.default_rng(0)
    return tuple(rng.normal(size=(5, 4)) for _ in range(3))


# --- softmax and one head -----------------------------------------------------------------

def test_softmax_stages_match_the_textbook_formula():
    stages = explain.softmax_stages([1.0, 2.0, 3.0])
    expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(stages["weights"], expected)
    np.testing.assert_allclose(stages["shifted"], [-2.0, -1.0, 0.0])
    assert stages["max"].item() == 3.0
    np.testing.assert_allclose(stages["exp"] / stages["sum"], stages["weights"])


def test_softmax_stages_survive_huge_scores_and_hidden_keys():
    stages = explain.softmax_stages([1000.0, 999.0, -np.inf])
    assert np.isfinite(stages["weights"]).all()
    assert stages["weights"][2] == 0.0
    np.testing.assert_allclose(stages["weights"][:2], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])


@pytest.mark.parametrize("bad, error", [
    ([-np.inf, -np.inf], ValueError), ([np.nan, 1.0], ValueError), ([np.inf], ValueError),
    ([], ValueError), (["a", "b"], TypeError),
])
def test_softmax_stages_reject_bad_rows(bad, error):
    with pytest.raises(error):
        explain.softmax_stages(bad)


def _attention_backend_weights(q, k, v, backend):
    return scaled_dot_product_attention(q, k, v, causal=True, return_weights=True, backend=backend)[1]


def test_softmax_stages_of_masked_scores_agree_with_both_backends(head, backend):
    q, k, v = head
    scores = np.where(np.tri(5, dtype=bool), q @ k.T / 2.0, -np.inf)  # d_head 4: scale 1/2
    stages = explain.softmax_stages(scores)
    np.testing.assert_allclose(stages["weights"], _attention_backend_weights(q, k, v, backend), atol=1e-12)
    np.testing.assert_allclose(stages["weights"].sum(axis=1), 1.0)
    assert (stages["exp"][np.triu_indices(5, 1)] == 0).all()


def test_weight_arithmetic_matches_the_kernel(head, backend):
    q, k, v = head
    weights = _attention_backend_weights(q, k, v, backend)
    for query, key in [(0, 0), (3, 1), (4, 4)]:
        worked = explain.weight_arithmetic(q, k, query, key)
        assert worked["visible"]
        assert worked["dot"] == pytest.approx(q[query] @ k[key])
        assert worked["scaled"] == pytest.approx(worked["dot"] / 2.0)
        assert worked["exp"] / worked["row_sum"] == pytest.approx(worked["weight"])
        assert worked["weight"] == pytest.approx(weights[query, key], abs=1e-12)
        np.testing.assert_allclose(worked["products"].sum(), worked["dot"])


def test_weight_arithmetic_without_the_mask_sees_the_future(head):
    q, k, _ = head
    worked = explain.weight_arithmetic(q, k, 1, 3, causal=False, scale=1.0)
    assert worked["visible"] and worked["weight"] > 0 and worked["scaled"] == pytest.approx(q[1] @ k[3])


def test_weight_arithmetic_of_a_future_key_is_zero(head):
    q, k, _ = head
    worked = explain.weight_arithmetic(q, k, 1, 3)
    assert not worked["visible"] and worked["weight"] == 0.0 and worked["exp"] == 0.0


@pytest.mark.parametrize("query, key, error", [(5, 0, ValueError), (0, -1, ValueError), (1.5, 0, TypeError),
                                               (True, 0, TypeError)])
def test_weight_arithmetic_rejects_bad_positions(head, query, key, error):
    q, k, _ = head
    with pytest.raises(error):
        explain.weight_arithmetic(q, k, query, key)


def test_influenced_by_ranks_visible_keys_largest_first():
    weights = np.array([[1.0, 0, 0], [0.3, 0.7, 0], [0.2, 0.2, 0.6]])
    ranking = explain.influenced_by(weights)
    assert ranking[0] == [(0, 1.0)]
    assert [key for key, _ in ranking[1]] == [1, 0]
    assert [key for key, _ in ranking[2]] == [2, 0, 1]  # tie: the earlier token first


# --- PCA ------------------------------------------------------------------------------------

def test_pca_recovers_a_line_and_its_share():
    direction = np.array([3.0, 4.0]) / 5
    points = np.outer(np.arange(5.0), direction) + np.array([1.0, 2.0])
    coords, share = explain.pca_2d(points)
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.abs(np.arange(5.0) - 2), atol=1e-12)
    np.testing.assert_allclose(coords[:, 1], 0, atol=1e-12)
    np.testing.assert_allclose(share, [1.0, 0.0], atol=1e-12)


def test_pca_keeps_distances_when_the_data_is_2d():
    points = np.random.default_rng(1).normal(size=(6, 2))
    coords, share = explain.pca_2d(points)
    distances = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distances(coords), distances(points), atol=1e-12)
    assert share.sum() == pytest.approx(1.0)


def test_pca_of_one_point_is_the_origin():
    coords, share = explain.pca_2d(np.ones((1, 4)))
    np.testing.assert_array_equal(coords, [[0.0, 0.0]])
    np.testing.assert_array_equal(share, [0.0, 0.0])


# --- head summaries, residual, MLP, interventions ------------------------------------------

def test_head_summaries_of_known_patterns():
    length = 4
    previous = np.eye(length, k=-1)
    previous[0, 0] = 1.0
    first = np.zeros((length, length))
    first[:, 0] = 1.0
    uniform = np.tril(np.ones((length, length)))
    uniform /= uniform.sum(axis=1, keepdims=True)
    summary = explain.head_summaries(np.stack([previous, first, uniform]))
    np.testing.assert_allclose(summary["previous"][:2], [1.0, 1 / 3])
    np.testing.assert_allclose(summary["first"][:2], [1 / 3, 1.0])
    np.testing.assert_allclose(summary["entropy"][:2], [0.0, 0.0])
    expected_entropy = np.mean([np.log2(i + 1) for i in range(length)])
    assert summary["entropy"][2] == pytest.approx(expected_entropy)


def test_head_summaries_keep_leading_dims_and_handle_one_token():
    summary = explain.head_summaries(np.ones((2, 3, 1, 1)))
    assert summary["entropy"].shape == (2, 3)
    np.testing.assert_array_equal(summary["previous"], 0.0)
    np.testing.assert_array_equal(summary["first"], 1.0)


def test_residual_norms():
    stream = np.stack([np.full((3, 4), value) for value in (1.0, 2.0, 3.0)])
    np.testing.assert_allclose(explain.residual_norms(stream), [[2.0] * 3, [4.0] * 3, [6.0] * 3])
    with pytest.raises(ValueError):
        explain.residual_norms(stream[0])


def test_top_units_finds_the_strongest():
    activations = np.zeros((3, 10))
    activations[1, 7] = 5.0
    activations[2, 2] = 3.0
    assert list(explain.top_units(activations, 2)) == [7, 2]
    with pytest.raises(ValueError):
        explain.top_units(activations, 0)


def test_distribution_change():
    before = np.array([0.7, 0.2, 0.1, 0.0])
    after = np.array([0.1, 0.2, 0.3, 0.4])
    change = explain.distribution_change(before, after, count=3)
    assert list(change["ids"]) == [0, 3, 2]
    np.testing.assert_allclose(change["after"] - change["before"], [-0.6, 0.4, 0.2])
    assert change["total_variation"] == pytest.approx(0.6)
    assert change["kl"] > 0
    same = explain.distribution_change(before, before)
    assert same["total_variation"] == 0 and same["kl"] == pytest.approx(0)
    with pytest.raises(ValueError):
        explain.distribution_change(before, after[:3])


# --- sampling statistics -------------------------------------------------------------------

def test_entropy_and_kept_count():
    assert explain.entropy_bits([0.5, 0.5, 0.0]) == pytest.approx(1.0)
    assert explain.entropy_bits([1.0, 0.0]) == 0.0
    assert explain.kept_count([0.5, 0.5, 0.0]) == 2


def test_observed_frequencies_approach_the_distribution():
    probs = np.array([0.5, 0.3, 0.2, 0.0])
    samples = np.random.default_rng(2).choice(4, size=20000, p=probs)
    observed = explain.observed_frequencies(samples, 4)
    assert observed.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(observed, probs, atol=0.02)
    assert observed[3] == 0.0
    with pytest.raises(ValueError):
        explain.observed_frequencies(np.array([4]), 4)
    with pytest.raises(ValueError):
        explain.observed_frequencies(np.array([], dtype=int), 4)


def test_mean_surprisal_and_repetition():
    assert explain.mean_surprisal([0.5, 0.25]) == pytest.approx(1.5)
    assert explain.mean_surprisal([1.0]) == 0.0
    with pytest.raises(ValueError):
        explain.mean_surprisal([0.0])
    assert explain.repetition_rate([1, 2, 3]) == 0.0
    assert explain.repetition_rate([1, 1, 1, 1]) == 0.75
    assert explain.repetition_rate([]) == 0.0


def test_pipeline_shapes_follow_the_config():
    class Config:
        n_embd, n_head, d_head, n_layer, vocab_size = 64, 4, 16, 2, 500
    steps = explain.pipeline_shapes(Config, 3)
    shapes = {step: shape for step, _, shape, _ in steps}
    assert [step for step, _, _, in_block in steps if in_block][0] == "ln_1"
    assert shapes["tokens"] == "[3]"
    assert shapes["weights"] == "[4, 3, 3]"
    assert shapes["logits"].endswith("[3, 500]")
    with pytest.raises(ValueError):
        explain.pipeline_shapes(Config, 0)


def test_logit_lens_of_the_last_point_matches_the_model():
    from core.config import GPTConfig
    from core.model import gpt_forward, init_params
    config = GPTConfig(vocab_size=11, n_positions=8, n_embd=8, n_layer=2, n_head=2)
    params = init_params(config, seed=3)
    cache = {}
    logits = gpt_forward(params, config, np.array([1, 2, 3]), cache=cache)
    stream = np.stack([cache["blocks.0.hook_resid_pre"], cache["blocks.0.hook_resid_post"],
                       cache["blocks.1.hook_resid_post"]])
    ids, probs = explain.logit_lens(params, config, stream, count=4)
    assert ids.shape == probs.shape == (3, 4)
    assert ids[-1, 0] == np.argmax(logits[-1])
    expected = np.exp(logits[-1] - logits[-1].max())
    expected /= expected.sum()
    np.testing.assert_allclose(probs[-1], np.sort(expected)[::-1][:4], rtol=1e-5)
    assert (np.diff(probs, axis=1) <= 0).all()


def test_speedups_divide_by_the_baseline_of_the_same_case():
    rows = [{"name": "a", "backend": "numpy", "seconds": 4.0}, {"name": "a", "backend": "c", "seconds": 1.0},
            {"name": "b", "backend": "c", "seconds": 2.0}]
    assert explain.speedups(rows) == [1.0, 4.0, None]
