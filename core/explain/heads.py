"""One attention head step by step, and every head at once: the stable softmax of rows of scores
with every stage kept, the worked arithmetic of one attention weight, each token's ranked
"influenced by" list, a 2-D PCA, per-head summaries (entropy, previous-token and first-token
attention) and patterns pooled to draw many heads at once.

Shapes follow the model's trace: one head's q, k, v are [L, d_head]; a layer's attention pattern
is [n_head, L, L] (rows = the tokens asking (queries), columns = the tokens attended to (keys)).
Everything shown is computed in float64.
"""
from __future__ import annotations

import numpy as np

from core.checks import as_float_array, as_float_matrix, index
from core.model.attention import causal_mask, default_scale


def softmax_stages(scores) -> dict[str, np.ndarray]:
    """The numerically stable softmax over the last axis, every stage kept.

    `scores` [..., Lk] may hold -inf for hidden keys (they get weight 0). Returns
    `scores`, `max` [..., 1] (the row's largest visible score), `shifted` (scores - max,
    so the largest is 0 and exp never overflows), `exp`, `sum` [..., 1] and `weights`
    (exp / sum; each row sums to 1). A row with every key hidden is a ValueError.
    """
    scores = as_float_array(scores, "scores")
    if scores.ndim == 0 or scores.shape[-1] == 0:
        raise ValueError("softmax needs at least one score in the last axis")
    if np.isnan(scores).any() or np.isposinf(scores).any():
        raise ValueError("scores must be finite numbers or -inf (hidden)")
    if not np.isfinite(scores).any(axis=-1).all():
        raise ValueError("every key of a row is hidden: softmax has nothing to share out")
    row_max = scores.max(axis=-1, keepdims=True)  # [..., 1], the largest visible score
    shifted = scores - row_max  # [..., Lk], -inf stays -inf
    exps = np.exp(shifted)  # exp(-inf) = 0
    row_sum = exps.sum(axis=-1, keepdims=True)  # [..., 1], at least 1 (the max gives exp(0))
    return {"scores": scores, "max": row_max, "shifted": shifted, "exp": exps,
            "sum": row_sum, "weights": exps / row_sum}


def weight_arithmetic(q, k, query: int, key: int, *, scale: float | None = None,
                      causal: bool = True) -> dict:
    """The worked arithmetic of one attention weight: how much `query` listens to `key`.

    q, k [L, d_head]. Returns the per-dimension `products` q[query] * k[key] [d_head],
    their sum `dot`, `scale`, `scaled`, whether the key is `visible` to the query, the
    query row's `row_max` and `row_sum` of exps, this key's `exp` and its `weight`
    (exp / row_sum; 0 when hidden).
    """
    q, k = as_float_matrix(q, "q"), as_float_matrix(k, "k")
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"q and k need the same width d_head, got {q.shape} and {k.shape}")
    query = index(query, q.shape[0], "query")
    key = index(key, k.shape[0], "key")
    scale = default_scale(q.shape[1]) if scale is None else float(scale)
    products = q[query] * k[key]  # [d_head]
    row_scores = (k @ q[query]) * scale  # [L, d] @ [d] -> [L]
    visible_row = causal_mask(q.shape[0], k.shape[0])[query] if causal else np.ones(k.shape[0], dtype=bool)
    stages = softmax_stages(np.where(visible_row, row_scores, -np.inf))
    return {"query": query, "key": key, "products": products, "dot": float(products.sum()),
            "scale": scale, "scaled": float(products.sum() * scale), "visible": bool(visible_row[key]),
            "row_max": float(stages["max"][0]), "exp": float(stages["exp"][key]),
            "row_sum": float(stages["sum"][0]), "weight": float(stages["weights"][key])}


def influenced_by(weights) -> list[list[tuple[int, float]]]:
    """Each query token's keys ranked by weight, largest first (ties: earlier token first).

    weights [L, L] (rows = queries) -> for every row a list of (key position, weight),
    leaving out keys with weight 0 (hidden by the mask or fully ignored).
    """
    weights = as_float_array(weights, "weights")
    if weights.ndim != 2:
        raise ValueError(f"weights must be one head's [L, L] matrix, got shape {weights.shape}")
    order = np.argsort(-weights, axis=1, kind="stable")  # [L, L]
    return [[(int(j), float(row[j])) for j in ranks if row[j] > 0] for row, ranks in zip(weights, order)]


def pca_2d(vectors) -> tuple[np.ndarray, np.ndarray]:
    """Project vectors [N, d] onto their two main directions: (coords [N, 2], share [2]).

    `share` is the fraction of the variance each direction explains. Signs are fixed
    (each direction's largest loading is positive) so redraws do not flip the picture.
    With fewer than two directions of spread the missing coordinates are 0.
    """
    vectors = as_float_matrix(vectors, "vectors")
    centered = vectors - vectors.mean(axis=0)  # [N, d]
    _, singular, directions = np.linalg.svd(centered, full_matrices=False)  # directions [r, d]
    signs = np.sign(directions[np.arange(len(directions)), np.abs(directions).argmax(axis=1)])
    directions = directions * signs[:, None]
    coords = np.zeros((len(vectors), 2))
    count = min(2, len(directions))
    coords[:, :count] = centered @ directions[:count].T  # [N, d] @ [d, 2] -> [N, 2]
    variance = singular**2
    share = np.zeros(2)
    if variance.sum() > 0:
        share[:count] = variance[:count] / variance.sum()
    return coords, share


def head_summaries(pattern) -> dict[str, np.ndarray]:
    """Per-head summaries of attention patterns [..., n_head, L, L] -> arrays [..., n_head].

    All three average the same query rows: rows 1..L-1, the tokens that have a previous
    token (row 0 can only look at itself; for L = 1 row 0 is the only row, and `previous`
    is 0). `entropy`: the mean entropy of a row's weights in bits (0 = looks at one
    token; log2(i+1) = spreads evenly over the i+1 tokens row i sees). `previous`: the mean
    weight on the previous token. `first`: the mean weight on the first token.
    """
    pattern = as_float_array(pattern, "pattern")
    if pattern.ndim < 2 or pattern.shape[-1] != pattern.shape[-2]:
        raise ValueError(f"pattern must be [..., L, L], got shape {pattern.shape}")
    rows = pattern[..., 1:, :] if pattern.shape[-1] > 1 else pattern  # [..., L-1, L] (or the one row)
    logs = np.log2(np.where(rows > 0, rows, 1.0))
    entropy = -(rows * logs).sum(axis=-1).mean(axis=-1) + 0.0  # + 0.0 turns -0.0 into 0.0
    if pattern.shape[-1] > 1:
        previous = np.diagonal(pattern, offset=-1, axis1=-2, axis2=-1).mean(axis=-1)
    else:
        previous = np.zeros(pattern.shape[:-2])
    return {"entropy": entropy, "previous": previous, "first": rows[..., 0].mean(axis=-1)}


SUMMARY_ROWS = "averaged over the query rows 1 to L-1 (row 0 can only look at itself)"


def pool_patterns(pattern, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Attention patterns [..., L, L] shrunk to [..., S, S] (S = min(side, L)) by blocks of
    positions, for drawing many heads at once: a pooled cell is the weight the block's queries
    give, on average, to the block's keys (summed over those keys), so pooled rows still sum to 1.
    Returns (pooled, edges [S + 1]): block b holds positions edges[b] .. edges[b+1]-1."""
    pattern = as_float_array(pattern, "pattern")
    if pattern.ndim < 2 or pattern.shape[-1] != pattern.shape[-2]:
        raise ValueError(f"pattern must be [..., L, L], got shape {pattern.shape}")
    if side < 1:
        raise ValueError(f"side must be at least 1, got {side}")
    length = pattern.shape[-1]
    edges = np.linspace(0, length, min(side, length) + 1).round().astype(int)  # [S + 1]
    keys = np.add.reduceat(pattern, edges[:-1], axis=-1)  # [..., L, S] summed over each key block
    queries = np.add.reduceat(keys, edges[:-1], axis=-2)  # [..., S, S] summed over each query block
    return queries / np.diff(edges)[:, None], edges
