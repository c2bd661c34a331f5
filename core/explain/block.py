"""The rest of the block worked out number by number, from the model's own parameters and a plain
trace of the prompt (`Model.run` without interventions), in float64: one head's slice of c_attn
(Q, K, V), the heads joined and c_proj, LayerNorm of one token, the MLP of one token, the residual
stream as a sum of parts and each part's direct push on a logit (through ln_f and lm_head).
L = tokens, C = n_embd, H = n_head, D = d_head, M = d_mlp, V = vocab_size.
"""
from __future__ import annotations

import math

import numpy as np

from core.checks import choice, index, is_whole
from core.model.interventions import NO_INTERVENTIONS
from core.model.ops import ACTIVATIONS, gelu, silu
from core.model.params import block_params, output_head
from core.model.sampling import ranking


def f64(array) -> np.ndarray:
    """`array` as float64, in which every explanation computes (the model may run float32)."""
    return np.asarray(array, dtype=np.float64)


def _check_plain(trace) -> None:
    """The sums below hold for the plain model only: a trace with interventions is a ValueError."""
    if trace.interventions != NO_INTERVENTIONS:
        raise ValueError("this lesson needs a trace of the plain model (no interventions)")


def head_slices(config, head: int) -> dict[str, slice]:
    """The columns of c_attn.weight [C, 3C] that make this head's Q, K and V (D columns each)."""
    head = index(head, config.n_head, "head")
    C, D = config.n_embd, config.d_head
    return {name: slice(part * C + head * D, part * C + (head + 1) * D) for part, name in enumerate("QKV")}


def kv_head_of(config, head: int) -> int:
    """The key/value head query head `head` reads (grouped-query attention: H / Hkv query heads
    share each key/value head, head // (H / Hkv)); the head itself for GPT-2 (Hkv = H)."""
    head = index(head, config.n_head, "head")
    return head // (config.n_head // config.n_kv_head)


def kv_groups(config) -> list[list[int]]:
    """For each key/value head, the query heads that share it: [Hkv] lists of H / Hkv heads."""
    size = config.n_head // config.n_kv_head
    return [list(range(kv * size, (kv + 1) * size)) for kv in range(config.n_kv_head)]


def head_projections(params, config, layer: int, head: int, x) -> dict[str, dict[str, np.ndarray]]:
    """X [L, C] (ln_1's output) through this head's slice of c_attn (GPT-2), or (llama family)
    through query head `head`'s D rows of q_proj and its key/value head's (`kv_head_of`) D rows
    of k_proj and v_proj: for "Q", "K" and "V" the `weight` [C, D], `bias` [D] (zeros when the
    projection has none) and `out` = X @ weight + bias [L, D]. For the llama family Q and K are
    before RoPE (the trace's hook_q / hook_k); with Qwen3's q/k norms Q and K also hold `normed`
    [L, D] (out RMSNormed over D with q_norm / k_norm's weight: the trace's hook_q / hook_k)."""
    layer = index(layer, config.n_layer, "layer")
    p = block_params(params, layer)
    x = f64(x)  # [L, C]
    result = {}
    if config.family == "llama":
        D = config.d_head
        for name, projection, h in (("Q", "q_proj", index(head, config.n_head, "head")),
                                    ("K", "k_proj", kv_head_of(config, head)), ("V", "v_proj", kv_head_of(config, head))):
            rows = slice(h * D, (h + 1) * D)
            weight = f64(p[f"self_attn.{projection}.weight"][rows]).T  # [out, in] rows -> [C, D]
            bias_name = f"self_attn.{projection}.bias"
            bias = f64(p[bias_name][rows]) if bias_name in p else np.zeros(D)  # [D]
            result[name] = {"weight": weight, "bias": bias, "out": x @ weight + bias}  # [L, C] @ [C, D] -> [L, D]
            if config.qk_norm and name in "QK":  # Qwen3: each head's q and k RMSNormed over D (hook_q, hook_k)
                out = result[name]["out"]
                rms = np.sqrt((out * out).mean(axis=-1, keepdims=True) + config.layer_norm_epsilon)  # [L, 1]
                result[name]["normed"] = out / rms * f64(p[f"self_attn.{name.lower()}_norm.weight"])  # [L, D]
        return result
    for name, columns in head_slices(config, head).items():
        weight = f64(p["attn.c_attn.weight"][:, columns])  # [C, D]
        bias = f64(p["attn.c_attn.bias"][columns])  # [D]
        result[name] = {"weight": weight, "bias": bias, "out": x @ weight + bias}  # [L, C] @ [C, D] -> [L, D]
    return result


def heads_joined(params, config, layer: int, z) -> dict[str, np.ndarray]:
    """The heads' outputs z [H, L, D] joined and mapped back to C by c_proj: `merged` [L, C]
    (head h in columns h*D..(h+1)*D), `per_head` [H, L, C] (head h's z @ its D rows of c_proj),
    `bias` [C], and `out` [L, C] = merged @ c_proj + bias = the sum of per_head + bias."""
    layer = index(layer, config.n_layer, "layer")
    p = block_params(params, layer)
    z = f64(z)  # [H, L, D]
    H, L, D = z.shape
    if config.family == "llama":  # o_proj [C, H * D] in nn.Linear's [out, in]: transposed to [H * D, C]
        weight = f64(p["self_attn.o_proj.weight"]).T
        bias = f64(p["self_attn.o_proj.bias"]) if "self_attn.o_proj.bias" in p else np.zeros(weight.shape[1])
    else:
        weight = f64(p["attn.c_proj.weight"])  # [C, C]
        bias = f64(p["attn.c_proj.bias"])
    merged = np.swapaxes(z, 0, 1).reshape(L, H * D)  # [L, H * D]
    per_head = np.einsum("hld,hdc->hlc", z, weight.reshape(H, D, -1))  # [H, L, D] x [H, D, C] -> [H, L, C]
    return {"merged": merged, "per_head": per_head, "bias": bias, "out": merged @ weight + bias}


NORMS = ("ln_1", "ln_2", "ln_f")


LLAMA_NORM_NAMES = {"ln_1": "input_layernorm", "ln_2": "post_attention_layernorm"}


def norm_prefix(params, which: str, layer: int = 0) -> str:
    """The parameter prefix of the norm `which` (GPT-2's `transformer.h.{l}.ln_1.`, the llama
    family's `model.layers.{l}.input_layernorm.`, `model.norm.` for ln_f)."""
    choice(which, NORMS, "which")
    if "transformer.wte.weight" in params:
        return "transformer.ln_f." if which == "ln_f" else f"transformer.h.{layer}.{which}."
    return "model.norm." if which == "ln_f" else f"model.layers.{layer}.{LLAMA_NORM_NAMES[which]}."


def norm_input(params, trace, which: str, layer: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [L, C] entering the norm `which`, its weight [C], its bias [C]: zeros for the llama
    family's RMSNorm, which has none); `layer` is ignored for ln_f (it normalises the residual
    leaving the last block)."""
    choice(which, NORMS, "which")
    if which == "ln_f":
        x = trace.layers[-1].resid_post
    else:
        layer = index(layer, len(trace.layers), "layer")
        x = trace.layers[layer].resid_pre if which == "ln_1" else trace.layers[layer].resid_mid
    prefix = norm_prefix(params, which, layer)
    weight = f64(params[prefix + "weight"])
    bias = f64(params[prefix + "bias"]) if prefix + "bias" in params else np.zeros_like(weight)
    return f64(x), weight, bias


def rms_norm_steps(x, weight, eps: float) -> dict:
    """RMSNorm of one token's vector x [C] (the llama family's norm: no mean subtracted, no
    bias), every stage: `mean_square` = mean(x²), `rms` = sqrt(mean_square + eps),
    `normalised` = x / rms [C] (root mean square about 1), `weight` and `out` = normalised * weight."""
    x = f64(x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be one token's vector [C], got shape {x.shape}")
    mean_square = float((x * x).mean())
    rms = math.sqrt(mean_square + eps)
    normalised = x / rms  # [C]
    weight = f64(weight)
    return {"x": x, "mean_square": mean_square, "eps": eps, "rms": rms, "normalised": normalised,
            "weight": weight, "out": normalised * weight}


def norm_name(config) -> str:
    """The family's norm, as the pages name it: "RMSNorm" (llama) or "LayerNorm" (GPT-2)."""
    return "RMSNorm" if config.family == "llama" else "LayerNorm"

def layer_norm_steps(x, weight, bias, eps: float) -> dict:
    """LayerNorm of one token's vector x [C], every stage: `mean`, `centred` [C], `variance`,
    `std` = sqrt(variance + eps), `normalised` [C] (mean 0, variance about 1), `weight`, `bias`
    and `out` = normalised * weight + bias [C]."""
    x = f64(x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be one token's vector [C], got shape {x.shape}")
    mean = float(x.mean())
    centred = x - mean  # [C]
    variance = float((centred * centred).mean())
    std = math.sqrt(variance + eps)
    normalised = centred / std  # [C]
    weight, bias = f64(weight), f64(bias)
    return {"x": x, "mean": mean, "centred": centred, "variance": variance, "eps": eps, "std": std,
            "normalised": normalised, "weight": weight, "bias": bias, "out": normalised * weight + bias}


def mlp_steps(params, config, layer: int, x) -> dict[str, np.ndarray]:
    """The MLP for one token: x [C] (ln_2's output) -> `pre` = x @ c_fc + b [M] -> `post` =
    activation(pre) [M] (the config's: GELU in GPT-2's family) -> `out` = post @ c_proj + b [C];
    `top` [8]: the units that fire most."""
    layer = index(layer, config.n_layer, "layer")
    p = block_params(params, layer)
    x = f64(x)  # [C]
    if config.family == "llama":
        return swiglu_steps(p, config, x)
    pre = x @ f64(p["mlp.c_fc.weight"]) + f64(p["mlp.c_fc.bias"])  # [C] @ [C, M] -> [M]
    post = ACTIVATIONS[config.activation](pre)  # [M]
    out = post @ f64(p["mlp.c_proj.weight"]) + f64(p["mlp.c_proj.bias"])  # [M] @ [M, C] -> [C]
    return {"x": x, "pre": pre, "post": post, "out": out, "top": np.argsort(-post, kind="stable")[:8]}


def swiglu_steps(p, config, x) -> dict[str, np.ndarray]:
    """The llama family's SwiGLU MLP for one token x [C] (post_attention_layernorm's output):
    `pre` = gate(x) = x @ gate_proj.T [M], `pre_linear` = up(x) = x @ up_proj.T [M], `gate` =
    silu(pre) [M] (the config's activation), `post` = gate * up [M], `out` = post @ down_proj.T
    [C]; `top` [8]: the units with the largest post (the ones that push most, either sign
    of up considered as it comes)."""
    pre = x @ f64(p["mlp.gate_proj.weight"]).T  # [C] @ [C, M] -> [M]
    up = x @ f64(p["mlp.up_proj.weight"]).T  # [M]
    gate = ACTIVATIONS[config.activation](pre)  # [M]
    post = gate * up  # [M]
    out = post @ f64(p["mlp.down_proj.weight"]).T  # [M] @ [M, C] -> [C]
    return {"x": x, "pre": pre, "pre_linear": up, "gate": gate, "post": post, "out": out,
            "top": np.argsort(-post, kind="stable")[:8]}


def silu_curve(low: float, high: float, count: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """SiLU x * sigmoid(x) (SwiGLU's gate) sampled at `count` points from low to high: (x, y)."""
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or count < 2:
        raise ValueError(f"the curve needs low < high and at least 2 points, got {low}, {high}, {count}")
    x = np.linspace(low, high, count)
    return x, silu(x)


def gelu_curve(low: float, high: float, count: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """GELU (GPT-2's tanh form) sampled at `count` points from low to high: (x [count], y [count])."""
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or count < 2:
        raise ValueError(f"the curve needs low < high and at least 2 points, got {low}, {high}, {count}")
    x = np.linspace(low, high, count)
    return x, gelu(x)


def residual_parts(trace) -> list[tuple[str, np.ndarray]]:
    """The residual stream as a sum: (name, [L, C]) for the token embedding, the position
    embedding, then each block's attention and MLP output. They add up to the residual
    leaving the last block (the model adds each output back; no part is ever rescaled)."""
    _check_plain(trace)
    parts = [("token embedding", f64(trace.token_embeddings))]
    if trace.position_embeddings is not None:  # RoPE models add no position vector to the stream
        parts.append(("position embedding", f64(trace.position_embeddings)))
    for layer, layer_trace in enumerate(trace.layers):
        parts += [(f"attention {layer}", f64(layer_trace.attn_out)), (f"MLP {layer}", f64(layer_trace.mlp_out))]
    return parts


def logit_attribution(params, trace, token_id: int, position: int = -1) -> dict:
    """Direct logit attribution: how much each part of the residual stream pushes `token_id`'s
    logit at `position`.

    ln_f(x) = (x - mean x) / s * w + b, with s = sqrt(var x + eps) of the actual residual x
    (the trace's ln_final.hook_scale); the llama family's final RMSNorm is x / s * w with
    s = sqrt(mean(x²) + eps): no centring and a bias term of 0. Centring is linear and s is one number for the token, so
    the logit u . ln_f(x) (u = the output head's row for the token) splits exactly into one term per part,
    ((part - mean part) / s * w) . u, plus `bias_term` = b . u.
    Returns `names` [P], `contributions` [P], `bias_term`, `scale` s, `logit` (the model's own)
    and `total` (the contributions plus the bias term; equal to the logit up to rounding).
    """
    parts = residual_parts(trace)
    length = len(trace.tokens)
    position = index(position % length if is_whole(position) and position < 0 else position,
                           length, "position")
    token_id = index(token_id, trace.logits.shape[-1], "token_id")
    scale = float(trace["ln_final.hook_scale"][position, 0])
    unembed = f64(output_head(params)[token_id])  # [C] u: lm_head's row (the token's embedding when tied)
    prefix = norm_prefix(params, "ln_f")
    direction = f64(params[prefix + "weight"]) * unembed  # [C] w * u
    rms = prefix + "bias" not in params  # the llama family's RMSNorm: x / s * w, no centring, no bias
    contributions = np.array([float((part[position] - (0.0 if rms else part[position].mean())) / scale @ direction)
                              for _, part in parts])  # [P]
    bias_term = 0.0 if rms else float(f64(params[prefix + "bias"]) @ unembed)
    return {"names": [name for name, _ in parts], "contributions": contributions, "bias_term": bias_term,
            "scale": scale, "logit": float(trace.logits[position, token_id]),
            "total": float(contributions.sum() + bias_term)}


def predicted_token(trace) -> int:
    """The most likely next token's id (the lowest id among ties)."""
    return int(ranking(trace.next_token_probs)[0])
