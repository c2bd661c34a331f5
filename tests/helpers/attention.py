"""The float64 reference attention, the one parity check every backend passes, and the skip for
tests of the C kernel itself."""
from __future__ import annotations

import numpy as np
import pytest

from core.model.attention import scaled_dot_product_attention
from core.native.kernel import available_backends

TOLERANCE = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-11}


def reference_attention(q, k, v, *, causal=False, mask=None, scale=None):
    """Attention written plainly in float64, one query row at a time: (out, weights)."""
    q, k, v = (np.asarray(array, dtype=np.float64) for array in (q, k, v))
    lead, lq, lk = q.shape[:-2], q.shape[-2], k.shape[-2]
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    allowed = np.ones((*lead, lq, lk), dtype=bool)
    if mask is not None:
        allowed = allowed & np.broadcast_to(mask, allowed.shape)
    out = np.zeros((*lead, lq, v.shape[-1]))
    weights = np.zeros((*lead, lq, lk))
    for index in np.ndindex(*lead, lq):
        *batch, i = index
        keys = [j for j in range(lk) if allowed[index][j] and (not causal or j <= i + lk - lq)]
        if not keys:
            continue
        scores = np.array([q[index] @ k[(*batch, j)] * scale for j in keys])
        exps = np.exp(scores - scores.max())
        weights[index][keys] = exps / exps.sum()
        out[index] = weights[index] @ v[tuple(batch)]
    return out, weights


def assert_matches_reference(q, k, v, backend, **options):
    """The one parity check: `backend`'s out and weights equal the float64 reference."""
    out, weights = scaled_dot_product_attention(q, k, v, backend=backend, return_weights=True, **options)
    expected_out, expected_weights = reference_attention(q, k, v, **options)
    tolerance = TOLERANCE[np.dtype(q.dtype)]
    magnitude = max(1.0, float(np.abs(v).max(initial=0.0)))
    assert out.dtype == q.dtype and weights.dtype == q.dtype
    np.testing.assert_allclose(weights, expected_weights, rtol=0, atol=tolerance * 10)
    np.testing.assert_allclose(out, expected_out, rtol=0, atol=tolerance * 10 * magnitude)
    assert np.isfinite(out).all() and np.isfinite(weights).all()
    without_weights = scaled_dot_product_attention(q, k, v, backend=backend, **options)
    np.testing.assert_allclose(without_weights, out, rtol=0, atol=tolerance * 10 * magnitude)


needs_c = pytest.mark.skipif("c" not in available_backends(), reason="C kernel not built")
