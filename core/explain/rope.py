"""Rotary position embeddings (RoPE) worked out for one query and one key, in float64, with the
model's own frequencies (core.model.rope.inverse_frequencies).

A head's D dims are D/2 pairs (dim i with dim i + D/2: Hugging Face's rotate_half convention, not
interleaved); pair i of a vector at position p is turned by the angle p * freq[i]. Turning q by
p_q * freq and k by p_k * freq changes each pair's dot product only by the difference of the angles,
(p_q - p_k) * freq: the score depends on the positions only through their distance.
q, k are one head's vectors before RoPE [D] (the trace's attn.hook_q / attn.hook_k rows).
"""
from __future__ import annotations

import numpy as np

from core.checks import is_whole
from core.explain.block import f64
from core.model.rope import inverse_frequencies


def _vector(x, config, name: str) -> np.ndarray:
    x = f64(x)
    if x.shape != (config.head_dim,):
        raise ValueError(f"{name} must be one head's vector [{config.head_dim}], got shape {x.shape}")
    return x


def _position(value, name: str) -> int:
    if not is_whole(value) or value < 0:
        raise ValueError(f"{name} must be a whole number at least 0, got {value!r}")
    return int(value)


def pairs(x) -> np.ndarray:
    """x [D] as its D/2 rotation pairs [D/2, 2]: (x[i], x[i + D/2])."""
    half = len(x) // 2
    return np.stack([x[:half], x[half:]], axis=-1)


def rotated(config, x, position: int) -> np.ndarray:
    """x [D] turned by RoPE at `position`: pair i by the angle position * freq[i] (float64)."""
    x = _vector(x, config, "x")
    angles = _position(position, "position") * f64(inverse_frequencies(config))  # [D/2]
    cos, sin = np.cos(angles), np.sin(angles)
    half = len(x) // 2
    first, second = x[:half], x[half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin])  # [D]


def rope_steps(config, q, k, query_position: int, key_position: int) -> dict:
    """One query (at query_position) and one key (at key_position) through RoPE, pair by pair:
    `frequencies` [D/2], `q_angles`, `k_angles` [D/2] (position * frequency), `q_pairs`,
    `k_pairs` [D/2, 2] before, `q_rotated_pairs`, `k_rotated_pairs` after, `q_rotated`, `k_rotated`
    [D], `pair_products` [D/2] (each rotated pair's dot product: they add up to q_rot . k_rot),
    `raw` = q_rot . k_rot, `score` = raw * scale, `score_unrotated` (the same without RoPE) and
    `distance` = query_position - key_position."""
    q, k = _vector(q, config, "q"), _vector(k, config, "k")
    query_position, key_position = _position(query_position, "query_position"), _position(key_position, "key_position")
    frequencies = f64(inverse_frequencies(config))  # [D/2]
    q_rot, k_rot = rotated(config, q, query_position), rotated(config, k, key_position)
    pair_products = (pairs(q_rot) * pairs(k_rot)).sum(axis=-1)  # [D/2]
    raw = float(q_rot @ k_rot)
    return {"frequencies": frequencies, "q_angles": query_position * frequencies,
            "k_angles": key_position * frequencies, "q_pairs": pairs(q), "k_pairs": pairs(k),
            "q_rotated_pairs": pairs(q_rot), "k_rotated_pairs": pairs(k_rot), "q_rotated": q_rot,
            "k_rotated": k_rot, "pair_products": pair_products, "raw": raw, "score": raw * config.attention_scale,
            "score_unrotated": float(q @ k) * config.attention_scale,
            "distance": query_position - key_position}


def shifted_scores(config, q, k, distance: int, starts) -> np.ndarray:
    """The scaled score of the same q and k placed at positions (p, p - distance) for each p in
    `starts` [N] (each at least `distance`): [N], all equal up to rounding, since only the
    distance enters."""
    distance = _position(distance, "distance")
    starts = [_position(start, "start") for start in starts]
    if any(start < distance for start in starts):
        raise ValueError(f"every start must be at least the distance {distance} (the key's position is p - d)")
    return np.array([rope_steps(config, q, k, start, start - distance)["score"] for start in starts])


def scores_by_distance(config, q, k, distances) -> np.ndarray:
    """The scaled score of the same q and k at distances `distances` [N] (query at d, key at 0): [N]."""
    return np.array([rope_steps(config, q, k, _position(d, "distance"), 0)["score"] for d in distances])
