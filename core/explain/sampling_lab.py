"""The statistics of the sampling lab: entropy, how many tokens a distribution keeps, observed
frequencies of seeded samples, mean surprisal and repetition.
"""
from __future__ import annotations

import numpy as np

from core.checks import as_float_array


def entropy_bits(probs) -> float:
    """The entropy of one distribution [vocab] in bits (0 = certain)."""
    probs = as_float_array(probs, "probs")
    positive = probs[probs > 0]
    return max(0.0, float(-(positive * np.log2(positive)).sum()))  # a certain pick is 0.00, not -0.00


def kept_count(probs) -> int:
    """How many tokens a (filtered) distribution still allows."""
    return int((as_float_array(probs, "probs") > 0).sum())


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
    chosen_probs = as_float_array(chosen_probs, "chosen_probs")
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
