"""The small operations a block is made of, in NumPy: LayerNorm and RMSNorm, the linear layer
(GPT-2's Conv1D layout and nn.Linear's), heads split and merged, and the MLP activations configs
name (`activation_function`, `hidden_act`).
The C layer kernels (core.native.layers) run the float32 cases; the NumPy bodies stay the reference.
"""
from __future__ import annotations

import math

import numpy as np

from core.native import layers
from core.native.parallel import matmul

GELU_COEFF = 0.044715  # the cubic term of GELU's tanh approximation
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def layer_norm(x, weight, bias, eps):
    """LayerNorm over the last axis: (normalised x * weight + bias, sqrt(var + eps)).
    The C kernel (core.native.layers) for float32, else the NumPy reference below."""
    if layers.fits(x, weight, bias):
        return layers.layer_norm(x, weight, bias, eps)
    return layer_norm_numpy(x, weight, bias, eps)


def layer_norm_numpy(x, weight, bias, eps):
    """The NumPy reference of layer_norm."""
    centred = x - x.mean(axis=-1, keepdims=True)  # [.., L, C]
    scale = np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)  # [.., L, 1]
    return centred / scale * weight + bias, scale  # [.., L, C], [.., L, 1]


def rms_norm(x, weight, eps):
    """RMSNorm over the last axis, as Hugging Face's LlamaRMSNorm (in float32, or float64 for
    float64 input): (x / sqrt(mean(x^2) + eps) * weight, sqrt(mean(x^2) + eps))."""
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)
    scale = np.sqrt((x * x).mean(axis=-1, keepdims=True) + x.dtype.type(eps))  # [.., L, 1]
    return (x / scale * weight).astype(x.dtype, copy=False), scale  # [.., L, C], [.., L, 1]


def linear_out_in(x, weight, bias=None):
    """x @ weight.T (+ bias), nn.Linear's layout (the llama family's): weight [out, in]."""
    out = matmul(x, weight.T)  # [.., L, in] @ [in, out] -> [.., L, out], a new array
    if bias is not None:
        out += bias
    return out


def swiglu(gate, up):
    """The SwiGLU MLP's hidden: silu(gate) * up, [.., L, M]."""
    return silu(gate) * up


def linear(x, weight, bias):
    """x @ weight + bias, GPT-2's Conv1D layout: weight [in, out]."""
    out = matmul(x, weight)  # [.., L, in] @ [in, out] -> [.., L, out], a new array
    out += bias
    return out


def split_heads(x, n_head):
    """[.., L, C] -> [.., H, L, D]."""
    *lead, length, width = x.shape
    return np.swapaxes(x.reshape(*lead, length, n_head, width // n_head), -2, -3)


def merge_heads(x):
    """[.., H, L, D] -> [.., L, C]."""
    *lead, n_head, length, d_head = x.shape
    return np.swapaxes(x, -2, -3).reshape(*lead, length, n_head * d_head)


def erf(x):
    """The error function, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7)."""
    sign, a = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x):
    """GELU, the tanh approximation GPT-2 uses ("gelu_new"): the C kernel (core.native.layers)
    for float32, else the NumPy reference below."""
    if layers.fits(x):
        return layers.gelu(x)
    return gelu_numpy(x)


def gelu_numpy(x):
    """The NumPy reference of gelu."""
    return 0.5 * x * (1.0 + np.tanh(SQRT_2_OVER_PI * (x + GELU_COEFF * (x * x * x))))  # not x**3: NumPy's pow is ~250x slower


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
