"""Rotary position embeddings (RoPE), as Hugging Face's llama, qwen2, qwen3 and mistral compute them.

Each head's D dims are D/2 pairs (dim i with dim i + D/2: the first half against the second half,
transformers' `rotate_half`, not interleaved); pair i is turned by the angle position * inv_freq[i].
q and k are rotated, v is not, so q.k depends on the positions only through their difference.
Shapes: L positions, D = head_dim, H heads, `..` an optional batch dim.
"""
from __future__ import annotations

import math

import numpy as np

from core.model.config import GPTConfig


def default_inv_freq(config: GPTConfig) -> np.ndarray:
    """[D/2] 1 / theta^(2i / D), i = 0 .. D/2 - 1 (float32, as transformers)."""
    D = config.head_dim
    exponents = np.arange(0, D, 2, dtype=np.int64).astype(np.float32) / np.float32(D)  # [D/2]
    return (1.0 / (np.float32(config.rope_theta) ** exponents)).astype(np.float32)  # [D/2]


def llama3_inv_freq(config: GPTConfig) -> np.ndarray:
    """[D/2] Llama 3's frequencies (transformers' `_compute_llama3_parameters`): long wavelengths
    (beyond original_max_position_embeddings / low_freq_factor) slowed by `factor`, short ones
    (below .. / high_freq_factor) kept, the ones between blended smoothly."""
    scaling = dict(config.rope_scaling)
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_context = scaling["original_max_position_embeddings"]
    inv_freq = default_inv_freq(config)  # [D/2]
    wavelength = 2 * math.pi / inv_freq  # [D/2]
    low_freq_wavelength, high_freq_wavelength = old_context / low, old_context / high
    scaled = np.where(wavelength > low_freq_wavelength, inv_freq / factor, inv_freq)  # long waves slowed
    smooth = (old_context / wavelength - low) / (high - low)  # [D/2] 0 at the long end .. 1 at the short
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelength < high_freq_wavelength) & ~(wavelength > low_freq_wavelength)
    return np.where(medium, smoothed, scaled).astype(np.float32)  # [D/2]


def inverse_frequencies(config: GPTConfig) -> np.ndarray:
    """[D/2] the config's RoPE frequencies: llama3's when it scales them, else the default."""
    return default_inv_freq(config) if config.rope_scaling is None else llama3_inv_freq(config)


def rotary_tables(config: GPTConfig, positions) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [L, D] for `positions` [L]: angle position * inv_freq, repeated for both halves."""
    angles = np.outer(np.asarray(positions, dtype=np.float32), inverse_frequencies(config))  # [L, D/2]
    angles = np.concatenate([angles, angles], axis=-1)  # [L, D]
    return np.cos(angles), np.sin(angles)  # float32 [L, D] each


def rotate_half(x):
    """[.., D] -> [.., D]: (x1, x2) -> (-x2, x1), x1 the first half of the dims and x2 the second."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rotate(x, cos, sin):
    """x [.., H, L, D] turned pair by pair: x * cos + rotate_half(x) * sin, cos/sin [L, D]."""
    return (x * cos + rotate_half(x) * sin).astype(x.dtype, copy=False)  # [.., H, L, D]
