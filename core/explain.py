"""The maths the dashboard shows beyond the model's own forward pass.

Pure NumPy (no Streamlit): the stable softmax of rows of scores with every stage kept,
the worked arithmetic of one attention weight, a 2-D PCA, each token's ranked
"influenced by" list, per-head summaries (entropy, previous-token and first-token
attention), patterns pooled to draw many heads at once, the residual stream's norm through
the layers, the logit lens (top tokens per point and position, chunk by chunk), the change an
intervention makes to the next-token distribution and where to look when it makes none,
the statistics of the sampling lab, and the shapes of the pipeline for a prompt.

Shapes follow the model's trace: one head's q, k, v are [L, d_head]; a layer's
attention pattern is [n_head, L, L] (rows = the tokens asking (queries), columns = the
tokens attended to (keys)). Everything shown is computed in float64, except the logit lens's
products with the output head [V, C], made in the weights' own dtype (GPT-2's head is 150 MB in
float32; a float64 copy per redraw would double it).
"""
from __future__ import annotations

import numpy as np

from core.attention import causal_mask
from core.model import check_index, layer_norm
from core.params import output_head
from core.sampling import ranking


def _as_float(array, name: str) -> np.ndarray:
    """`array` as float64, with a clear TypeError when it is not numeric."""
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers") from None


def _check_matrix(array: np.ndarray, name: str) -> None:
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty [L, d] matrix, got shape {array.shape}")


# --- one attention head, step by step ---------------------------------------------------

def softmax_stages(scores) -> dict[str, np.ndarray]:
    """The numerically stable softmax over the last axis, every stage kept.

    `scores` [..., Lk] may hold -inf for hidden keys (they get weight 0). Returns
    `scores`, `max` [..., 1] (the row's largest visible score), `shifted` (scores - max,
    so the largest is 0 and exp never overflows), `exp`, `sum` [..., 1] and `weights`
    (exp / sum; each row sums to 1). A row with every key hidden is a ValueError.
    """
    scores = _as_float(scores, "scores")
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
    q, k = _as_float(q, "q"), _as_float(k, "k")
    _check_matrix(q, "q")
    _check_matrix(k, "k")
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"q and k need the same width d_head, got {q.shape} and {k.shape}")
    query = check_index(query, q.shape[0], "query")
    key = check_index(key, k.shape[0], "key")
    scale = 1.0 / np.sqrt(q.shape[1]) if scale is None else float(scale)
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
    weights = _as_float(weights, "weights")
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
    vectors = _as_float(vectors, "vectors")
    _check_matrix(vectors, "vectors")
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


# --- all heads and layers -------------------------------------------------------------------

def head_summaries(pattern) -> dict[str, np.ndarray]:
    """Per-head summaries of attention patterns [..., n_head, L, L] -> arrays [..., n_head].

    All three average the same query rows: rows 1..L-1, the tokens that have a previous
    token (row 0 can only look at itself; for L = 1 row 0 is the only row, and `previous`
    is 0). `entropy`: the mean entropy of a row's weights in bits (0 = looks at one
    token; log2(i+1) = spreads evenly over the i+1 tokens row i sees). `previous`: the mean
    weight on the previous token. `first`: the mean weight on the first token.
    """
    pattern = _as_float(pattern, "pattern")
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
    pattern = _as_float(pattern, "pattern")
    if pattern.ndim < 2 or pattern.shape[-1] != pattern.shape[-2]:
        raise ValueError(f"pattern must be [..., L, L], got shape {pattern.shape}")
    if side < 1:
        raise ValueError(f"side must be at least 1, got {side}")
    length = pattern.shape[-1]
    edges = np.linspace(0, length, min(side, length) + 1).round().astype(int)  # [S + 1]
    keys = np.add.reduceat(pattern, edges[:-1], axis=-1)  # [..., L, S] summed over each key block
    queries = np.add.reduceat(keys, edges[:-1], axis=-2)  # [..., S, S] summed over each query block
    return queries / np.diff(edges)[:, None], edges


def residual_norms(stream) -> np.ndarray:
    """The L2 norm of every token's residual vector at every point: stream [P, L, C] -> [P, L]."""
    stream = _as_float(stream, "stream")
    if stream.ndim != 3:
        raise ValueError(f"stream must be [points, L, C], got shape {stream.shape}")
    return np.linalg.norm(stream, axis=-1)


LENS_CHUNK = 2**21  # logits computed at a time in the logit lens (16 MB of float64)


def lens_table(params, config, stream, positions, count: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The logit lens at chosen positions: what the model would predict there had it stopped
    at each point of the residual stream.

    stream [P, L, C] (the trace's `residual_stream`), positions [N] -> the `count` most likely
    ids [P, N, count] (ties: lower id first) and their probabilities [P, N, count]. Each
    (point, position) goes through the final LayerNorm and lm_head; the logits [rows, V] are
    made a chunk of rows at a time and only their top `count` kept, so memory stays bounded
    (never all P x N x V at once) and only the positions shown are computed.
    """
    stream = _as_float(stream, "stream")
    if stream.ndim != 3:
        raise ValueError(f"stream must be [points, L, C], got shape {stream.shape}")
    positions = [check_index(position, stream.shape[1], "position") for position in positions]
    if not positions:
        raise ValueError("the logit lens needs at least one position")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    head = np.asarray(output_head(params))  # [V, C] (the embedding when tied), in its own dtype: no float64 copy
    count = min(count, head.shape[0])
    picked = stream[:, positions, :].reshape(-1, stream.shape[2])  # [P * N, C]
    normalized, _ = layer_norm(picked, params["transformer.ln_f.weight"], params["transformer.ln_f.bias"],
                               config.layer_norm_epsilon)
    chunk = max(1, LENS_CHUNK // head.shape[0])
    ids = np.zeros((len(picked), count), dtype=np.int64)  # [P * N, count]
    probs = np.zeros((len(picked), count))
    for start in range(0, len(picked), chunk):
        rows = normalized[start:start + chunk].astype(head.dtype)  # [n, C]
        logits = (rows @ head.T).astype(np.float64)  # [n, C] @ [C, V] -> [n, V]
        ids[start:start + chunk], probs[start:start + chunk] = top_probabilities(logits, count)
    shape = (stream.shape[0], len(positions), count)
    return ids.reshape(shape), probs.reshape(shape)


def top_probabilities(logits, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The softmax's `count` largest entries of each row of logits [n, V] without sorting the
    whole row: ids [n, count] (ties: lower id first) and probabilities [n, count]."""
    row_max = logits.max(axis=1, keepdims=True)  # [n, 1]
    log_total = np.log(np.exp(logits - row_max).sum(axis=1, keepdims=True))  # [n, 1]
    ids = np.zeros((len(logits), count), dtype=np.int64)
    for index, row in enumerate(logits):
        threshold = np.partition(row, row.size - count)[row.size - count]  # the count-th largest logit
        candidates = np.flatnonzero(row >= threshold)  # every id tied with it too
        ids[index] = candidates[np.lexsort((candidates, -row[candidates]))][:count]
    chosen = np.take_along_axis(logits, ids, axis=1)  # [n, count]
    return ids, np.exp(chosen - row_max - log_total)


def top_units(activations, count: int = 8) -> np.ndarray:
    """The hidden units that fire most across the tokens: indices [count] into [L, units].

    Ranked by the largest activation any token gives them (GELU outputs are at most
    slightly negative, so large positive values are the ones that fire).
    """
    activations = _as_float(activations, "activations")
    _check_matrix(activations, "activations")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    peak = activations.max(axis=0)  # [units]
    return np.argsort(-peak, kind="stable")[:count]


def distribution_change(before, after, count: int = 8) -> dict:
    """How an intervention changes the next-token distribution.

    before, after [vocab] probabilities. Returns `ids` [count] (the tokens most likely
    in either), their `before` and `after` probabilities, `total_variation` (half the L1
    distance: 0 = same, 1 = disjoint) and `kl` (KL(before || after) in bits; inf when after
    rules out a token before allowed).
    """
    before, after = _as_float(before, "before"), _as_float(after, "after")
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"before and after must be two [vocab] vectors, got {before.shape} and {after.shape}")
    ids = ranking(np.maximum(before, after))[:count]
    support = before > 0
    with np.errstate(divide="ignore"):
        kl = max(0.0, float((before[support] * np.log2(before[support] / after[support])).sum()))  # no -0.00
    return {"ids": ids, "before": before[ids], "after": after[ids],
            "total_variation": float(0.5 * np.abs(before - after).sum()), "kl": kl}


def what_if_notes(interventions, length: int, n_layer: int) -> list[str]:
    """Sentences for the learner when a "what if" switch cannot change (some of) what is shown
    for a prompt of `length` tokens, saying why and where to look instead."""
    notes = []
    attention_only = not interventions.causal or not interventions.scale_scores
    if length == 1 and attention_only:
        notes.append("With a one-token prompt every attention row has a single key, whose weight is 1 with or "
                     "without the causal mask and the 1/√d_head scaling: these switches cannot change anything. "
                     "Type a prompt of a few words to see them act.")
    elif not interventions.causal:
        note = ("The last token already sees every token, so the causal mask never hid anything from its own "
                "row (the bottom row of each heatmap): look at the rows above it, which now see later tokens.")
        if n_layer == 1:
            note += " With one layer nothing else reaches the last position, so the prediction cannot change."
        notes.append(note)
    return notes


# --- sampling lab ---------------------------------------------------------------------------

def entropy_bits(probs) -> float:
    """The entropy of one distribution [vocab] in bits (0 = certain)."""
    probs = _as_float(probs, "probs")
    positive = probs[probs > 0]
    return max(0.0, float(-(positive * np.log2(positive)).sum()))  # a certain pick is 0.00, not -0.00


def kept_count(probs) -> int:
    """How many tokens a (filtered) distribution still allows."""
    return int((_as_float(probs, "probs") > 0).sum())


def observed_frequencies(samples, vocab_size: int) -> np.ndarray:
    """The share of `samples` (token ids) that is each token: [vocab_size], sums to 1."""
    samples = np.asarray(samples)
    if samples.ndim != 1 or samples.size == 0 or not np.issubdtype(samples.dtype, np.integer):
        raise ValueError("samples must be a non-empty 1-D array of token ids")
    if samples.min() < 0 or samples.max() >= vocab_size:
        raise ValueError(f"a sampled id is outside the vocabulary (0..{vocab_size - 1})")
    return np.bincount(samples, minlength=vocab_size) / samples.size


def mean_surprisal(chosen_probs) -> float:
    """The mean of -log2 p over the chosen tokens' probabilities (bits per token)."""
    chosen_probs = _as_float(chosen_probs, "chosen_probs")
    if chosen_probs.size == 0:
        raise ValueError("mean surprisal needs at least one chosen token")
    if (chosen_probs <= 0).any() or (chosen_probs > 1).any():
        raise ValueError("chosen probabilities must be in (0, 1]")
    return float(-np.log2(chosen_probs).mean())


def repetition_rate(ids) -> float:
    """The share of tokens that repeat an earlier token of the same sequence (0 = all new)."""
    ids = list(ids)
    if not ids:
        return 0.0
    return 1.0 - len(set(ids)) / len(ids)


# --- the pipeline -----------------------------------------------------------------------------

def pipeline_shapes(config, length: int) -> list[tuple[str, str, str, bool]]:
    """The steps from prompt to next token with this prompt's array shapes:
    (step, what it does, shape, whether it is inside the repeated transformer block)."""
    if length < 1:
        raise ValueError(f"the prompt needs at least one token, got length {length}")
    L, C, H, D, V = length, config.n_embd, config.n_head, config.d_head, config.vocab_size
    return [
        ("tokens", "the prompt split into words, each looked up as an id", f"[{L}]", False),
        ("embeddings", "token embedding + position embedding", f"[{L}] -> [{L}, {C}]", False),
        ("ln_1", "LayerNorm before attention", f"[{L}, {C}]", True),
        ("q, k, v", "three projections, split into heads", f"[{L}, {C}] -> [{L}, {3 * C}] -> 3 x [{H}, {L}, {D}]",
         True),
        ("scores", "q . k / sqrt(d_head), future keys masked", f"[{H}, {L}, {D}] x [{H}, {D}, {L}] -> [{H}, {L}, {L}]",
         True),
        ("weights", "softmax over each row", f"[{H}, {L}, {L}]", True),
        ("head outputs", "weights x values, heads joined again",
         f"[{H}, {L}, {L}] x [{H}, {L}, {D}] -> [{H}, {L}, {D}] -> [{L}, {C}]", True),
        ("attention out", "c_proj, added to the residual stream", f"[{L}, {C}]", True),
        ("MLP", "LayerNorm, expand, GELU, project back, add", f"[{L}, {C}] -> [{L}, {4 * C}] -> [{L}, {C}]", True),
        ("ln_f", "final LayerNorm", f"[{L}, {C}]", False),
        ("logits", "lm_head: a score for every word, at every position", f"[{L}, {C}] x [{C}, {V}] -> [{L}, {V}]",
         False),
        ("next token", "softmax of the last position's logits", f"[{V}]", False),
    ]
