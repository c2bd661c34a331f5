"""The C layer kernels (kernels/layers.c, llm.c style; kernels/matvec.c), called from NumPy arrays.

GELU, LayerNorm, softmax + cross-entropy and the embedding gradient, forward and backward,
for float32 arrays. The NumPy functions they replace stay the readable reference
(core.model.ops.gelu_numpy and layer_norm_numpy, core.train.backward's *_numpy),
and tests/kernels/test_layer_kernels.py checks each kernel against its reference. Callers ask
`fits(*arrays)` first: True when the kernel is built, the backend is not forced to NumPy
(GLASSBOX_BACKEND=numpy) and every array is float32; otherwise they run the reference.
The layer kernels are single-threaded; `few_rows_matmul` (decoding's products) runs on the
kernel's threads. All sum in a fixed order: the same inputs give the same bytes.
"""
from __future__ import annotations

import numpy as np

from core.native.kernel import default_backend, ffi, lib

FLOAT32 = np.dtype(np.float32)


def fits(*arrays) -> bool:
    """Whether the C kernels can take these arrays (built, not forced off, all float32)."""
    return (lib is not None and all(getattr(array, "dtype", None) == FLOAT32 for array in arrays)
            and default_backend() == "c")


def _floats(array: np.ndarray):
    """A cffi float pointer to `array`'s data (made C-contiguous first when it is not)."""
    return ffi.from_buffer("float[]", np.ascontiguousarray(array))


def _ints(array: np.ndarray):
    return ffi.from_buffer("int64_t[]", np.ascontiguousarray(array, dtype=np.int64))


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU's tanh approximation of x (any shape)."""
    out = np.empty(x.shape, FLOAT32)
    lib.gb_gelu_forward_f32(_floats(out), _floats(x), x.size)
    return out


def gelu_backward(d_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """d_x = d_out * gelu'(x), both of x's shape."""
    d_x = np.empty(x.shape, FLOAT32)
    lib.gb_gelu_backward_f32(_floats(d_x), _floats(d_out), _floats(x), x.size)
    return d_x


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float):
    """LayerNorm over the last axis of x [.., C]: (out [.., C], sqrt(var + eps) [.., 1])."""
    width = x.shape[-1]
    out, scale = np.empty(x.shape, FLOAT32), np.empty((*x.shape[:-1], 1), FLOAT32)
    lib.gb_layernorm_forward_f32(_floats(out), _floats(scale), _floats(x), _floats(weight),
                                 _floats(bias), eps, x.size // width, width)
    return out, scale


def layer_norm_backward(d_out: np.ndarray, x: np.ndarray, weight: np.ndarray, eps: float):
    """(d_x [.., C], d_weight [C], d_bias [C]) of LayerNorm(x) given d_out [.., C]."""
    width = x.shape[-1]
    d_x, d_weight, d_bias = np.empty(x.shape, FLOAT32), np.empty(width, FLOAT32), np.empty(width, FLOAT32)
    lib.gb_layernorm_backward_f32(_floats(d_x), _floats(d_weight), _floats(d_bias), _floats(d_out),
                                  _floats(x), _floats(weight), eps, x.size // width, width)
    return d_x, d_weight, d_bias


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray):
    """(mean cross-entropy as a float, d_loss/d_logits [.., L, V]) for int targets [.., L]."""
    d_logits = np.empty(logits.shape, FLOAT32)
    loss = ffi.new("double *")
    rows = targets.size
    if rows * logits.shape[-1] != logits.size:
        raise ValueError(f"targets {targets.shape} do not match logits {logits.shape}")
    status = lib.gb_softmax_cross_entropy_f32(loss, _floats(d_logits), _floats(logits), _ints(targets),
                                              rows, logits.shape[-1])
    if status != 0:
        raise ValueError(f"targets must be token ids in 0..{logits.shape[-1] - 1}")
    return float(loss[0]), d_logits


def embedding_backward(d_out: np.ndarray, ids: np.ndarray, table_rows: int) -> np.ndarray:
    """d_table [table_rows, C]: the rows of d_out [.., L, C] added up by their ids [.., L]."""
    width = d_out.shape[-1]
    d_table = np.empty((table_rows, width), FLOAT32)
    status = lib.gb_embedding_backward_f32(_floats(d_table), _floats(d_out), _ints(ids), ids.size,
                                           width, table_rows)
    if status != 0:
        raise ValueError(f"ids must be in 0..{table_rows - 1}")
    return d_table


def few_rows_matmul(x: np.ndarray, w: np.ndarray, threads: int = 0) -> np.ndarray | None:
    """x [N, K] @ w [K, M] for a few rows N, the weight split across `threads` threads
    (0: every core, or GLASSBOX_NUM_THREADS); w C-contiguous, or the transpose of a C-contiguous
    [M, K] array (the tied output head). None when w is neither (the caller uses BLAS)."""
    rows, inner = x.shape
    columns = w.shape[1]
    if w.flags.c_contiguous:
        product, weights = lib.gb_matmul_few_rows_f32, w
    elif w.T.flags.c_contiguous:
        product, weights = lib.gb_matmul_few_rows_transposed_f32, w.T
    else:
        return None
    out = np.empty((rows, columns), FLOAT32)  # [N, M]
    status = product(_floats(out), _floats(x), _floats(weights), rows, inner, columns, threads)
    if status != 0:
        raise MemoryError("the few-row matrix product could not allocate its work buffers")
    return out
