"""The C layer kernels of training (core.native.layers, kernels/layers.c) against their NumPy references."""
import numpy as np
import pytest

from core.model.ops import gelu, gelu_numpy, layer_norm, layer_norm_numpy
from core.native import kernel as native_kernel
from core.native import layers as native_layers
from core.train import backward
from helpers.threads import run_in_threads

pytestmark = pytest.mark.skipif(native_kernel._kernel is None, reason="the C kernel is not built")


def _floats(shape, scale=1.0, offset=0.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + offset).astype(np.float32)


@pytest.mark.parametrize("shape", [(7,), (3, 5, 17), (32, 32, 256)])
def test_gelu_forward_and_backward_match_numpy(shape):
    x, d_out = _floats(shape, scale=4.0), _floats(shape, seed=1)
    x.flat[:3] = [0.0, 1e-5, -30.0]  # tiny, and far in the flat tail
    # the kernel's rational tanh is within 4e-7 of tanh
    np.testing.assert_allclose(native_layers.gelu(x), gelu_numpy(x), rtol=1e-5, atol=5e-6)
    np.testing.assert_allclose(native_layers.gelu_backward(d_out, x), backward.gelu_backward_numpy(d_out, x),
                               rtol=1e-5, atol=3e-5)  # 1 - tanh^2 near tanh = -1: x * 4e-7 * |d_out|


def test_gelu_keeps_nan_and_infinities_as_numpy_does():
    x = np.array([np.nan, np.inf, -np.inf, 2.0], np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        np.testing.assert_array_equal(native_layers.gelu(x), gelu_numpy(x))
        assert np.isnan(native_layers.gelu_backward(np.ones(4, np.float32), x)[0])


@pytest.mark.parametrize("shape", [(1, 3), (5, 64), (4, 32, 64)])
def test_layer_norm_forward_and_backward_match_numpy(shape):
    x, d_out = _floats(shape, scale=3.0, offset=2.0), _floats(shape, seed=1)
    weight, bias = _floats(shape[-1:], seed=2), _floats(shape[-1:], seed=3)
    out, scale = native_layers.layer_norm(x, weight, bias, 1e-5)
    ref_out, ref_scale = layer_norm_numpy(x, weight, bias, 1e-5)
    assert scale.shape == ref_scale.shape
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scale, ref_scale, rtol=1e-6)
    for ours, ref in zip(native_layers.layer_norm_backward(d_out, x, weight, 1e-5),
                         backward.layer_norm_backward_numpy(d_out, x, weight, 1e-5)):
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def test_softmax_cross_entropy_matches_numpy():
    logits = _floats((6, 8, 243), scale=5.0)
    targets = np.random.default_rng(4).integers(0, 243, (6, 8))
    loss, d_logits = native_layers.softmax_cross_entropy(logits, targets)
    ref_loss, ref_d_logits = backward.softmax_cross_entropy_numpy(logits, targets)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    np.testing.assert_allclose(d_logits, ref_d_logits, rtol=1e-5, atol=1e-9)


def test_softmax_cross_entropy_gives_nan_for_a_nan_logit_and_rejects_bad_targets():
    logits = _floats((2, 5))
    logits[1, 3] = np.nan
    loss, d_logits = native_layers.softmax_cross_entropy(logits, np.array([0, 1]))
    assert np.isnan(loss) and np.isnan(d_logits[1]).all() and np.isfinite(d_logits[0]).all()
    with pytest.raises(ValueError, match="targets"):
        native_layers.softmax_cross_entropy(_floats((2, 5)), np.array([0, 5]))


def test_embedding_backward_adds_repeated_ids_like_numpy_and_rejects_bad_ids():
    d_out, ids = _floats((4, 6, 8)), np.random.default_rng(5).integers(0, 5, (4, 6))
    np.testing.assert_allclose(native_layers.embedding_backward(d_out, ids, 7),
                               backward.embedding_backward_numpy(d_out, ids, 7), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="ids"):
        native_layers.embedding_backward(d_out, np.full((4, 6), 7), 7)


def test_the_public_functions_take_the_kernel_for_float32_and_numpy_otherwise(monkeypatch):
    x64 = _floats((3, 8)).astype(np.float64)
    assert native_layers.fits(x64.astype(np.float32)) and not native_layers.fits(x64)
    np.testing.assert_array_equal(gelu(x64), gelu_numpy(x64))  # float64: the reference itself
    x32 = x64.astype(np.float32)
    np.testing.assert_array_equal(gelu(x32), native_layers.gelu(x32))
    weight, bias = np.ones(8, np.float32), np.zeros(8, np.float32)
    np.testing.assert_array_equal(layer_norm(x32, weight, bias, 1e-5)[0],
                                  native_layers.layer_norm(x32, weight, bias, 1e-5)[0])
    monkeypatch.setenv("GLASSBOX_BACKEND", "numpy")
    assert not native_layers.fits(x32)
    np.testing.assert_array_equal(gelu(x32), gelu_numpy(x32))


def test_non_contiguous_inputs_give_the_contiguous_answer():
    x = _floats((8, 6))
    view = x.T  # not C-contiguous
    np.testing.assert_array_equal(native_layers.gelu(view), native_layers.gelu(np.ascontiguousarray(view)))


# --- the few-row products of decoding (kernels/matvec.c) ----------------------------------------

@pytest.mark.parametrize("rows, k, m", [(1, 768, 2304), (1, 7, 5), (3, 37, 130), (2, 3072, 768), (1, 1, 1)])
def test_few_rows_products_match_numpy_for_any_thread_count(rows, k, m):
    """Both layouts (w [k, m] and the transpose of a [m, k] head) against float64 NumPy, with the
    same bytes on 1, 2 and 3 threads (the sums' order does not depend on the threads)."""
    x, w = _floats((rows, k)), _floats((k, m), seed=1)
    head = np.ascontiguousarray(w.T)  # [m, k]: used as head.T
    expected = x.astype(np.float64) @ w.astype(np.float64)
    for weights in (w, head.T):
        outs = [native_layers.few_rows_matmul(x, weights, threads) for threads in (1, 2, 3)]
        np.testing.assert_allclose(outs[0], expected, rtol=1e-4, atol=1e-4 * np.sqrt(k))
        for out in outs[1:]:
            np.testing.assert_array_equal(out, outs[0])


def test_a_strided_weight_is_left_to_blas():
    w = _floats((64, 64))[:, ::2]  # neither C- nor F-contiguous
    assert native_layers.few_rows_matmul(_floats((1, 64)), w) is None


def test_decoding_products_go_to_the_kernel_and_match_blas(monkeypatch):
    """core.native.parallel.matmul sends a one-row product of GPT-2's shapes to the kernel, and its
    numbers are BLAS's to float rounding; a toy-sized product stays with BLAS."""
    from core.native import layers as native_layers
    from core.native import parallel

    calls = []
    kernel = native_layers.few_rows_matmul
    monkeypatch.setattr(native_layers, "few_rows_matmul", lambda *args: calls.append(args) or kernel(*args))
    x, w = _floats((1, 1, 768)), _floats((768, 768), seed=1)
    parallel.matmul(_floats((1, 64)), _floats((64, 64)))
    assert not calls
    out = parallel.matmul(x, w)
    assert len(calls) == 1
    assert out.shape == (1, 1, 768) and out.flags.c_contiguous
    np.testing.assert_allclose(out, x @ w, rtol=1e-4, atol=1e-4)


def test_few_rows_products_from_several_threads_at_once_are_each_right():
    """Sessions decode at once: one call has the kernel's pool, the others start threads of their own."""

    w = _floats((768, 2304), seed=1)
    inputs = [_floats((1, 768), seed=10 + n) for n in range(4)]
    alone = [native_layers.few_rows_matmul(x, w) for x in inputs]
    results = [None] * len(inputs)

    def decode(index):
        for _ in range(20):
            results[index] = native_layers.few_rows_matmul(inputs[index], w)

    run_in_threads(decode, len(inputs))
    for result, expected in zip(results, alone):
        np.testing.assert_array_equal(result, expected)
