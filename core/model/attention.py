"""Masked scaled dot-product attention: one API over two backends.

`scaled_dot_product_attention` validates its inputs once, then dispatches to the
C kernel (core.native.kernel, built by build_kernels.py) or to the NumPy fallback; both
compute softmax(q k^T * scale + mask) v with a numerically stable softmax.
`attention_backward` does the same for the gradients (used by training).

Shapes: q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv] -> out [..., Lq, Dv],
weights [..., Lq, Lk]. `causal=True` lets query i see keys j <= i + (Lk - Lq)
(bottom-right aligned, so one new query against a KV cache sees every key).
`mask` is boolean, True = may attend, combined with `causal` by AND. A row with no
allowed key gives zeros, never NaN. NaN is never hidden either: a NaN or inf in q or k
that a row may see makes that row's out and weights NaN, and one in v reaches the out of
every row that may see its key, on both backends (the NumPy backend's dense products
spread a NaN in v further still: 0 x NaN is NaN). The gradients follow dense-product
rules on both backends.
"""
from __future__ import annotations

import math

import numpy as np

from core.native.kernel import c_backward, c_forward, check_backend, default_backend

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_dtypes(*arrays: np.ndarray) -> np.dtype:
    dtype = arrays[0].dtype
    if dtype in _FLOAT_DTYPES:
        for array in arrays:  # a plain loop (no generator): this check runs on every call
            if array.dtype != dtype:
                break
        else:
            return dtype
    names = ", ".join(str(array.dtype) for array in arrays)
    raise TypeError(f"attention needs float32 or float64 arrays of one dtype, got {names}")


def _check_shapes(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[tuple[int, ...], int, int, int, int]:
    """The sizes (lead, Lq, Lk, D, Dv) of valid q [*lead, Lq, D], k [*lead, Lk, D], v [*lead, Lk, Dv]."""
    q_shape, k_shape, v_shape = q.shape, k.shape, v.shape
    if len(q_shape) >= 2 and len(k_shape) >= 2 and len(v_shape) >= 2:
        lead, (lq, d), (lk, dv) = q_shape[:-2], q_shape[-2:], v_shape[-2:]
        if lead == k_shape[:-2] == v_shape[:-2] and k_shape[-2:] == (lk, d) and d > 0:
            return lead, lq, lk, d, dv  # the common case, tested first: this check runs on every call
    shapes = f"q {q_shape}, k {k_shape}, v {v_shape}"
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k and v need at least 2 dims (..., L, D); got {shapes}")
    if not (q_shape[:-2] == k_shape[:-2] == v_shape[:-2]):
        raise ValueError(f"q, k and v need the same leading dims; got {shapes}")
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(f"q and k need the same last dim D; got {shapes}")
    if k_shape[-2] != v_shape[-2]:
        raise ValueError(f"k and v need the same number of keys Lk; got {shapes}")
    raise ValueError(f"the query/key width D must be at least 1; got {shapes}")


def default_scale(d: int) -> float:
    """1/sqrt(D), the scale of scaled dot-product attention: for q and k of unit variance q.k has
    variance D, and dividing by sqrt(D) brings it back to 1, where softmax does not saturate."""
    return 1.0 / math.sqrt(d)


def _check_scale(scale, d: int) -> float:
    """The score scale: default_scale(D) when None, else a finite positive float (ValueError otherwise)."""
    if scale is None:
        return default_scale(d)
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale}")
    return scale


def _broadcast_mask(mask, shape: tuple[int, ...]) -> np.ndarray | None:
    """The user's boolean mask as a [..., Lq, Lk] broadcast view (no copy), or None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be boolean (True = may attend), got {mask.dtype}")
    try:
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"mask of shape {mask.shape} does not broadcast to the scores' shape {shape}") from None


def causal_mask(lq: int, lk: int) -> np.ndarray:
    """[Lq, Lk] booleans: query i may see key j when j <= i + (Lk - Lq) (bottom-right aligned)."""
    return np.tri(lq, lk, k=lk - lq, dtype=bool)


def _numpy_forward(q, k, v, mask, causal, scale, return_weights):
    allowed = mask
    if causal:
        past = causal_mask(q.shape[-2], k.shape[-2])  # [Lq, Lk]
        allowed = past if mask is None else mask & past
    scores = np.matmul(q, np.swapaxes(k, -1, -2))  # [..., Lq, D] @ [..., D, Lk] -> [..., Lq, Lk]
    scores *= scale
    if allowed is not None:
        np.copyto(scores, -np.inf, where=~allowed)
    row_max = scores.max(axis=-1, keepdims=True)  # [..., Lq, 1]
    row_max[~np.isfinite(row_max)] = 0  # fully masked row: exp(-inf) = 0 below, no NaN
    np.subtract(scores, row_max, out=scores)
    weights = np.exp(scores, out=scores)
    row_sum = weights.sum(axis=-1, keepdims=True)  # [..., Lq, 1]
    row_sum[row_sum == 0] = 1
    weights /= row_sum
    out = np.matmul(weights, v)  # [..., Lq, Lk] @ [..., Lk, Dv] -> [..., Lq, Dv]
    return out, weights


def scaled_dot_product_attention(q, k, v, *, causal=False, mask=None, scale=None,
                                 return_weights=False, backend=None):
    """softmax(q k^T * scale, masked) v; returns out, or (out, weights) with return_weights."""
    backend = default_backend() if backend is None else check_backend(backend)
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    _check_dtypes(q, k, v)
    sizes = lead, lq, lk, d, dv = _check_shapes(q, k, v)
    scores_shape = lead + (lq, lk)
    mask = _broadcast_mask(mask, scores_shape)
    scale = _check_scale(scale, d)
    if 0 in scores_shape:
        out = np.zeros(lead + (lq, dv), dtype=q.dtype)
        weights = np.zeros(scores_shape, dtype=q.dtype)
    elif backend == "c":
        out, weights = c_forward(q, k, v, mask, bool(causal), scale, return_weights, sizes)
    else:
        out, weights = _numpy_forward(q, k, v, mask, causal, scale, return_weights)
    return (out, weights) if return_weights else out


def _numpy_backward(d_out, q, k, v, weights, scale):
    d_v = np.matmul(np.swapaxes(weights, -1, -2), d_out)  # [..., Lk, Lq] @ [..., Lq, Dv] -> [..., Lk, Dv]
    d_weights = np.matmul(d_out, np.swapaxes(v, -1, -2))  # [..., Lq, Dv] @ [..., Dv, Lk] -> [..., Lq, Lk]
    row_dot = (d_weights * weights).sum(axis=-1, keepdims=True)  # [..., Lq, 1]
    d_scores = weights * (d_weights - row_dot) * scale  # softmax backward, then the scale
    d_q = np.matmul(d_scores, k)  # [..., Lq, Lk] @ [..., Lk, D] -> [..., Lq, D]
    d_k = np.matmul(np.swapaxes(d_scores, -1, -2), q)  # [..., Lk, Lq] @ [..., Lq, D] -> [..., Lk, D]
    return d_q, d_k, d_v


def attention_backward(d_out, q, k, v, weights, *, scale=None, backend=None):
    """Gradients (d_q, d_k, d_v) of attention given d_out [..., Lq, Dv] and the forward's weights.

    Masking and causality need no arguments here: masked entries of `weights` are zero.
    """
    backend = default_backend() if backend is None else check_backend(backend)
    d_out, q, k, v, weights = (np.asarray(array) for array in (d_out, q, k, v, weights))
    _check_dtypes(d_out, q, k, v, weights)
    sizes = lead, lq, lk, d, dv = _check_shapes(q, k, v)
    scores_shape, out_shape = lead + (lq, lk), lead + (lq, dv)
    if weights.shape != scores_shape or d_out.shape != out_shape:
        raise ValueError(f"attention_backward needs weights {scores_shape} and d_out {out_shape}; "
                         f"got weights {weights.shape}, d_out {d_out.shape}")
    scale = _check_scale(scale, d)
    if 0 in scores_shape:
        return np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    if backend == "c":
        return c_backward(d_out, q, k, v, weights, scale, sizes)
    return _numpy_backward(d_out, q, k, v, weights, scale)
