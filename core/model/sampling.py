"""Choosing the next token: greedy, temperature, top-k and top-p (nucleus), seeded.

The stages run in the usual order: temperature, then top-k, then top-p, each renormalised.
`distribution_stages` returns every stage for display; `Sampler` draws from the last one.
Rules: temperature 0 is greedy (all probability on the most likely token); top_k=0 and
top_p=1.0 mean off; top-k larger than the vocabulary keeps every token; top-p keeps the
smallest set of most likely tokens whose total is at least p, and at least one token.
Ties are broken by token id: among equally likely tokens the lower id ranks first.
"""
from __future__ import annotations

import math

import numpy as np

from core.checks import number, whole


def check_settings(temperature, top_k, top_p) -> None:
    """TypeError/ValueError unless temperature >= 0, top_k >= 0 (an integer), 0 < top_p <= 1."""
    number(temperature, "temperature")
    number(top_p, "top_p")
    whole(top_k, "top_k")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


def _finite_vector(values, name: str, not_numbers: type[Exception]) -> np.ndarray:
    """`values` as a finite, non-empty float64 vector [V]; `not_numbers` or ValueError, naming `name`."""
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise not_numbers(f"{name} must be a vector of numbers") from None
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"{name} must be a non-empty vector [vocab], got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return vector


def check_logits(logits) -> np.ndarray:
    """`logits` as a finite float64 vector [V]; TypeError/ValueError otherwise."""
    return _finite_vector(logits, "logits", TypeError)


def check_probs(probs) -> np.ndarray:
    """`probs` as a float64 vector [V] of finite weights >= 0 with a positive total (they need
    not sum to 1); ValueError otherwise."""
    probs = _finite_vector(probs, "probs", ValueError)
    if (probs < 0).any():
        raise ValueError("probs must not be negative")
    if not probs.sum() > 0:
        raise ValueError("probs must not be all zero")
    return probs


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Stable softmax over the last axis of logits [V] or [n, V], at a temperature T > 0:
    exp((logits - max) / T) / sum. Shifted by the max, the largest term is exp(0) = 1: no overflow."""
    with np.errstate(over="ignore"):  # a tiny T sends unlikely tokens to -inf: exp gives 0, as it should
        exps = np.exp((logits - logits.max(axis=-1, keepdims=True)) / temperature)
    return exps / exps.sum(axis=-1, keepdims=True)


def ranking(probs: np.ndarray) -> np.ndarray:
    """Token ids from most to least likely; ties in id order."""
    return np.lexsort((np.arange(probs.size), -probs))  # primary key -probs, then id


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T); T = 0 puts all probability on the most likely token."""
    if temperature == 0:
        greedy = np.zeros_like(logits)
        greedy[np.argmax(logits)] = 1.0  # argmax returns the lowest id among ties
        return greedy
    return softmax(logits, temperature)


def keep_top_k(probs: np.ndarray, top_k: int) -> np.ndarray:
    """Only the top_k most likely tokens, renormalised; 0 or >= V keeps all."""
    if top_k == 0 or top_k >= probs.size:
        return probs
    kept = np.zeros_like(probs)
    best = ranking(probs)[:top_k]
    kept[best] = probs[best]
    return kept / kept.sum()


def keep_top_p(probs: np.ndarray, top_p: float) -> np.ndarray:
    """The smallest set of most likely tokens with total >= top_p (at least one), renormalised."""
    if top_p >= 1.0:
        return probs
    order = ranking(probs)
    total = np.cumsum(probs[order])  # [V], running total from the most likely token down
    count = min(int(np.sum(total < top_p - 1e-12)) + 1, probs.size)  # the token reaching top_p is kept;
    # the 1e-12 lets a running total that rounding left a hair below p count as reaching it
    kept = np.zeros_like(probs)
    kept[order[:count]] = probs[order[:count]]
    return kept / kept.sum()


def distribution_stages(logits, *, temperature=1.0, top_k=0, top_p=1.0) -> dict[str, np.ndarray]:
    """Every stage of the next-token distribution [V]: `raw` (softmax of the logits),
    `tempered`, `top_k` and `top_p` (the one a Sampler draws from)."""
    check_settings(temperature, top_k, top_p)
    return stages(check_logits(logits), temperature, top_k, top_p)


def stages(logits: np.ndarray, temperature, top_k, top_p) -> dict[str, np.ndarray]:
    """distribution_stages of logits and settings already checked."""
    tempered = apply_temperature(logits, temperature)
    after_top_k = keep_top_k(tempered, int(top_k))
    return {"raw": softmax(logits), "tempered": tempered, "top_k": after_top_k,
            "top_p": keep_top_p(after_top_k, float(top_p))}


class Sampler:
    """Draws token ids from logits with fixed settings and its own seeded generator."""

    def __init__(self, temperature=1.0, top_k=0, top_p=1.0, seed=None):
        check_settings(temperature, top_k, top_p)
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed
        self.rng = np.random.default_rng(seed)

    def __repr__(self):
        return f"Sampler(temperature={self.temperature}, top_k={self.top_k}, top_p={self.top_p}, seed={self.seed})"

    def distribution(self, logits) -> np.ndarray:
        """The distribution [V] this sampler draws from (the `top_p` stage)."""
        return stages(check_logits(logits), self.temperature, self.top_k, self.top_p)["top_p"]

    def choose(self, probs: np.ndarray) -> int:
        """One token id drawn from `probs` [V] (the most likely one when greedy)."""
        probs = check_probs(probs)
        if self.temperature == 0:
            return int(np.argmax(probs))
        total = np.cumsum(probs)  # [V]
        point = self.rng.random() * total[-1]  # in [0, total): never a zero-probability token
        return int(np.searchsorted(total, point, side="right"))

    def sample(self, logits) -> int:
        return self.choose(self.distribution(logits))
