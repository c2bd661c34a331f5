"""Grouped-query attention (Llama, Qwen, Mistral): k and v with Hkv heads, q with H = group * Hkv
heads, query head h reading key/value head h // group. Both backends must equal attention on k and v
repeated along the head axis, without making that copy."""
from __future__ import annotations

import functools
import tracemalloc

import numpy as np
import pytest
from helpers.attention import TOLERANCE, needs_c, reference_attention

from core.model.attention import attention_backward, scaled_dot_product_attention
from core.native import kernel as native_kernel

# (H, Hkv): groups of 1, 2 and 4, and multi-query attention (one key/value head for all)
HEADS = {"group1": (3, 3), "group2": (4, 2), "group4": (8, 2), "multi-query": (4, 1)}
# (Lq, Lk) per kernel path (kernels/attention.c: fewer than 16 query rows take the row path). 131 keys
# cross every code path's key block (AVX-512 128, AVX2 64, portable 48: a partial block, then whole
# ones); 100 query rows make three tile tasks per head (BLOCK_Q 48, cut as 3 x 34 rows).
SHAPES = {"decode": (1, 131), "rows": (5, 70), "tile": (37, 131), "tile-square": (100, 100)}
MASKS = ("none", "shared", "per-query-head")
D, DV = 13, 9  # odd widths: vector loops and their scalar tails


def grouped_problem(heads, shape, dtype, mask_kind="none", batch=2, seed=0):
    """q [B, H, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv] and a boolean mask (or None)."""
    (h, h_kv), (lq, lk) = HEADS[heads], SHAPES[shape]
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, h, lq, D)).astype(dtype)
    k = rng.standard_normal((batch, h_kv, lk, D)).astype(dtype)
    v = rng.standard_normal((batch, h_kv, lk, DV)).astype(dtype)
    mask = None
    if mask_kind == "shared":  # [B, 1, Lq, Lk]: one mask per sequence, broadcast over the heads
        mask = rng.random((batch, 1, lq, lk)) < 0.8
    elif mask_kind == "per-query-head":  # [B, H, Lq, Lk]: indexed by the query head, not the key/value head
        mask = rng.random((batch, h, lq, lk)) < 0.8
        mask[:, -1, 0] = False  # a row that sees no key
    return q, k, v, mask


def repeated(array, group):
    """k or v [..., Hkv, L, .] with each head repeated `group` times: [..., H, L, .] (a copy)."""
    return np.repeat(array, group, axis=-3)


@functools.lru_cache(maxsize=None)
def expected_attention(heads, shape, dtype, mask_kind, causal):
    """The float64 reference on k and v repeated along the head axis: (out, weights). Cached: both
    backends compare against one computation of the plain (slow) reference."""
    q, k, v, mask = grouped_problem(heads, shape, dtype, mask_kind)
    group = q.shape[-3] // k.shape[-3]
    return reference_attention(q, repeated(k, group), repeated(v, group), causal=causal, mask=mask)


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("heads", HEADS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grouped_attention_equals_the_reference_on_repeated_heads(backend, dtype, causal, heads, shape, mask_kind):
    q, k, v, mask = grouped_problem(heads, shape, dtype, mask_kind)
    expected_out, expected_weights = expected_attention(heads, shape, dtype, mask_kind, causal)
    out, weights = scaled_dot_product_attention(q, k, v, causal=causal, mask=mask, return_weights=True, backend=backend)
    without_weights = scaled_dot_product_attention(q, k, v, causal=causal, mask=mask, backend=backend)
    # the tolerances of helpers.attention.assert_matches_reference, which cannot take grouped k and v
    tolerance = TOLERANCE[np.dtype(dtype)] * 10
    magnitude = max(1.0, float(np.abs(v).max()))
    assert out.shape == q.shape[:-1] + (DV,) and weights.shape == q.shape[:-1] + (k.shape[-2],)
    assert out.dtype == weights.dtype == dtype
    np.testing.assert_allclose(weights, expected_weights, rtol=0, atol=tolerance)
    np.testing.assert_allclose(out, expected_out, rtol=0, atol=tolerance * magnitude)
    np.testing.assert_allclose(without_weights, expected_out, rtol=0, atol=tolerance * magnitude)


@needs_c
@pytest.mark.parametrize("return_weights", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("heads", HEADS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_grouped_heads_are_exactly_repeated_heads_and_match_numpy(simd, dtype, causal, heads, shape, return_weights):
    # one row's arithmetic is the same whichever buffer its keys come from: grouped k and v give
    # the very bits of k and v repeated, on every code path (row, tile, tile with weights)
    q, k, v, mask = grouped_problem(heads, shape, dtype, "per-query-head", seed=1)
    group = q.shape[-3] // k.shape[-3]
    options = dict(causal=causal, mask=mask, return_weights=return_weights)
    grouped = scaled_dot_product_attention(q, k, v, backend="c", **options)
    copied = scaled_dot_product_attention(q, repeated(k, group), repeated(v, group), backend="c", **options)
    numpy = scaled_dot_product_attention(q, k, v, backend="numpy", **options)
    for got, same, close in zip(*(result if return_weights else (result,) for result in (grouped, copied, numpy))):
        np.testing.assert_array_equal(got, same)
        np.testing.assert_allclose(got, close, rtol=0, atol=TOLERANCE[np.dtype(dtype)] * 100)


@pytest.mark.parametrize("causal", [False, True])
def test_more_lead_dims_and_threads(backend, causal):
    # lead (2, 3, H): the flat problem index crosses the outer dims too; 8 x 6 heads of 100 x 100
    # are enough work for the kernel's threads (kernels/attention.c: MIN_FLOPS_PER_THREAD)
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 3, 8, 100, 32)).astype(np.float32)
    k = rng.standard_normal((2, 3, 2, 100, 32)).astype(np.float32)
    v = rng.standard_normal((2, 3, 2, 100, 16)).astype(np.float32)
    mask = rng.random((3, 1, 100, 100)) < 0.9  # [3, 1, Lq, Lk]: broadcast over the first dim and the heads
    out, weights = scaled_dot_product_attention(q, k, v, causal=causal, mask=mask, return_weights=True, backend=backend)
    without_weights = scaled_dot_product_attention(q, k, v, causal=causal, mask=mask, backend=backend)
    expected_out, expected_weights = scaled_dot_product_attention(q, repeated(k, 4), repeated(v, 4), causal=causal,
                                                                  mask=mask, return_weights=True, backend="numpy")
    np.testing.assert_allclose(weights, expected_weights, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out, expected_out, rtol=0, atol=1e-5)
    np.testing.assert_allclose(without_weights, expected_out, rtol=0, atol=1e-5)


@pytest.mark.parametrize("q_heads, kv_heads", [(6, 4), (2, 4), (3, 2), (4, 0)])
def test_a_head_count_that_does_not_divide_names_both_counts_and_the_shapes(backend, q_heads, kv_heads):
    q, k, v = np.zeros((2, q_heads, 3, 4)), np.zeros((2, kv_heads, 3, 4)), np.zeros((2, kv_heads, 3, 5))
    with pytest.raises(ValueError, match=f"{q_heads} heads .* {kv_heads} heads") as error:
        scaled_dot_product_attention(q, k, v, backend=backend)
    assert all(str(array.shape) in str(error.value) for array in (q, k, v))


@pytest.mark.parametrize(
    "q_shape, k_shape, v_shape",
    [
        ((2, 4, 3, 4), (3, 2, 3, 4), (3, 2, 3, 5)),  # the batch dims differ: only the head axis may
        ((4, 3, 4), (2, 3, 4), (1, 3, 5)),  # k and v with different head counts
        ((2, 4, 3, 4), (2, 3, 4), (2, 3, 5)),  # k without q's head axis
    ],
)
def test_only_the_head_axis_may_differ(backend, q_shape, k_shape, v_shape):
    with pytest.raises(ValueError, match="same leading dims"):
        scaled_dot_product_attention(np.zeros(q_shape), np.zeros(k_shape), np.zeros(v_shape), backend=backend)


def test_two_dim_inputs_have_no_head_axis(backend):
    # q [Lq, D] is one problem: k with another Lk is fine, but there is no head axis to group
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((4, 8)), rng.standard_normal((6, 8)), rng.standard_normal((6, 3))
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v, backend=backend),
                               reference_attention(q, k, v)[0], atol=1e-12)
    with pytest.raises(ValueError, match="same leading dims"):
        scaled_dot_product_attention(q, k[None], v[None], backend=backend)


def test_backward_refuses_grouped_heads(backend):
    q, k, v, _ = grouped_problem("group2", "rows", np.float64)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True, backend=backend)
    with pytest.raises(ValueError, match="as many heads as q"):
        attention_backward(np.ones_like(out), q, k, v, weights, backend=backend)


def test_empty_grouped_problems_give_empty_results(backend):
    q, k, v = np.zeros((2, 4, 0, 8)), np.zeros((2, 2, 5, 8)), np.zeros((2, 2, 5, 3))
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True, backend=backend)
    assert out.shape == (2, 4, 0, 3) and weights.shape == (2, 4, 0, 5)
    out = scaled_dot_product_attention(np.ones((2, 4, 3, 8)), k[..., :0, :], v[..., :0, :], backend=backend)
    assert out.shape == (2, 4, 3, 3) and (out == 0).all()


# ---- no copy of k and v ----

def test_k_and_v_are_never_repeated_per_query_head(backend):
    # decoding against a long cache with one key/value head: k and v repeated for the 16 query heads
    # would allocate 16 x their size, and even one copy of k is more than the call needs (the
    # scores are 16 x 4096, a quarter of k)
    rng = np.random.default_rng(4)
    q = rng.standard_normal((16, 1, 64)).astype(np.float32)  # [H, Lq, D]
    k = rng.standard_normal((1, 4096, 64)).astype(np.float32)  # [Hkv, Lk, D], 1 MiB
    v = rng.standard_normal((1, 4096, 64)).astype(np.float32)
    scaled_dot_product_attention(q, k, v, causal=True, return_weights=True, backend=backend)  # warm-up
    tracemalloc.start()
    try:
        scaled_dot_product_attention(q, k, v, causal=True, return_weights=True, backend=backend)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < k.nbytes, f"{peak} bytes allocated at the peak for k of {k.nbytes}"


class PointerRecordingLib:
    """The kernel's lib, recording the arguments of every forward call."""

    def __init__(self, kernel):
        self._lib, self.calls = kernel.lib, []

    def __getattr__(self, name):
        function = getattr(self._lib, name)

        def recorded(*args):
            self.calls.append(args)
            return function(*args)

        return recorded if name.startswith("gb_attention_forward") else function


@pytest.fixture
def recording_lib(monkeypatch):
    lib = PointerRecordingLib(native_kernel._kernel)
    monkeypatch.setattr(native_kernel, "_FORWARD", {np.dtype(t): getattr(lib, f"gb_attention_forward_f{8 * np.dtype(t).itemsize}")
                                                for t in (np.float32, np.float64)})
    return lib


def address(ffi, pointer) -> int:
    return int(ffi.cast("uintptr_t", pointer))


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_reads_contiguous_k_and_v_in_place_with_the_group_as_argument(recording_lib, dtype):
    ffi = native_kernel._kernel.ffi
    q, k, v, _ = grouped_problem("group4", "tile", dtype)  # q [2, 8, Lq, D], k and v [2, 2, Lk, .]
    scaled_dot_product_attention(q, k, v, causal=True, backend="c")
    (args,) = recording_lib.calls
    k_pointer, v_pointer, batch, kv_group = args[3], args[4], args[11], args[12]
    assert (address(ffi, k_pointer), address(ffi, v_pointer)) == (k.ctypes.data, v.ctypes.data)
    assert (batch, kv_group) == (16, 4)


@needs_c
def test_c_takes_a_strided_cache_view_copying_only_the_kv_heads(recording_lib):
    # a view of a preallocated KV cache [B, Hkv, max_len, D] is not contiguous: the kernel gets one
    # compact copy of its Hkv heads (never H), and the result is unchanged
    q, k, v, mask = grouped_problem("group4", "tile", np.float32, "shared")
    cache_k = np.zeros((2, 2, 160, D), np.float32)
    cache_v = np.zeros((2, 2, 160, DV), np.float32)
    cache_k[:, :, :k.shape[-2]], cache_v[:, :, :k.shape[-2]] = k, v
    k_view, v_view = cache_k[:, :, :k.shape[-2]], cache_v[:, :, :k.shape[-2]]
    assert not (k_view.flags.c_contiguous or v_view.flags.c_contiguous)
    expected = scaled_dot_product_attention(q, k, v, causal=True, mask=mask, backend="c")
    out = scaled_dot_product_attention(q, k_view, v_view, causal=True, mask=mask, backend="c")
    np.testing.assert_array_equal(out, expected)
    k_pointer, v_pointer = recording_lib.calls[-1][3:5]
    assert (len(k_pointer), len(v_pointer)) == (k.size, v.size)
