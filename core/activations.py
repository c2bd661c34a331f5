"""The MLP activations GPT-2-family configs name (`activation_function`), in NumPy.

Names and formulas are transformers' (`transformers.activations.ACT2FN`): "gelu" is the exact
erf GELU, "gelu_new" (GPT-2's own) and its aliases the tanh approximation.
"""
from __future__ import annotations

import math

import numpy as np

from core import layer_kernels


def erf(x):
    """The error function, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7)."""
    sign, a = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x):
    """GELU, the tanh approximation GPT-2 uses ("gelu_new"): the C kernel (core.layer_kernels)
    for float32, else the NumPy reference below."""
    if layer_kernels.fits(x):
        return layer_kernels.gelu(x)
    return gelu_numpy(x)


def gelu_numpy(x):
    """The NumPy reference of gelu."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))))  # not x**3: NumPy's pow is ~250x slower


def gelu_exact(x):
    """GELU with the error function ("gelu")."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def relu(x):
    return np.maximum(x, 0.0)


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def silu(x):
    return x * sigmoid(x)


ACTIVATIONS = {
    "gelu_new": gelu, "gelu_pytorch_tanh": gelu, "gelu_fast": gelu, "gelu_accurate": gelu,
    "gelu_python_tanh": gelu,
    "gelu": gelu_exact, "gelu_python": gelu_exact,
    "gelu_10": lambda x: np.clip(gelu_exact(x), -10.0, 10.0),
    "quick_gelu": lambda x: x * sigmoid(1.702 * x),
    "relu": relu, "relu2": lambda x: relu(x) ** 2, "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
    "silu": silu, "swish": silu, "sigmoid": sigmoid, "tanh": np.tanh,
    "hardswish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
    "linear": lambda x: x,
}
