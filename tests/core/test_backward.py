"""core.train.backward: every layer and every parameter of a tiny GPT against central finite differences (float64)."""
from __future__ import annotations

import numpy as np
import pytest

from core.model.config import GPTConfig
from core.model.forward import gpt_forward
from core.model.ops import gelu, layer_norm
from core.model.params import param_shapes
from core.native import parallel
from core.native.kernel import available_backends
from core.train.backward import (
    embedding_backward,
    gelu_backward,
    gpt_backward,
    layer_norm_backward,
    linear_backward,
    lm_head_backward,
    lm_head_weight_gradient,
    softmax_cross_entropy,
)

STEP = 1e-6


def numerical_gradient(objective, array):
    """Central differences of the scalar objective() with respect to every element of `array` (in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + STEP
        plus = objective()
        array[index] = original - STEP
        minus = objective()
        array[index] = original
        grad[index] = (plus - minus) / (2 * STEP)
    return grad


def assert_close(got, want, name=""):
    assert got.shape == want.shape, name
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8, err_msg=name)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_softmax_cross_entropy_value_and_gradient(rng):
    logits = rng.standard_normal((2, 3, 5)) * 3  # [B, L, V]
    targets = rng.integers(0, 5, size=(2, 3))
    loss, d_logits = softmax_cross_entropy(logits, targets)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.mean([log_probs[b, i, targets[b, i]] for b in range(2) for i in range(3)])
    assert loss == pytest.approx(expected, rel=1e-12)
    assert_close(d_logits, numerical_gradient(lambda: softmax_cross_entropy(logits, targets)[0], logits))


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4]])
    loss, d_logits = softmax_cross_entropy(logits, np.array([1]))
    assert loss == pytest.approx(1e4) and np.isfinite(d_logits).all()


def test_linear_backward(rng):
    x, weight, bias = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    upstream = rng.standard_normal((2, 3, 5))

    def objective():
        return float(((x @ weight + bias) * upstream).sum())

    d_x, d_weight, d_bias = linear_backward(upstream, x, weight)
    assert_close(d_x, numerical_gradient(objective, x), "x")
    assert_close(d_weight, numerical_gradient(objective, weight), "weight")
    assert_close(d_bias, numerical_gradient(objective, bias), "bias")


def test_layer_norm_backward(rng):
    x = rng.standard_normal((2, 3, 6)) * 2 + 1
    weight, bias = 1 + 0.3 * rng.standard_normal(6), rng.standard_normal(6)
    upstream = rng.standard_normal((2, 3, 6))

    def objective():
        return float((layer_norm(x, weight, bias, 1e-5)[0] * upstream).sum())

    d_x, d_weight, d_bias = layer_norm_backward(upstream, x, weight, 1e-5)
    assert_close(d_x, numerical_gradient(objective, x), "x")
    assert_close(d_weight, numerical_gradient(objective, weight), "weight")
    assert_close(d_bias, numerical_gradient(objective, bias), "bias")


def test_gelu_backward_including_large_and_zero_inputs(rng):
    x = np.concatenate([rng.standard_normal(20) * 3, [0.0, -12.0, 12.0]])
    upstream = rng.standard_normal(x.shape)
    expected = numerical_gradient(lambda: float((gelu(x) * upstream).sum()), x)
    assert_close(gelu_backward(upstream, x), expected)
    np.testing.assert_allclose(gelu_backward(np.ones(3), np.array([0.0, -12.0, 12.0])), [0.5, 0.0, 1.0], atol=1e-12)


def test_embedding_backward_adds_up_repeated_ids(rng):
    table = rng.standard_normal((7, 3))
    ids = np.array([[1, 4, 1], [6, 1, 0]])
    upstream = rng.standard_normal((2, 3, 3))
    d_table = embedding_backward(upstream, ids, 7)
    assert_close(d_table, numerical_gradient(lambda: float((table[ids] * upstream).sum()), table))
    assert (d_table[[2, 3, 5]] == 0).all()


def test_lm_head_backward(rng):
    x, lm_head = rng.standard_normal((2, 3, 4)), rng.standard_normal((6, 4))
    upstream = rng.standard_normal((2, 3, 6))

    def objective():
        return float((x @ lm_head.T * upstream).sum())

    d_x, d_lm_head = lm_head_backward(upstream, x, lm_head)
    assert_close(d_x, numerical_gradient(objective, x), "x")
    assert_close(d_lm_head, numerical_gradient(objective, lm_head), "lm_head")
    np.testing.assert_array_equal(lm_head_weight_gradient(upstream, x), d_lm_head)


# --- the whole model -------------------------------------------------------------------------

TINY = GPTConfig(vocab_size=11, n_positions=6, n_embd=8, n_layer=2, n_head=2)


def tiny_params(seed=0):
    """float64 parameters far from GPT-2's small init, so every path carries real gradient."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(TINY).items():
        if ".ln_" in name and name.endswith("weight"):
            params[name] = 1.0 + 0.2 * rng.standard_normal(shape)
        else:
            params[name] = 0.5 * rng.standard_normal(shape)
    return params


def model_loss(params, ids, targets, dropout):
    """The training loss; dropout masks drawn from a fixed seed so every call uses the same ones."""
    logits = gpt_forward(params, TINY, ids, dropout=dropout, rng=np.random.default_rng(7))
    return softmax_cross_entropy(logits, targets)[0]


def analytic_gradients(params, ids, targets, dropout):
    cache = {}
    logits = gpt_forward(params, TINY, ids, cache=cache, dropout=dropout, rng=np.random.default_rng(7))
    _, d_logits = softmax_cross_entropy(logits, targets)
    return gpt_backward(params, TINY, cache, d_logits)


def tiny_batch(seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, TINY.vocab_size, size=(2, 5))  # [B, L], L < n_positions
    ids[0, :2] = 3  # a repeated token: its wte row collects two gradients
    return ids, rng.integers(0, TINY.vocab_size, size=(2, 5))


def test_every_element_of_every_parameter_matches_finite_differences():
    params = tiny_params()
    ids, targets = tiny_batch(1)
    grads = analytic_gradients(params, ids, targets, 0.0)
    assert grads.keys() == params.keys()
    for name, value in params.items():
        expected = numerical_gradient(lambda: model_loss(params, ids, targets, 0.0), value)
        assert grads[name].dtype == np.float64
        assert_close(grads[name], expected, name)
    assert (grads["transformer.wpe.weight"][5:] == 0).all()  # position 5 was never used


def test_every_parameter_with_dropout_matches_finite_differences():
    # dropout masks come from the cache; a few elements of each parameter (each takes 2 forwards)
    params = tiny_params(5)
    ids, targets = tiny_batch(6)
    grads = analytic_gradients(params, ids, targets, 0.3)
    pick = np.random.default_rng(8)
    for name, value in params.items():
        flat = value.reshape(-1)  # a view: perturbing it perturbs the parameter
        chosen = pick.choice(flat.size, size=min(6, flat.size), replace=False)
        for index in chosen:
            expected = numerical_gradient(lambda: model_loss(params, ids, targets, 0.3), flat[index:index + 1])
            np.testing.assert_allclose(grads[name].reshape(-1)[index], expected[0], rtol=1e-5, atol=1e-8,
                                       err_msg=f"{name}[{index}]")


def test_unbatched_ids_give_the_same_gradients_as_a_batch_of_one():
    params = tiny_params(2)
    ids, targets = np.array([1, 5, 2, 9]), np.array([5, 2, 9, 0])
    single = analytic_gradients(params, ids, targets, 0.0)
    batched = analytic_gradients(params, ids[None], targets[None], 0.0)
    for name in params:
        np.testing.assert_allclose(single[name], batched[name], rtol=1e-12, atol=1e-15, err_msg=name)


@pytest.mark.skipif("c" not in available_backends(), reason="C kernel not built")
def test_float32_gradients_agree_between_attention_backends(monkeypatch):
    params = {name: value.astype(np.float32) for name, value in tiny_params(3).items()}
    rng = np.random.default_rng(4)
    ids, targets = rng.integers(0, 11, size=(3, 6)), rng.integers(0, 11, size=(3, 6))
    results = {}
    for backend in ("c", "numpy"):
        monkeypatch.setenv("GLASSBOX_BACKEND", backend)
        results[backend] = analytic_gradients(params, ids, targets, 0.1)
    for name in params:
        assert results["c"][name].dtype == np.float32
        np.testing.assert_allclose(results["c"][name], results["numpy"][name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_gpt_backward_refuses_a_foreign_cache_or_wrong_gradient_shape():
    params = tiny_params()
    with pytest.raises(ValueError, match="cache lacks"):
        gpt_backward(params, TINY, {}, np.zeros((5, 11)))
    cache = {}
    gpt_forward(params, TINY, np.array([1, 2, 3]), cache=cache)
    with pytest.raises(ValueError, match=r"\(3, 11\)"):
        gpt_backward(params, TINY, cache, np.zeros((4, 11)))


def test_float32_gradients_are_the_same_bytes_with_products_on_two_cores_or_one(monkeypatch):
    # each linear layer's d_x and d_weight run at once (core.native.parallel.beside): timing must not change a bit
    params = {name: value.astype(np.float32) for name, value in tiny_params(3).items()}
    rng = np.random.default_rng(9)
    ids, targets = rng.integers(0, 11, size=(3, 6)), rng.integers(0, 11, size=(3, 6))
    two_cores = analytic_gradients(params, ids, targets, 0.1)
    monkeypatch.setattr(parallel, "cores", lambda: 1)  # beside() then runs the product in the caller
    one_core = analytic_gradients(params, ids, targets, 0.1)
    for name in params:
        np.testing.assert_array_equal(two_cores[name], one_core[name], err_msg=name)
