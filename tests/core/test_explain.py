"""Tests for core.explain.heads, .stream, .sampling_lab and .pipeline: the dashboard's maths, checked
against the attention kernel and by hand."""
from __future__ import annotations

import numpy as np
import pytest

from core.explain import heads, pipeline, sampling_lab
from core.explain import stream as explain_stream
from core.model.attention import scaled_dot_product_attention


@pytest.fixture
def head():
    """One head's q, k, v [5, 4] in float64."""
    rng = np.random.default_rng(0)
    return tuple(rng.normal(size=(5, 4)) for _ in range(3))


# --- softmax and one head -----------------------------------------------------------------

def test_softmax_stages_match_the_textbook_formula():
    stages = heads.softmax_stages([1.0, 2.0, 3.0])
    expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(stages["weights"], expected)
    np.testing.assert_allclose(stages["shifted"], [-2.0, -1.0, 0.0])
    assert stages["max"].item() == 3.0
    np.testing.assert_allclose(stages["exp"] / stages["sum"], stages["weights"])


def test_softmax_stages_survive_huge_scores_and_hidden_keys():
    stages = heads.softmax_stages([1000.0, 999.0, -np.inf])
    assert np.isfinite(stages["weights"]).all()
    assert stages["weights"][2] == 0.0
    np.testing.assert_allclose(stages["weights"][:2], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])


@pytest.mark.parametrize("bad, error", [
    ([-np.inf, -np.inf], ValueError), ([np.nan, 1.0], ValueError), ([np.inf], ValueError),
    ([], ValueError), (["a", "b"], TypeError),
])
def test_softmax_stages_reject_bad_rows(bad, error):
    with pytest.raises(error):
        heads.softmax_stages(bad)


def _attention_backend_weights(q, k, v, backend):
    return scaled_dot_product_attention(q, k, v, causal=True, return_weights=True, backend=backend)[1]


def test_softmax_stages_of_masked_scores_agree_with_both_backends(head, backend):
    q, k, v = head
    scores = np.where(np.tri(5, dtype=bool), q @ k.T / 2.0, -np.inf)  # d_head 4: scale 1/2
    stages = heads.softmax_stages(scores)
    np.testing.assert_allclose(stages["weights"], _attention_backend_weights(q, k, v, backend), atol=1e-12)
    np.testing.assert_allclose(stages["weights"].sum(axis=1), 1.0)
    assert (stages["exp"][np.triu_indices(5, 1)] == 0).all()


def test_weight_arithmetic_matches_the_kernel(head, backend):
    q, k, v = head
    weights = _attention_backend_weights(q, k, v, backend)
    for query, key in [(0, 0), (3, 1), (4, 4)]:
        worked = heads.weight_arithmetic(q, k, query, key)
        assert worked["visible"]
        assert worked["dot"] == pytest.approx(q[query] @ k[key])
        assert worked["scaled"] == pytest.approx(worked["dot"] / 2.0)
        assert worked["exp"] / worked["row_sum"] == pytest.approx(worked["weight"])
        assert worked["weight"] == pytest.approx(weights[query, key], abs=1e-12)
        np.testing.assert_allclose(worked["products"].sum(), worked["dot"])


def test_weight_arithmetic_without_the_mask_sees_the_future(head):
    q, k, _ = head
    worked = heads.weight_arithmetic(q, k, 1, 3, causal=False, scale=1.0)
    assert worked["visible"] and worked["weight"] > 0 and worked["scaled"] == pytest.approx(q[1] @ k[3])


def test_weight_arithmetic_of_a_future_key_is_zero(head):
    q, k, _ = head
    worked = heads.weight_arithmetic(q, k, 1, 3)
    assert not worked["visible"] and worked["weight"] == 0.0 and worked["exp"] == 0.0


@pytest.mark.parametrize("query, key, error", [(5, 0, ValueError), (0, -1, ValueError), (1.5, 0, TypeError),
                                               (True, 0, TypeError)])
def test_weight_arithmetic_rejects_bad_positions(head, query, key, error):
    q, k, _ = head
    with pytest.raises(error):
        heads.weight_arithmetic(q, k, query, key)


def test_influenced_by_ranks_visible_keys_largest_first():
    weights = np.array([[1.0, 0, 0], [0.3, 0.7, 0], [0.2, 0.2, 0.6]])
    ranking = heads.influenced_by(weights)
    assert ranking[0] == [(0, 1.0)]
    assert [key for key, _ in ranking[1]] == [1, 0]
    assert [key for key, _ in ranking[2]] == [2, 0, 1]  # tie: the earlier token first


# --- PCA ------------------------------------------------------------------------------------

def test_pca_recovers_a_line_and_its_share():
    direction = np.array([3.0, 4.0]) / 5
    points = np.outer(np.arange(5.0), direction) + np.array([1.0, 2.0])
    coords, share = heads.pca_2d(points)
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.abs(np.arange(5.0) - 2), atol=1e-12)
    np.testing.assert_allclose(coords[:, 1], 0, atol=1e-12)
    np.testing.assert_allclose(share, [1.0, 0.0], atol=1e-12)


def test_pca_keeps_distances_when_the_data_is_2d():
    points = np.random.default_rng(1).normal(size=(6, 2))
    coords, share = heads.pca_2d(points)
    distances = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distances(coords), distances(points), atol=1e-12)
    assert share.sum() == pytest.approx(1.0)


def test_pca_of_one_point_is_the_origin():
    coords, share = heads.pca_2d(np.ones((1, 4)))
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
    summary = heads.head_summaries(np.stack([previous, first, uniform]))
    np.testing.assert_allclose(summary["previous"][:2], [1.0, 1 / 3])
    np.testing.assert_allclose(summary["first"][:2], [1 / 3, 1.0])
    np.testing.assert_allclose(summary["entropy"][:2], [0.0, 0.0])
    expected_entropy = np.mean([np.log2(i + 1) for i in range(1, length)])  # rows 1..L-1, like the others
    assert summary["entropy"][2] == pytest.approx(expected_entropy)
    assert summary["first"][2] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, length)]))
    assert not np.signbit(summary["entropy"]).any()  # 0.00, never -0.00


def test_head_summaries_average_the_same_rows_for_every_number():
    pattern = np.eye(3)  # every token looks at itself: row 0 has entropy 0 and all its weight on token 0
    pattern[2] = [0.5, 0.5, 0.0]
    summary = heads.head_summaries(pattern)
    assert summary["entropy"] == pytest.approx(0.5)  # rows 1 and 2: 0 and 1 bit
    assert summary["first"] == pytest.approx(0.25)  # rows 1 and 2: 0 and 0.5 (row 0's 1.0 left out)
    assert summary["previous"] == pytest.approx(0.25)
    assert "rows 1 to L-1" in heads.SUMMARY_ROWS


def test_head_summaries_keep_leading_dims_and_handle_one_token():
    summary = heads.head_summaries(np.ones((2, 3, 1, 1)))
    assert summary["entropy"].shape == (2, 3)
    np.testing.assert_array_equal(summary["previous"], 0.0)
    np.testing.assert_array_equal(summary["first"], 1.0)


def test_residual_norms():
    stream = np.stack([np.full((3, 4), value) for value in (1.0, 2.0, 3.0)])
    np.testing.assert_allclose(explain_stream.residual_norms(stream), [[2.0] * 3, [4.0] * 3, [6.0] * 3])
    with pytest.raises(ValueError):
        explain_stream.residual_norms(stream[0])


def test_top_units_finds_the_strongest():
    activations = np.zeros((3, 10))
    activations[1, 7] = 5.0
    activations[2, 2] = 3.0
    assert list(explain_stream.top_units(activations, 2)) == [7, 2]
    with pytest.raises(ValueError):
        explain_stream.top_units(activations, 0)


def test_distribution_change():
    before = np.array([0.7, 0.2, 0.1, 0.0])
    after = np.array([0.1, 0.2, 0.3, 0.4])
    change = explain_stream.distribution_change(before, after, count=3)
    assert list(change["ids"]) == [0, 3, 2]
    np.testing.assert_allclose(change["after"] - change["before"], [-0.6, 0.4, 0.2])
    assert change["total_variation"] == pytest.approx(0.6)
    assert change["kl"] > 0
    same = explain_stream.distribution_change(before, before)
    assert same["total_variation"] == 0 and same["kl"] == pytest.approx(0)
    with pytest.raises(ValueError):
        explain_stream.distribution_change(before, after[:3])


# --- sampling statistics -------------------------------------------------------------------

def test_entropy_and_kept_count():
    assert sampling_lab.entropy_bits([0.5, 0.5, 0.0]) == pytest.approx(1.0)
    assert sampling_lab.entropy_bits([1.0, 0.0]) == 0.0
    assert f"{sampling_lab.entropy_bits([1.0, 0.0]):.2f}" == "0.00"  # not "-0.00"
    assert sampling_lab.kept_count([0.5, 0.5, 0.0]) == 2


def test_observed_frequencies_approach_the_distribution():
    probs = np.array([0.5, 0.3, 0.2, 0.0])
    samples = np.random.default_rng(2).choice(4, size=20000, p=probs)
    observed = sampling_lab.observed_frequencies(samples, 4)
    assert observed.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(observed, probs, atol=0.02)
    assert observed[3] == 0.0
    with pytest.raises(ValueError):
        sampling_lab.observed_frequencies(np.array([4]), 4)
    with pytest.raises(ValueError):
        sampling_lab.observed_frequencies(np.array([], dtype=int), 4)


def test_mean_surprisal_and_repetition():
    assert sampling_lab.mean_surprisal([0.5, 0.25]) == pytest.approx(1.5)
    assert sampling_lab.mean_surprisal([1.0]) == 0.0
    with pytest.raises(ValueError):
        sampling_lab.mean_surprisal([0.0])
    assert sampling_lab.repetition_rate([1, 2, 3]) == 0.0
    assert sampling_lab.repetition_rate([1, 1, 1, 1]) == 0.75
    assert sampling_lab.repetition_rate([]) == 0.0


def test_pipeline_shapes_follow_the_config():
    class Config:
        n_embd, n_head, d_head, d_mlp, n_layer, vocab_size = 64, 4, 16, 256, 2, 500
    steps = pipeline.pipeline_shapes(Config, 3)
    shapes = {step: shape for step, _, shape, _ in steps}
    assert [step for step, _, _, in_block in steps if in_block][0] == "ln_1"
    assert shapes["tokens"] == "[3]"
    assert shapes["weights"] == "[4, 3, 3]"
    assert shapes["logits"].endswith("[3, 500]")
    with pytest.raises(ValueError):
        pipeline.pipeline_shapes(Config, 0)


def test_speedups_live_in_bench_only():
    assert not any(hasattr(module, "speedups") for module in (heads, explain_stream, sampling_lab, pipeline))  # core.bench.attention.add_speedups is the one place


def lens_setup(vocab_size=3000, seed=4):
    from core.model.config import GPTConfig
    from core.model.forward import gpt_forward
    from core.model.params import init_params
    config = GPTConfig(vocab_size=vocab_size, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    params = {name: value * 6 if name == "lm_head.weight" else value
              for name, value in init_params(config, seed=seed).items()}
    cache = {}
    logits = gpt_forward(params, config, np.array([5, 9, 2, 7, 1]), cache=cache)  # [5, V]
    stream = np.stack([cache["blocks.0.hook_resid_pre"], cache["blocks.0.hook_resid_post"],
                       cache["blocks.1.hook_resid_post"]])  # [3, 5, C]
    return config, params, stream, logits


def test_lens_table_matches_the_full_softmax_at_every_shown_position():
    from core.model.sampling import ranking, softmax
    config, params, stream, logits = lens_setup()
    ids, probs = explain_stream.lens_table(params, config, stream, [1, 4], count=3)
    assert ids.shape == probs.shape == (3, 2, 3)
    for column, position in enumerate([1, 4]):
        expected = softmax(logits[position].astype(np.float64))  # the last point is the model's own output
        np.testing.assert_array_equal(ids[-1, column], ranking(expected)[:3])
        np.testing.assert_allclose(probs[-1, column], expected[ranking(expected)[:3]], rtol=1e-4)
    assert (np.diff(probs, axis=2) <= 0).all()


def test_lens_table_in_chunks_equals_one_chunk(monkeypatch):
    config, params, stream, _ = lens_setup()
    whole = explain_stream.lens_table(params, config, stream, range(5), count=4)
    monkeypatch.setattr(explain_stream, "LENS_CHUNK", config.vocab_size * 2)  # two rows at a time
    chunked = explain_stream.lens_table(params, config, stream, range(5), count=4)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_allclose(whole[1], chunked[1], rtol=1e-5)  # float32 products, batched differently


def test_lens_table_rejects_bad_positions_and_counts():
    config, params, stream, _ = lens_setup(vocab_size=50)
    with pytest.raises(ValueError, match="position"):
        explain_stream.lens_table(params, config, stream, [5])
    with pytest.raises(ValueError):
        explain_stream.lens_table(params, config, stream, [])
    with pytest.raises(ValueError, match="count"):
        explain_stream.lens_table(params, config, stream, [0], count=0)


def test_top_probabilities_break_ties_by_id():
    logits = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]])
    ids, probs = explain_stream.top_probabilities(logits, 2)
    assert ids.tolist() == [[1, 2]]
    np.testing.assert_allclose(probs.sum() + np.exp(3) / np.exp(logits).sum() + np.exp(1) / np.exp(logits).sum()
                               + 1 / np.exp(logits).sum(), 1.0)


def test_pool_patterns_keep_rows_summing_to_one():
    pattern = np.tril(np.random.default_rng(0).random((2, 3, 10, 10)))
    pattern /= pattern.sum(axis=-1, keepdims=True)
    pooled, edges = heads.pool_patterns(pattern, 4)
    assert pooled.shape == (2, 3, 4, 4) and edges[0] == 0 and edges[-1] == 10 and len(edges) == 5
    np.testing.assert_allclose(pooled.sum(axis=-1), 1.0)
    assert pooled[0, 0, 0, 0] == pytest.approx(pattern[0, 0, edges[0]:edges[1], edges[0]:edges[1]].sum()
                                               / (edges[1] - edges[0]))
    same, edges = heads.pool_patterns(pattern, 40)
    np.testing.assert_array_equal(same, pattern)
    assert list(edges) == list(range(11))


def test_what_if_notes_say_when_a_switch_cannot_act():
    from core.model.interventions import Interventions
    assert explain_stream.what_if_notes(Interventions(), 5, 2) == []
    one_token = explain_stream.what_if_notes(Interventions(causal=False, scale_scores=False), 1, 2)
    assert len(one_token) == 1 and "one-token prompt" in one_token[0]
    no_mask = explain_stream.what_if_notes(Interventions(causal=False), 4, 2)
    assert len(no_mask) == 1 and "bottom row" in no_mask[0] and "cannot change" not in no_mask[0]
    assert "prediction cannot change" in explain_stream.what_if_notes(Interventions(causal=False), 4, 1)[0]
    assert explain_stream.what_if_notes(Interventions(zero_heads={(0, 1)}), 1, 2) == []


def test_lens_table_of_a_tied_model_reads_the_embedding_as_its_head():
    from core.model.config import GPTConfig
    from core.model.forward import gpt_forward
    from core.model.params import init_params
    from core.model.sampling import ranking, softmax
    config = GPTConfig(vocab_size=40, n_positions=8, n_embd=8, n_layer=1, n_head=2, tied=True)
    params = init_params(config, seed=1)
    assert "lm_head.weight" not in params
    cache = {}
    logits = gpt_forward(params, config, np.array([1, 2]), cache=cache)
    stream = np.stack([cache["blocks.0.hook_resid_pre"], cache["blocks.0.hook_resid_post"]])
    ids, probs = explain_stream.lens_table(params, config, stream, [1], count=2)
    expected = softmax(logits[1].astype(np.float64))
    np.testing.assert_array_equal(ids[-1, 0], ranking(expected)[:2])
    np.testing.assert_allclose(probs[-1, 0], expected[ranking(expected)[:2]], rtol=1e-4)
