"""The optimiser's pieces: the learning-rate schedule (linear warm-up, then a cosine down to a
tenth), which parameters decay, AdamW (decoupled weight decay) and clipping of the global gradient norm.
"""
from __future__ import annotations

import math

import numpy as np

from core.model.params import HEAD


def learning_rate(step: int, *, peak: float, warmup_steps: int, total_steps: int, final_ratio: float = 0.1) -> float:
    """Linear warm-up to `peak` over steps 1..warmup_steps, then a cosine down to final_ratio * peak
    at total_steps (steps count from 1)."""
    if step <= warmup_steps:
        return peak * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1
    return peak * (final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def decays(name: str) -> bool:
    """Whether AdamW's weight decay applies: the linear layers' matrices and lm_head, nothing else."""
    return name == HEAD or name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), updating arrays in place."""

    def __init__(self, params: dict, *, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8):
        self.weight_decay, self.betas, self.eps, self.steps = weight_decay, betas, eps, 0
        self.moments = {name: np.zeros_like(value) for name, value in params.items()}
        self.squares = {name: np.zeros_like(value) for name, value in params.items()}

    def step(self, params: dict, grads: dict, lr: float) -> None:
        """One update of every array in `grads` (a subset of the params given at construction)."""
        beta1, beta2 = self.betas
        self.steps += 1
        unbias1, unbias2 = 1.0 - beta1**self.steps, 1.0 - beta2**self.steps
        for name, grad in grads.items():
            param, moment, square = params[name], self.moments[name], self.squares[name]
            moment *= beta1
            moment += (1.0 - beta1) * grad
            square *= beta2
            square += (1.0 - beta2) * grad * grad
            if self.weight_decay and decays(name):
                param *= 1.0 - lr * self.weight_decay
            param -= lr * (moment / unbias1) / (np.sqrt(square / unbias2) + self.eps)


def clip_gradients(grads: dict, max_norm: float) -> float:
    """Scale every gradient in place so that their global L2 norm is at most max_norm;
    returns the norm before clipping (inf or nan when a gradient is not finite)."""
    norm = math.sqrt(sum(float(np.vdot(grad, grad)) for grad in grads.values()))
    if math.isfinite(norm) and norm > max_norm:
        for grad in grads.values():
            grad *= max_norm / norm
    return norm
