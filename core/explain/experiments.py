"""The small experiments: why the softmax must be stable (scores scaled until float32's exp
overflows), minimal pairs of prompts layer by layer, and attention against each head's effect when zeroed.
"""
from __future__ import annotations

import numpy as np

from core.checks import index
from core.explain.block import f64
from core.explain.stream import distribution_change
from core.model.attention import scaled_dot_product_attention
from core.native.kernel import available_backends

FLOAT32_EXP_LIMIT = float(np.log(np.finfo(np.float32).max))  # 88.72: exp of anything larger is inf
FLOAT32_EXP_FLOOR = float(np.log(np.finfo(np.float32).smallest_subnormal))  # -103.28: below, exp is 0


def softmax_two_ways(scores, factor: float, dtype=np.float32) -> dict[str, np.ndarray]:
    """One row of visible scores [n] multiplied by `factor`, softmaxed in `dtype` two ways:
    `naive` = exp(x) / sum (exp overflows to inf past FLOAT32_EXP_LIMIT, and inf / inf is NaN)
    and `stable` = exp(x - max) / sum (the largest term is exp(0) = 1); with `scaled` x and
    both `naive_exp` and `stable_exp`."""
    x = (f64(scores) * factor).astype(dtype)  # [n]
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        naive_exp = np.exp(x)
        naive = naive_exp / naive_exp.sum()
        stable_exp = np.exp(x - x.max())
        stable = stable_exp / stable_exp.sum()
    return {"scaled": x, "naive_exp": naive_exp, "naive": naive, "stable_exp": stable_exp, "stable": stable}


def breaking_factor(scores) -> float | None:
    """The factor past which float32's naive softmax of this row breaks: where the largest score
    times it passes 88.72 (exp overflows); for a row of negative scores, where even the largest
    passes -103.28 (every exp underflows to 0 and 0 / 0 is NaN); None for a largest score of 0."""
    top = float(f64(scores).max())
    if top == 0:
        return None
    return (FLOAT32_EXP_LIMIT if top > 0 else FLOAT32_EXP_FLOOR) / top


def pressure_factors(breaking: float | None, limit: float = 1e12) -> list[float]:
    """Factors for the slider: 1, 2, 5, 10, 20, ... up to the first at least twice `breaking`
    (1000 when the row never breaks), and at most `limit`."""
    top = min(limit, 1000.0 if breaking is None else max(10.0, 2 * breaking))
    factors = [1.0]
    while factors[-1] < top:
        factors.append(factors[-1] * (2.5 if len(factors) % 3 == 2 else 2.0))  # 1, 2, 5, 10, 20, 50, ...
    return factors


def kernel_row(trace, layer: int, head: int, query: int, factor: float) -> dict[str, np.ndarray]:
    """The same row from the attention kernels, their scale multiplied by `factor`: "c" (when
    built) and "numpy" weights [query + 1], in the model's dtype; both subtract the max."""
    layer_trace = trace.layers[index(layer, len(trace.layers), "layer")]
    query = index(query, len(trace.tokens), "query")
    q = layer_trace.q[head, query:query + 1]  # [1, D]
    k, v = layer_trace.k[head, :query + 1], layer_trace.v[head, :query + 1]  # [query + 1, D]
    result = {}
    for backend in available_backends():
        _, weights = scaled_dot_product_attention(q, k, v, scale=layer_trace.scale * factor, return_weights=True,
                                                  backend=backend)  # [1, query + 1]
        result[backend] = weights[0]
    return result


def _padded(row, length: int) -> np.ndarray:
    return np.pad(f64(row), (0, length - len(row)))


def minimal_pair(trace_a, trace_b) -> dict:
    """How two prompts differ inside the model, at their last tokens.

    `distance` [n_layer + 1]: the L2 distance between the two last-token residual vectors at
    each point (the embedding, then after every block), `relative` the same over prompt a's
    norm; `attention_change` [n_layer, n_head]: the total variation between the last query's
    attention rows (positions aligned from the start, the shorter row padded with zeros);
    `next_token`: core.explain.stream.distribution_change of the next-token distributions (total
    variation and KL(a || b) in bits)."""
    if trace_a.logits.shape[-1] != trace_b.logits.shape[-1] or len(trace_a.layers) != len(trace_b.layers):
        raise ValueError("the two traces must come from the same model")
    stream_a, stream_b = f64(trace_a.residual_stream[:, -1]), f64(trace_b.residual_stream[:, -1])  # [P, C]
    distance = np.linalg.norm(stream_a - stream_b, axis=-1)  # [P]
    length = max(len(trace_a.tokens), len(trace_b.tokens))
    change = np.array([[0.5 * np.abs(_padded(a[-1], length) - _padded(b[-1], length)).sum()
                        for a, b in zip(layer_a.weights, layer_b.weights)]
                       for layer_a, layer_b in zip(trace_a.layers, trace_b.layers)])  # [n_layer, n_head]
    return {"distance": distance, "relative": distance / np.maximum(np.linalg.norm(stream_a, axis=-1), 1e-12),
            "attention_change": change,
            "next_token": distribution_change(trace_a.next_token_probs, trace_b.next_token_probs)}


def last_token_focus(trace) -> tuple[np.ndarray, np.ndarray]:
    """Where the last token looks: (largest weight [n_layer, n_head], the key it goes to [n_layer, n_head])."""
    rows = np.stack([f64(layer.weights[:, -1]) for layer in trace.layers])  # [n_layer, n_head, L]
    return rows.max(axis=-1), rows.argmax(axis=-1)


def heads_to_ablate(config, layer: int | None) -> list[tuple[int, int]]:
    """Every (layer, head) of one layer, or of the whole model when `layer` is None."""
    layers = range(config.n_layer) if layer is None else [index(layer, config.n_layer, "layer")]
    return [(l, h) for l in layers for h in range(config.n_head)]
