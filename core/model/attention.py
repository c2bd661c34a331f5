"""Masked scaled dot-product attention: one API over two backends.

`scaled_dot_product_attention` validates its inputs once, then dispatches to the
C kernel (core.native.kernel, built by build_kernels.py) or to the NumPy fallback; both
compute softmax(q k^T * scale + mask) v with a numerically stable softmax.
`attention_backward` does the same for the gradients (used by training).

Shapes: q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv] -> out [..., Lq, Dv],
weights [..., Lq, Lk]. Grouped-query attention (Llama, Qwen, Mistral): k and v may have fewer
heads than q on the head axis (-3), q [*lead, H, Lq, D] with k [*lead, Hkv, Lk, D] and
v [*lead, Hkv, Lk, Dv] when H % Hkv == 0; query head h then reads key/value head
h // (H / Hkv), and neither backend copies k or v per query head (the backward refuses them).
`causal=True` lets query i see keys j <= i + (Lk - Lq)
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


def _check_shapes(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[tuple[int, ...], int, int, int, int, int]:
    """The sizes (lead, Lq, Lk, D, Dv, kv_group) of valid q [*lead, Lq, D], k [*kv_lead, Lk, D],
    v [*kv_lead, Lk, Dv]. kv_lead is lead, or lead with Hkv heads on axis -3 where q has H (H % Hkv == 0):
    kv_group = H / Hkv query heads share one key/value head (1 when the leads are equal)."""
    q_shape, k_shape, v_shape = q.shape, k.shape, v.shape
    if len(q_shape) >= 2 and len(k_shape) >= 2 and len(v_shape) >= 2:
        lead, (lq, d), (lk, dv) = q_shape[:-2], q_shape[-2:], v_shape[-2:]
        if lead == k_shape[:-2] == v_shape[:-2] and k_shape[-2:] == (lk, d) and d > 0:
            return lead, lq, lk, d, dv, 1  # the common case, tested first: this check runs on every call
    shapes = f"q {q_shape}, k {k_shape}, v {v_shape}"
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k and v need at least 2 dims (..., L, D); got {shapes}")
    kv_group = 1
    if not (q_shape[:-2] == k_shape[:-2] == v_shape[:-2]):
        if not (q.ndim >= 3 and q.ndim == k.ndim and k_shape[:-2] == v_shape[:-2] and q_shape[:-3] == k_shape[:-3]):
            raise ValueError(f"q, k and v need the same leading dims (k and v may have fewer heads on "
                             f"axis -3); got {shapes}")
        heads, kv_heads = q_shape[-3], k_shape[-3]
        if kv_heads == 0 or heads % kv_heads:
            raise ValueError(f"q's {heads} heads are not a multiple of k and v's {kv_heads} heads "
                             f"(grouped-query attention needs H % Hkv == 0); got {shapes}")
        kv_group = heads // kv_heads if heads else 1
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(f"q and k need the same last dim D; got {shapes}")
    if k_shape[-2] != v_shape[-2]:
        raise ValueError(f"k and v need the same number of keys Lk; got {shapes}")
    if q_shape[-1] == 0:
        raise ValueError(f"the query/key width D must be at least 1; got {shapes}")
    return q_shape[:-2], q_shape[-2], k_shape[-2], q_shape[-1], v_shape[-1], kv_group


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


def _numpy_forward(q, k, v, mask, causal, scale, return_weights, kv_group=1):
    if kv_group > 1:  # grouped heads: broadcast k and v over each group's query heads, no copy
        return _numpy_grouped_forward(q, k, v, mask, causal, scale, return_weights, kv_group)
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


def _numpy_grouped_forward(q, k, v, mask, causal, scale, return_weights, kv_group):
    """Attention of q [*outer, H, Lq, D] on k [*outer, Hkv, Lk, D], v [*outer, Hkv, Lk, Dv] with
    H = Hkv * kv_group: q viewed as [*outer, Hkv, group, Lq, D] and k, v as [*outer, Hkv, 1, Lk, .],
    so that matmul broadcasts each key/value head over its group of query heads (views, no copy)."""
    outer, kv_heads = k.shape[:-3], k.shape[-3]
    grouped_q = q.reshape(*outer, kv_heads, kv_group, *q.shape[-2:])  # splitting an axis: always a view
    grouped_mask = None if mask is None else mask.reshape(*outer, kv_heads, kv_group, *mask.shape[-2:])
    out, weights = _numpy_forward(grouped_q, k[..., None, :, :], v[..., None, :, :], grouped_mask, causal, scale,
                                  return_weights)  # [*outer, Hkv, group, Lq, Dv], [*outer, Hkv, group, Lq, Lk]
    lead = q.shape[:-2]  # (*outer, H)
    return out.reshape(*lead, *out.shape[-2:]), weights.reshape(*lead, *weights.shape[-2:])


def scaled_dot_product_attention(q, k, v, *, causal=False, mask=None, scale=None,
                                 return_weights=False, backend=None):
    """softmax(q k^T * scale, masked) v; returns out, or (out, weights) with return_weights."""
    backend = default_backend() if backend is None else check_backend(backend)
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    _check_dtypes(q, k, v)
    sizes = lead, lq, lk, d, dv, kv_group = _check_shapes(q, k, v)
    scores_shape = lead + (lq, lk)  # q's lead: [*lead, H, Lq, Lk] when k and v have grouped heads
    mask = _broadcast_mask(mask, scores_shape)
    scale = _check_scale(scale, d)
    if 0 in scores_shape:
        out = np.zeros(lead + (lq, dv), dtype=q.dtype)
        weights = np.zeros(scores_shape, dtype=q.dtype)
    elif backend == "c":
        out, weights = c_forward(q, k, v, mask, bool(causal), scale, return_weights, sizes)
    else:
        out, weights = _numpy_forward(q, k, v, mask, causal, scale, return_weights, kv_group)
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
    sizes = lead, lq, lk, d, dv, kv_group = _check_shapes(q, k, v)
    if kv_group != 1:  # training runs models whose k and v have as many heads as q
        raise ValueError(f"attention_backward needs k and v with as many heads as q (no grouped-query "
                         f"attention); got q {q.shape}, k {k.shape}, v {v.shape}")
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
