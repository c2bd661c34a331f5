"""The model's parameters: names and shapes per family, GPT-2's initialisation, validation.

Parameters are a plain dict keyed by Hugging Face's names, in Hugging Face's layouts:
  gpt2   `transformer.h.0.attn.c_attn.weight`, ..., GPT-2's Conv1D layout (weights [in, out]).
  llama  `model.layers.0.self_attn.q_proj.weight`, ..., nn.Linear's layout (weights [out, in]),
         exactly as llama / qwen2 / qwen3 / mistral checkpoints store them.
A tied model (`config.tied`) has no `lm_head.weight`: its output head is the token embedding
itself (shared, not copied). `init_params` is GPT-2's only (Glassbox trains GPT-2-style models).
"""
from __future__ import annotations

import math

import numpy as np

from core.model.config import GPTConfig

INIT_STD = 0.02  # GPT-2's initializer_range
WTE, HEAD = "transformer.wte.weight", "lm_head.weight"
EMBED = "model.embed_tokens.weight"  # the llama family's token embedding


def block_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """One block's parameters under short names ("ln_1.weight", "attn.c_attn.bias", ...)."""
    C, M = config.n_embd, config.d_mlp
    return {
        "ln_1.weight": (C,), "ln_1.bias": (C,),
        "attn.c_attn.weight": (C, 3 * C), "attn.c_attn.bias": (3 * C,),
        "attn.c_proj.weight": (C, C), "attn.c_proj.bias": (C,),
        "ln_2.weight": (C,), "ln_2.bias": (C,),
        "mlp.c_fc.weight": (C, M), "mlp.c_fc.bias": (M,),
        "mlp.c_proj.weight": (M, C), "mlp.c_proj.bias": (C,),
    }


def llama_block_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """One llama-family block's parameters under short names ("self_attn.q_proj.weight", ...);
    weights [out, in]. Hkv * D wide keys and values (grouped-query attention)."""
    C, M, H, Hkv, D = config.n_embd, config.d_mlp, config.n_head, config.n_kv_head, config.head_dim
    shapes = {"input_layernorm.weight": (C,),
              "self_attn.q_proj.weight": (H * D, C), "self_attn.k_proj.weight": (Hkv * D, C),
              "self_attn.v_proj.weight": (Hkv * D, C), "self_attn.o_proj.weight": (C, H * D)}
    if config.attention_bias:
        shapes.update({"self_attn.q_proj.bias": (H * D,), "self_attn.k_proj.bias": (Hkv * D,),
                       "self_attn.v_proj.bias": (Hkv * D,)})
    if config.attention_out_bias:
        shapes["self_attn.o_proj.bias"] = (C,)
    if config.qk_norm:
        shapes.update({"self_attn.q_norm.weight": (D,), "self_attn.k_norm.weight": (D,)})
    shapes.update({"post_attention_layernorm.weight": (C,), "mlp.gate_proj.weight": (M, C),
                   "mlp.up_proj.weight": (M, C), "mlp.down_proj.weight": (C, M)})
    return shapes


def param_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's Hugging Face name and shape, in a fixed order (no lm_head when tied)."""
    C, V = config.n_embd, config.vocab_size
    if config.family == "llama":
        shapes = {EMBED: (V, C)}
        for layer in range(config.n_layer):
            shapes.update({f"model.layers.{layer}.{name}": shape for name, shape in llama_block_shapes(config).items()})
        shapes["model.norm.weight"] = (C,)
        if not config.tied:
            shapes[HEAD] = (V, C)
        return shapes
    shapes = {WTE: (V, C), "transformer.wpe.weight": (config.n_positions, C)}
    for layer in range(config.n_layer):
        shapes.update({f"transformer.h.{layer}.{name}": shape for name, shape in block_shapes(config).items()})
    shapes.update({"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)})
    if not config.tied:
        shapes[HEAD] = (V, C)
    return shapes


def token_embedding(params: dict) -> np.ndarray:
    """The token embedding [V, C]: GPT-2's wte or the llama family's embed_tokens."""
    return params[WTE] if WTE in params else params[EMBED]


def output_head(params: dict) -> np.ndarray:
    """The output head [V, C]: params[HEAD], or the token embedding itself when tied."""
    return params[HEAD] if HEAD in params else token_embedding(params)


def init_params(config: GPTConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """GPT-2's initialisation in float32: weights ~ N(0, 0.02), residual projections
    (c_proj) scaled by 1/sqrt(2 * n_layer), biases 0, LayerNorm weights 1. GPT-2 family only."""
    if config.family != "gpt2":
        raise ValueError(f"init_params initialises GPT-2-family models only; this config is {config.model_type!r}")
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(".bias"):
            value = np.zeros(shape)
        elif ".ln_" in name:
            value = np.ones(shape)
        elif name.endswith("c_proj.weight"):
            value = rng.normal(0.0, INIT_STD / math.sqrt(2 * config.n_layer), shape)
        else:
            value = rng.normal(0.0, INIT_STD, shape)
        params[name] = value.astype(np.float32)
    return params


def check_params(params, config: GPTConfig) -> None:
    """ValueError/TypeError unless `params` has exactly the right names, shapes, one float
    dtype (float32 or float64) and only finite values."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
    expected = param_shapes(config)
    missing, extra = sorted(expected.keys() - params.keys()), sorted(params.keys() - expected.keys())
    if missing or extra:
        raise ValueError(f"parameters do not match the config: missing {missing[:5]}, unexpected {extra[:5]}"
                         f"{' (and more)' if len(missing) > 5 or len(extra) > 5 else ''}")
    dtypes = set()
    for name, shape in expected.items():
        value = params[name]
        if not isinstance(value, np.ndarray):
            raise TypeError(f"parameter {name} must be a NumPy array, got {type(value).__name__}")
        if value.dtype not in (np.float32, np.float64):
            raise TypeError(f"parameter {name} must be float32 or float64, got {value.dtype}")
        if value.shape != shape:
            raise ValueError(f"parameter {name} has shape {value.shape}, the config needs {shape}")
        if value.size and not (np.isfinite(value.min()) and np.isfinite(value.max())):  # NaN/inf, no temporary
            raise ValueError(f"parameter {name} holds NaN or infinite values")
        dtypes.add(value.dtype)
    if len(dtypes) > 1:
        raise TypeError(f"parameters mix dtypes {sorted(map(str, dtypes))}; use one (float32 or float64)")


def block_params(params: dict, layer: int) -> dict[str, np.ndarray]:
    """One block's parameters under short names ("ln_1.weight", "attn.c_attn.bias", ...;
    the llama family's "self_attn.q_proj.weight", ...)."""
    prefix = f"transformer.h.{layer}." if WTE in params else f"model.layers.{layer}."
    return {name[len(prefix):]: value for name, value in params.items() if name.startswith(prefix)}
