"""The residual stream and what it predicts: its norm through the layers, the logit lens (top
tokens per point and position, chunk by chunk), the most active MLP units, the change an
intervention makes to the next-token distribution, and where to look when it makes none.

The logit lens multiplies by the output head [V, C] in the weights' own dtype: GPT-2's head is
150 MB in float32, and a float64 copy per redraw would double it.
"""
from __future__ import annotations

import numpy as np

from core.checks import as_float_array, as_float_matrix, index
from core.model.ops import layer_norm, rms_norm
from core.model.params import output_head
from core.model.sampling import ranking, softmax


def residual_norms(stream) -> np.ndarray:
    """The L2 norm of every token's residual vector at every point: stream [P, L, C] -> [P, L]."""
    stream = as_float_array(stream, "stream")
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
    stream = as_float_array(stream, "stream")
    if stream.ndim != 3:
        raise ValueError(f"stream must be [points, L, C], got shape {stream.shape}")
    positions = [index(position, stream.shape[1], "position") for position in positions]
    if not positions:
        raise ValueError("the logit lens needs at least one position")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    head = np.asarray(output_head(params))  # [V, C] (the embedding when tied), in its own dtype: no float64 copy
    count = min(count, head.shape[0])
    picked = stream[:, positions, :].reshape(-1, stream.shape[2])  # [P * N, C]
    normalized = final_norm(params, config, picked)  # [P * N, C]
    chunk = max(1, LENS_CHUNK // head.shape[0])
    ids = np.zeros((len(picked), count), dtype=np.int64)  # [P * N, count]
    probs = np.zeros((len(picked), count))
    for start in range(0, len(picked), chunk):
        rows = normalized[start:start + chunk].astype(head.dtype)  # [n, C]
        logits = (rows @ head.T).astype(np.float64)  # [n, C] @ [C, V] -> [n, V]
        ids[start:start + chunk], probs[start:start + chunk] = top_probabilities(logits, count)
    shape = (stream.shape[0], len(positions), count)
    return ids.reshape(shape), probs.reshape(shape)


def final_norm(params, config, x) -> np.ndarray:
    """The model's final norm of rows x [.., C]: GPT-2's ln_f (LayerNorm) or the llama family's
    model.norm (RMSNorm: x / sqrt(mean(x²) + eps) * w, no centring, no bias)."""
    if config.family == "llama":
        return rms_norm(np.asarray(x), params["model.norm.weight"], config.layer_norm_epsilon)[0]
    return layer_norm(x, params["transformer.ln_f.weight"], params["transformer.ln_f.bias"],
                      config.layer_norm_epsilon)[0]


def top_probabilities(logits, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The softmax's `count` largest entries of each row of logits [n, V] without sorting the
    whole row: ids [n, count] (ties: lower id first) and probabilities [n, count]."""
    ids = np.zeros((len(logits), count), dtype=np.int64)
    for number, row in enumerate(logits):
        threshold = np.partition(row, row.size - count)[row.size - count]  # the count-th largest logit
        candidates = np.flatnonzero(row >= threshold)  # every id tied with it too
        ids[number] = candidates[np.lexsort((candidates, -row[candidates]))][:count]
    return ids, np.take_along_axis(softmax(logits), ids, axis=1)  # [n, count]


def top_units(activations, count: int = 8) -> np.ndarray:
    """The hidden units that fire most across the tokens: indices [count] into [L, units].

    Ranked by the largest activation any token gives them (GELU outputs are at most
    slightly negative, so large positive values are the ones that fire).
    """
    activations = as_float_matrix(activations, "activations")
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
    before, after = as_float_array(before, "before"), as_float_array(after, "after")
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
