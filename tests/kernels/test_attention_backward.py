"""core.model.attention.attention_backward: both backends against central finite differences and each other."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.attention import needs_c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.model.attention import attention_backward, scaled_dot_product_attention
from core.native.kernel import available_backends

HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def backward_problems(draw, max_len=6, max_width=6):
    """Random q, k, v, an upstream gradient and forward options (causal, masks, Lq != Lk)."""
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    lq, lk = draw(st.integers(1, max_len)), draw(st.integers(1, max_len))
    d, dv = draw(st.integers(1, max_width)), draw(st.integers(1, max_width))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q = rng.standard_normal((*lead, lq, d))  # [..., Lq, D]
    k = rng.standard_normal((*lead, lk, d))  # [..., Lk, D]
    v = rng.standard_normal((*lead, lk, dv))  # [..., Lk, Dv]
    d_out = rng.standard_normal((*lead, lq, dv))  # [..., Lq, Dv]
    mask_kind = draw(st.sampled_from(["none", "full", "2d", "rows_off"]))
    mask = None
    if mask_kind == "full":
        mask = rng.random((*lead, lq, lk)) < 0.7
    elif mask_kind == "2d":
        mask = rng.random((lq, lk)) < 0.7
    elif mask_kind == "rows_off":
        mask = np.ones((lq, lk), dtype=bool)
        mask[rng.integers(0, lq)] = False
    options = dict(causal=draw(st.booleans()), mask=mask, scale=draw(st.sampled_from([None, 0.37])))
    return q, k, v, d_out, options


def gradients(d_out, q, k, v, backend, **options):
    _, weights = scaled_dot_product_attention(q, k, v, return_weights=True, backend=backend, **options)
    return attention_backward(d_out, q, k, v, weights, scale=options.get("scale"), backend=backend)


def finite_difference_gradients(d_out, q, k, v, step=1e-6, **options):
    """Central differences of sum(out * d_out) with respect to every element of q, k and v (float64)."""
    def objective(q_, k_, v_):
        return float((scaled_dot_product_attention(q_, k_, v_, backend="numpy", **options) * d_out).sum())

    results = []
    for position in range(3):
        inputs = [q.copy(), k.copy(), v.copy()]
        target = inputs[position]
        grad = np.zeros_like(target)
        for index in np.ndindex(target.shape):
            original = target[index]
            target[index] = original + step
            plus = objective(*inputs)
            target[index] = original - step
            minus = objective(*inputs)
            target[index] = original
            grad[index] = (plus - minus) / (2 * step)
        results.append(grad)
    return results


@HYPOTHESIS
@given(problem=backward_problems())
def test_every_backend_matches_finite_differences(problem):
    q, k, v, d_out, options = problem
    expected = finite_difference_gradients(d_out, q, k, v, **options)
    for backend in available_backends():
        for name, got, want in zip("qkv", gradients(d_out, q, k, v, backend, **options), expected):
            assert got.shape == want.shape and got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"d_{name}, {backend}")


@needs_c
@HYPOTHESIS
@given(problem=backward_problems(max_len=13, max_width=19), single=st.booleans())
def test_backends_agree_with_each_other(problem, single):
    q, k, v, d_out, options = problem
    dtype = np.float32 if single else np.float64
    q, k, v, d_out = (array.astype(dtype) for array in (q, k, v, d_out))
    c_grads = gradients(d_out, q, k, v, "c", **options)
    numpy_grads = gradients(d_out, q, k, v, "numpy", **options)
    tolerance = 1e-5 if single else 1e-12
    for name, c_grad, numpy_grad in zip("qkv", c_grads, numpy_grads):
        assert c_grad.dtype == dtype
        np.testing.assert_allclose(c_grad, numpy_grad, rtol=tolerance, atol=tolerance, err_msg=f"d_{name}")


def test_fully_masked_query_gets_zero_gradient_and_no_nan(backend):
    rng = np.random.default_rng(0)
    q, k, v, d_out = (rng.standard_normal((2, 4, 3)) for _ in range(4))
    mask = np.ones((4, 4), dtype=bool)
    mask[2] = False  # query 2 sees nothing
    mask[:, 3] = False  # key 3 is seen by no one
    d_q, d_k, d_v = gradients(d_out, q, k, v, backend, mask=mask)
    assert all(np.isfinite(grad).all() for grad in (d_q, d_k, d_v))
    assert (d_q[:, 2] == 0).all() and (d_k[:, 3] == 0).all() and (d_v[:, 3] == 0).all()


def test_single_key_passes_gradient_straight_to_v(backend):
    # one key: weight 1 whatever the scores, so d_v = sum of d_out and d_q = d_k = 0
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 1, 4))
    v, d_out = rng.standard_normal((3, 1, 2)), rng.standard_normal((3, 5, 2))
    d_q, d_k, d_v = gradients(d_out, q, k, v, backend)
    np.testing.assert_allclose(d_v[:, 0], d_out.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(d_q, 0, atol=1e-12)
    np.testing.assert_allclose(d_k, 0, atol=1e-12)


def test_non_contiguous_inputs(backend):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((3, 12, 16))
    q, k, v, d_out = base[:, ::2, :5], base[:, 1::2, 5:10], base[:, :6, 10:], np.swapaxes(base[:, :6, :6], 1, 2)
    assert not any(array.flags.c_contiguous for array in (q, k, v, d_out))
    contiguous = [np.ascontiguousarray(array) for array in (d_out, q, k, v)]
    for got, want in zip(gradients(d_out, q, k, v, backend, causal=True), gradients(*contiguous, "numpy", causal=True)):
        np.testing.assert_allclose(got, want, atol=1e-12)


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_c_kernel_matches_numpy_and_one_thread_bit_for_bit(monkeypatch, dtype):
    # large enough (B * Lq * Lk * (D + Dv) well past the kernel's threshold) to be split over threads
    rng = np.random.default_rng(3)
    q, k, v, d_out = (rng.standard_normal((4, 6, 48, 40)).astype(dtype) for _ in range(4))
    threaded = gradients(d_out, q, k, v, "c", causal=True)
    monkeypatch.setenv("GLASSBOX_NUM_THREADS", "1")
    single = gradients(d_out, q, k, v, "c", causal=True)
    expected = gradients(d_out, q, k, v, "numpy", causal=True)
    tolerance = 1e-4 if dtype == np.float32 else 1e-11
    for got, one_thread, want in zip(threaded, single, expected):
        np.testing.assert_array_equal(got, one_thread)
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


def test_backward_rejects_mismatched_dtypes(backend):
    q = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="float64"):
        attention_backward(np.zeros((2, 3)), q, q, q, np.zeros((2, 2), np.float32), backend=backend)


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_portable_and_vector_paths_give_the_same_bits(monkeypatch, dtype):
    # both C code paths sum every element in the same order; odd sizes exercise the zero padding
    rng = np.random.default_rng(4)
    q, k, d_out = (rng.standard_normal((3, 2, 13, 11)).astype(dtype) for _ in range(3))
    v = rng.standard_normal((3, 2, 13, 7)).astype(dtype)
    d_out = d_out[..., :7]
    mask = rng.random((13, 13)) < 0.8
    _, weights = scaled_dot_product_attention(q, k, v, causal=True, mask=mask, return_weights=True)
    default = attention_backward(d_out, q, k, v, weights, backend="c")
    monkeypatch.setenv("GLASSBOX_SIMD", "portable")  # (the forward's paths differ in their last bits)
    portable = attention_backward(d_out, q, k, v, weights, backend="c")
    for got, want in zip(default, portable):
        np.testing.assert_array_equal(got, want)
