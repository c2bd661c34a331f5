"""core.model.attention: both backends (core.native.kernel) against the float64 reference and each
other, bad input, threads."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from helpers.attention import TOLERANCE, assert_matches_reference, needs_c, reference_attention
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.model.attention import attention_backward, scaled_dot_product_attention
from core.native import kernel as native_kernel
from core.native.kernel import available_backends, default_backend

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_qkv(rng, lead, lq, lk, d, dv, dtype, magnitude=1.0):
    q = (rng.standard_normal((*lead, lq, d)) * magnitude).astype(dtype)  # [..., Lq, D]
    k = (rng.standard_normal((*lead, lk, d)) * magnitude).astype(dtype)  # [..., Lk, D]
    v = rng.standard_normal((*lead, lk, dv)).astype(dtype)  # [..., Lk, Dv]
    return q, k, v


@st.composite
def attention_problems(draw):
    """Random shapes (1 and odd sizes included), dtype, causal, mask, and a few layouts."""
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    lq, lk = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    d, dv = draw(st.integers(1, 17)), draw(st.integers(1, 7))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q, k, v = random_qkv(rng, lead, lq, lk, d, dv, dtype, magnitude=draw(st.sampled_from([0.1, 1.0, 3.0])))
    causal = draw(st.booleans())
    mask = None
    mask_kind = draw(st.sampled_from(["none", "full", "2d", "per_first_dim", "rows_off"]))
    if mask_kind == "full":
        mask = rng.random((*lead, lq, lk)) < 0.7
    elif mask_kind == "2d":
        mask = rng.random((lq, lk)) < 0.7
    elif mask_kind == "per_first_dim" and lead:  # broadcast over every leading dim but the first
        mask = rng.random((lead[0], *(1,) * (len(lead) - 1), lq, lk)) < 0.7
    elif mask_kind == "rows_off":
        mask = np.ones((lq, lk), dtype=bool)
        mask[rng.integers(0, lq)] = False
    return q, k, v, dict(causal=causal, mask=mask)


@HYPOTHESIS
@given(problem=attention_problems())
def test_every_backend_matches_reference(problem):
    q, k, v, options = problem
    for backend in available_backends():
        assert_matches_reference(q, k, v, backend, **options)


@pytest.mark.skipif("c" not in available_backends(), reason="C kernel not built")
@HYPOTHESIS
@given(problem=attention_problems())
def test_backends_agree_with_each_other(problem):
    q, k, v, options = problem
    c_out, c_weights = scaled_dot_product_attention(q, k, v, backend="c", return_weights=True, **options)
    np_out, np_weights = scaled_dot_product_attention(q, k, v, backend="numpy", return_weights=True, **options)
    tolerance = TOLERANCE[np.dtype(q.dtype)] * 10
    np.testing.assert_allclose(c_out, np_out, rtol=0, atol=tolerance)
    np.testing.assert_allclose(c_weights, np_weights, rtol=0, atol=tolerance)


def test_known_values_by_hand(backend):
    # two keys, scores 0 and ln(3) after scaling: weights 1/4 and 3/4
    q = np.array([[1.0, 0.0]])
    k = np.array([[0.0, 0.0], [np.log(3) * np.sqrt(2), 0.0]])
    v = np.array([[4.0, 0.0], [0.0, 8.0]])
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True, backend=backend)
    np.testing.assert_allclose(weights, [[0.25, 0.75]], atol=1e-12)
    np.testing.assert_allclose(out, [[1.0, 6.0]], atol=1e-12)


def test_causal_is_bottom_right_aligned(backend):
    rng = np.random.default_rng(1)
    q, k, v = random_qkv(rng, (2,), 3, 5, 4, 4, np.float64)
    _, weights = scaled_dot_product_attention(q, k, v, causal=True, return_weights=True, backend=backend)
    # query i sees keys j <= i + 2: the last query sees all 5 keys, the first only 3
    assert (weights[:, 0, 3:] == 0).all() and (weights[:, 0, :3] > 0).all()
    assert (weights[:, 2] > 0).all()


def test_decoding_one_query_sees_the_whole_cache(backend):
    rng = np.random.default_rng(2)
    q, k, v = random_qkv(rng, (4,), 1, 7, 8, 8, np.float32)
    causal = scaled_dot_product_attention(q, k, v, causal=True, backend=backend)
    full = scaled_dot_product_attention(q, k, v, causal=False, backend=backend)
    np.testing.assert_array_equal(causal, full)


def test_fully_masked_rows_are_zero_without_warnings(backend):
    rng = np.random.default_rng(3)
    q, k, v = random_qkv(rng, (2,), 4, 4, 4, 3, np.float32)
    mask = np.ones((4, 4), dtype=bool)
    mask[1] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, return_weights=True, backend=backend)
    assert (out[:, 1] == 0).all() and (weights[:, 1] == 0).all()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(weights[:, [0, 2, 3]].sum(-1), 1, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_magnitude_scores_stay_finite_and_correct(backend, dtype):
    rng = np.random.default_rng(4)
    q, k, v = random_qkv(rng, (3,), 6, 6, 4, 4, dtype, magnitude=100.0)  # scores ~ 1e4
    assert_matches_reference(q, k, v, backend, causal=True)


def test_non_contiguous_views(backend):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((3, 10, 16))
    q = base[:, ::2, :8]  # strided rows and columns
    k = np.swapaxes(rng.standard_normal((3, 8, 5)), 1, 2)  # [3, 5, 8], transposed view
    v = base[::1, 2:7, 8:]  # offset view
    assert not (q.flags.c_contiguous or k.flags.c_contiguous or v.flags.c_contiguous)
    assert_matches_reference(q, k, v, backend, causal=True)


def test_explicit_scale(backend):
    rng = np.random.default_rng(6)
    q, k, v = random_qkv(rng, (), 3, 4, 5, 2, np.float64)
    assert_matches_reference(q, k, v, backend, scale=0.37)
    assert_matches_reference(q, k, v, backend, scale=1.0)


def test_empty_query_gives_empty_result(backend):
    q = np.zeros((2, 0, 4), np.float32)
    k = np.zeros((2, 3, 4), np.float32)
    v = np.zeros((2, 3, 5), np.float32)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True, backend=backend)
    assert out.shape == (2, 0, 5) and weights.shape == (2, 0, 3) and out.dtype == np.float32


def test_no_keys_gives_zeros(backend):
    q = np.ones((2, 3, 4))
    out = scaled_dot_product_attention(q, np.zeros((2, 0, 4)), np.zeros((2, 0, 5)), backend=backend)
    assert out.shape == (2, 3, 5) and (out == 0).all()


@pytest.mark.parametrize(
    "q_shape, k_shape, v_shape, message",
    [
        ((4,), (4, 4), (4, 4), "at least 2 dims"),
        ((4, 4), (4,), (4, 4), "at least 2 dims"),
        ((4, 4), (4, 4), (4,), "at least 2 dims"),
        ((2, 2, 3, 4), (3, 2, 3, 4), (3, 2, 3, 4), "same leading dims"),
        ((2, 3, 4), (2, 3, 4), (2, 3, 4, 1), "same leading dims"),
        ((2, 4, 3, 4), (2, 2, 3, 4), (2, 1, 3, 4), "same leading dims"),  # k and v: different head counts
        ((2, 3, 4), (3, 3, 4), (3, 3, 4), "2 heads are not a multiple of k and v's 3 heads"),
        ((3, 4), (3, 5), (3, 4), "same last dim D"),
        ((3, 4), (5, 4), (6, 4), "same number of keys Lk"),
        ((3, 0), (5, 0), (5, 4), "at least 1"),
    ],
)
def test_bad_shapes_raise_value_error_with_shapes(backend, q_shape, k_shape, v_shape, message):
    q, k, v = np.zeros(q_shape), np.zeros(k_shape), np.zeros(v_shape)
    with pytest.raises(ValueError, match=message) as error:
        scaled_dot_product_attention(q, k, v, backend=backend)
    assert str(q_shape) in str(error.value) and str(k_shape) in str(error.value)


@pytest.mark.parametrize(
    "dtypes", [(np.float32, np.float64, np.float32), (np.int64,) * 3, (np.float16,) * 3, (np.complex128,) * 3]
)
def test_wrong_dtypes_raise_type_error_naming_them(backend, dtypes):
    q, k, v = (np.ones((2, 4), dtype=dtype) for dtype in dtypes)
    with pytest.raises(TypeError, match=np.dtype(dtypes[0]).name):
        scaled_dot_product_attention(q, k, v, backend=backend)


def test_mask_that_does_not_broadcast(backend):
    q = k = v = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3, 3\)"):
        scaled_dot_product_attention(q, k, v, mask=np.ones((2, 2), bool), backend=backend)


def test_non_boolean_mask_is_refused(backend):
    q = k = v = np.zeros((3, 4))
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, mask=np.ones((3, 3)), backend=backend)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown attention backend"):
        scaled_dot_product_attention(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), backend="cuda")


def test_c_backend_missing_raises_runtime_error_saying_how_to_build(monkeypatch):
    monkeypatch.setattr(native_kernel, "_kernel", None)
    assert available_backends() == ("numpy",)
    with pytest.raises(RuntimeError, match="build_kernels.py"):
        scaled_dot_product_attention(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), backend="c")
    monkeypatch.delenv("GLASSBOX_BACKEND", raising=False)
    assert default_backend() == "numpy"


def test_environment_forces_numpy(monkeypatch):
    monkeypatch.setenv("GLASSBOX_BACKEND", "numpy")
    assert default_backend() == "numpy"
    monkeypatch.setenv("GLASSBOX_BACKEND", "fortran")
    with pytest.raises(ValueError, match="fortran"):
        default_backend()


@pytest.mark.skipif("c" not in available_backends(), reason="C kernel not built")
def test_default_backend_is_c_when_built(monkeypatch):
    monkeypatch.delenv("GLASSBOX_BACKEND", raising=False)
    assert default_backend() == "c"


@pytest.mark.skipif("c" not in available_backends(), reason="C kernel not built")
@pytest.mark.parametrize("length", [8, 150], ids=["row-path", "tile-path"])  # kernels/attention.c: TILE_MIN_ROWS
def test_two_threads_calling_the_kernel_at_once(length):
    rng = np.random.default_rng(7)
    problems = [random_qkv(rng, (4,), length, length, 64, 64, np.float32) for _ in range(2)]
    expected = [reference_attention(*problem, causal=True)[0] for problem in problems]
    results, barrier = {}, threading.Barrier(2)

    def work(index):
        barrier.wait()
        for _ in range(20):
            results[index] = scaled_dot_product_attention(*problems[index], causal=True, backend="c")

    threads = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(2):
        np.testing.assert_allclose(results[index], expected[index], atol=1e-5)


def test_backward_bad_shapes(backend):
    q = k = v = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="weights"):
        attention_backward(np.zeros((2, 3, 4)), q, k, v, np.zeros((2, 3, 2)), backend=backend)


@pytest.mark.skipif("c" not in available_backends(), reason="C kernel not built")
def test_kernel_validates_pointers_and_sizes():
    ffi, lib = native_kernel._kernel.ffi, native_kernel._kernel.lib
    buffer = ffi.new("float[16]")
    null_output = lib.gb_attention_forward_f32(ffi.NULL, ffi.NULL, buffer, buffer, buffer,
                                               ffi.NULL, 0, 0, 0, 0, 1.0, 1, 1, 2, 2, 2, 2)
    zero_size = lib.gb_attention_forward_f32(buffer, ffi.NULL, buffer, buffer, buffer,
                                             ffi.NULL, 0, 0, 0, 0, 1.0, 1, 1, 0, 2, 2, 2)
    # kv_group (after B) must be positive and divide B: k and v hold B / kv_group whole problems
    zero_group, group_not_dividing = (lib.gb_attention_forward_f32(buffer, ffi.NULL, buffer, buffer, buffer,
                                                                   ffi.NULL, 0, 0, 0, 0, 1.0, 2, group, 1, 1, 1, 1)
                                      for group in (0, 3))
    negative_size = lib.gb_attention_backward_f64(*[ffi.new("double[16]")] * 8, 1.0, 1, 2, -2, 2, 2)
    assert (null_output, zero_size, negative_size) == (lib.GB_ERR_NULL, lib.GB_ERR_SIZE, lib.GB_ERR_SIZE)
    assert (zero_group, group_not_dividing) == (lib.GB_ERR_SIZE, lib.GB_ERR_SIZE)
    with pytest.raises(RuntimeError, match="size was not positive"):
        native_kernel._raise_for_status(lib.GB_ERR_SIZE)


# ---- non-finite inputs, zero-width values, unaligned views, scale ----

# kernels/attention.c: fewer than 16 query rows take the row path; with return_weights the tile path
# writes its scores into the weight rows. Keys: 5 (the row path's scalar tail), 40 (vector loops, key blocks).
KERNEL_PATHS = {"row": (6, 5, True), "row-long": (6, 40, False), "tile": (40, 40, False), "tile-weights": (40, 37, True)}


@needs_c
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("return_weights", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_query_blocks_that_see_no_key_are_zero_whatever_the_work_buffers_held(simd, dtype, return_weights):
    # the tile path's accumulator is written by a task's first key block, never cleared: a block of
    # queries that sees no key at all must not read it. The first call leaves NaN in the threads'
    # buffers; in the second, enough heads for two threads, whose tasks alternate between a block
    # that sees the 3 keys (rows 52..99) and blocks that see none (rows 0..51, causal, bottom-right).
    rng = np.random.default_rng(13)
    heads, lq = 512, 100
    q, k, v = random_qkv(rng, (heads,), lq, lq, 64, 64, dtype)
    v[...] = np.nan
    scaled_dot_product_attention(q, k, v, causal=True, backend="c")
    q, k, v = random_qkv(rng, (heads,), lq, 3, 64, 64, dtype)
    result = scaled_dot_product_attention(q, k, v, causal=True, return_weights=return_weights, backend="c")
    out = result[0] if return_weights else result
    assert (out[:, :lq - 3] == 0).all()
    expected = scaled_dot_product_attention(q, k, v, causal=True, backend="numpy")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def problem_with_mask(rng, lq, lk, dtype):
    q, k, v = random_qkv(rng, (2,), lq, lk, 8, 5, dtype)
    mask = rng.random((lq, lk)) < 0.8
    mask[1] = False  # one row sees nothing
    return q, k, v, mask


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NumPy on NaN and inf
@needs_c
@pytest.mark.parametrize("path", KERNEL_PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["q", "k"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("causal", [False, True])
def test_nan_or_inf_in_q_or_k_gives_nan_in_the_same_rows_as_numpy(simd, path, dtype, where, value, causal):
    lq, lk, return_weights = KERNEL_PATHS[path]
    rng = np.random.default_rng(11)
    q, k, v, mask = problem_with_mask(rng, lq, lk, dtype)
    q[..., 2], k[..., 2] = np.abs(q[..., 2]), np.abs(k[..., 2])  # +inf there: +inf scores; -inf: -inf scores
    if where == "q":
        q[0, 3, 2] = value  # one query row
    else:
        k[0, 2, 2] = value  # one key, seen by every row that may attend it
    options = dict(causal=causal, mask=mask, return_weights=True)
    np_out, np_weights = scaled_dot_product_attention(q, k, v, backend="numpy", **options)
    if return_weights:
        c_out, c_weights = scaled_dot_product_attention(q, k, v, backend="c", **options)
        np.testing.assert_array_equal(np.isnan(c_weights).any(-1), np.isnan(np_weights).any(-1))
    else:
        c_out = scaled_dot_product_attention(q, k, v, backend="c", causal=causal, mask=mask)
    nan_rows = np.isnan(np_out).any(-1)
    assert nan_rows.any() == (value != -np.inf)  # -inf scores are like masked keys: no NaN
    np.testing.assert_array_equal(np.isnan(c_out).any(-1), nan_rows)
    np.testing.assert_array_equal(np.isnan(c_out[nan_rows]), True)  # whole rows, every column
    assert np.isfinite(c_out[~nan_rows]).all()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NumPy on NaN and inf
@needs_c
@pytest.mark.parametrize("path", KERNEL_PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("causal", [False, True])
def test_nan_or_inf_in_v_reaches_every_row_that_may_see_its_key(simd, path, dtype, value, causal):
    lq, lk, return_weights = KERNEL_PATHS[path]
    rng = np.random.default_rng(12)
    q, k, v, mask = problem_with_mask(rng, lq, lk, dtype)
    key, column = lk - 2, 3
    mask[2:, key] = True  # seen by the last rows, causal or not
    v[0, key, column] = value
    seeing = mask[:, key] & ((not causal) | (key <= np.arange(lq) + lk - lq))  # [Lq] rows that may attend the key
    assert seeing.any()
    for backend in ("c", "numpy"):
        result = scaled_dot_product_attention(q, k, v, backend=backend, causal=causal, mask=mask,
                                              return_weights=return_weights)
        out = result[0] if return_weights else result
        assert not np.isfinite(out[0, seeing, column]).any(), backend
        assert np.isfinite(np.delete(out, column, axis=-1)).all(), backend  # other columns untouched
        assert np.isfinite(out[1]).all(), backend  # the other problem too


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NumPy on NaN and inf
@needs_c
@pytest.mark.parametrize("where", ["masked k", "masked v", "q of a masked row", "d_out of a masked row",
                                   "a weight", "q"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_nan_reaches_the_same_gradients_as_numpy(simd, where, dtype):
    # the C backward skips keys whose weights are all zero; with a NaN about, 0 x NaN must still be NaN
    rng = np.random.default_rng(13)
    q, k, v, d_out = (rng.standard_normal((2, 9, 6)).astype(dtype) for _ in range(4))
    mask = np.ones((9, 9), dtype=bool)
    mask[:, 7] = False  # key 7: seen by no one
    mask[4] = False  # query 4: sees nothing
    if where == "masked k":
        k[0, 7, 1] = np.nan
    elif where == "masked v":
        v[0, 7, 1] = np.nan
    elif where == "q of a masked row":
        q[0, 4, 1] = np.nan
    elif where == "q":
        q[0, 5, 1] = np.nan
    _, weights = scaled_dot_product_attention(q, k, v, causal=True, mask=mask, return_weights=True, backend="numpy")
    if where == "d_out of a masked row":
        d_out[0, 4, 1] = np.nan
    elif where == "a weight":
        weights[0, 6, 2] = np.nan
    c_grads = attention_backward(d_out, q, k, v, weights, backend="c")
    numpy_grads = attention_backward(d_out, q, k, v, weights, backend="numpy")
    assert any(np.isnan(grad).any() for grad in numpy_grads)
    for name, c_grad, numpy_grad in zip("qkv", c_grads, numpy_grads):
        np.testing.assert_array_equal(np.isnan(c_grad), np.isnan(numpy_grad), err_msg=f"d_{name}")
        finite = ~np.isnan(numpy_grad)
        np.testing.assert_allclose(c_grad[finite], numpy_grad[finite], rtol=1e-4, atol=1e-4, err_msg=f"d_{name}")


@pytest.mark.parametrize("lq", [3, 20])  # C: row path, tile path
def test_zero_width_values_still_give_the_softmax_weights(backend, lq):
    rng = np.random.default_rng(14)
    q, k, v = random_qkv(rng, (2,), lq, 6, 4, 3, np.float64)
    expected_weights = reference_attention(q, k, v, causal=True)[1]
    out, weights = scaled_dot_product_attention(q, k, v[..., :0], causal=True, return_weights=True, backend=backend)
    assert out.shape == (2, lq, 0)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-12)
    d_q, d_k, d_v = attention_backward(np.zeros((2, lq, 0)), q, k, v[..., :0], weights, backend=backend)
    assert d_v.shape == (2, 6, 0) and (d_q == 0).all() and (d_k == 0).all()


def unaligned(array: np.ndarray) -> np.ndarray:
    """A copy of `array` at an odd byte offset: C-contiguous but not aligned for its dtype."""
    buffer = np.zeros(array.nbytes + 1, dtype=np.uint8)
    view = buffer[1:].view(array.dtype).reshape(array.shape)
    view[...] = array
    assert view.flags.c_contiguous and not view.flags.aligned
    return view


class AlignmentCheckingLib:
    """The kernel's lib, with every float pointer argument checked for alignment first."""

    def __init__(self, kernel):
        self._ffi, self._lib, self.checked = kernel.ffi, kernel.lib, 0

    def __getattr__(self, name):
        function = getattr(self._lib, name)
        if not name.startswith("gb_attention"):
            return function

        def checked(*args):
            for arg in args:
                if isinstance(arg, self._ffi.CData) and arg != self._ffi.NULL:
                    item = self._ffi.sizeof(self._ffi.typeof(arg).item)
                    assert int(self._ffi.cast("uintptr_t", arg)) % item == 0, f"{name}: unaligned pointer"
            self.checked += 1
            return function(*args)

        return checked


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_views_are_copied_before_the_kernel_reads_them(monkeypatch, dtype):
    lib = AlignmentCheckingLib(native_kernel._kernel)
    monkeypatch.setattr(native_kernel, "_kernel", type("Kernel", (), {"ffi": native_kernel._kernel.ffi, "lib": lib}))
    monkeypatch.setattr(native_kernel, "_FORWARD", {np.dtype(t): getattr(lib, f"gb_attention_forward_f{8 * np.dtype(t).itemsize}")
                                                for t in (np.float32, np.float64)})
    rng = np.random.default_rng(15)
    q, k, v = random_qkv(rng, (2,), 20, 20, 8, 8, dtype)
    expected_out, expected_weights = scaled_dot_product_attention(q, k, v, causal=True, return_weights=True, backend="c")
    out, weights = scaled_dot_product_attention(*map(unaligned, (q, k, v)), causal=True, return_weights=True,
                                                backend="c")
    np.testing.assert_array_equal(out, expected_out)
    d_out = rng.standard_normal(out.shape).astype(dtype)
    expected_grads = attention_backward(d_out, q, k, v, weights, backend="c")
    grads = attention_backward(*map(unaligned, (d_out, q, k, v, weights)), backend="c")
    for got, want in zip(grads, expected_grads):
        np.testing.assert_array_equal(got, want)
    assert lib.checked == 4


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), 0.0, -0.5])
def test_forward_and_backward_reject_a_bad_scale(backend, scale):
    q = k = v = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match="scale"):
        scaled_dot_product_attention(q, k, v, scale=scale, backend=backend)
    with pytest.raises(ValueError, match="scale"):
        attention_backward(np.ones((2, 3, 4)), q, k, v, np.full((2, 3, 3), 1 / 3), scale=scale, backend=backend)


@needs_c
def test_every_error_code_the_kernel_declares_has_a_message_and_no_thread_error():
    # a worker thread that cannot start leaves its share to the others: no GB_ERR_THREAD to return
    lib = native_kernel._kernel.lib
    codes = {getattr(lib, name) for name in dir(lib) if name.startswith("GB_ERR_")}
    assert not hasattr(lib, "GB_ERR_THREAD")
    assert codes == set(native_kernel._ERROR_MESSAGES)


@needs_c
def test_a_forked_child_runs_threaded_calls_with_its_own_pool():
    # the kernel keeps worker threads between calls; a fork has none of them, so the child starts its own
    code = textwrap.dedent("""
        import os, numpy as np
        from core.model.attention import scaled_dot_product_attention
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal((8, 150, 64)).astype(np.float32) for _ in range(3))
        expected = scaled_dot_product_attention(q, k, v, causal=True, backend="c")  # starts the pool
        pid = os.fork()
        if pid == 0:
            same = np.array_equal(scaled_dot_product_attention(q, k, v, causal=True, backend="c"), expected)
            os._exit(0 if same else 3)
        _, status = os.waitpid(pid, 0)
        raise SystemExit(os.waitstatus_to_exitcode(status))
    """)
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "GLASSBOX_NUM_THREADS": "2"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
