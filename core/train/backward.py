"""Backpropagation through the forward pass of core.model.forward, written out in NumPy.

Each layer function takes the gradient arriving at its output plus what the forward pass
computed, and returns the gradients of its input and of its parameters. `gpt_backward`
chains them from the logits down to the embeddings, reading everything it needs from the
cache `gpt_forward` fills (TransformerLens hook names), including the dropout keep-masks.
The attention core is `core.model.attention.attention_backward` (the C kernel, or NumPy); GELU,
LayerNorm, softmax + cross-entropy and the embedding gradient take core.native.layers' C
kernels for float32 (the *_numpy functions here are their reference). Each linear layer's two
products (d_x and d_weight) run at once on two cores (core.native.parallel.beside): each is one
single-threaded BLAS call, so the result does not depend on the timing.
It differentiates the plain model: a cache recorded with interventions is not supported.

Shapes as in core.model.forward: L positions, C = n_embd, H heads, D = d_head, M = d_mlp,
V = vocab; `..` is an optional batch dim. Gradients come back in the parameters' dtype.
"""
from __future__ import annotations

import numpy as np

from core.model.attention import attention_backward
from core.model.ops import GELU_COEFF, SQRT_2_OVER_PI, merge_heads, split_heads
from core.model.params import HEAD, block_params
from core.native import layers
from core.native.parallel import beside


def softmax_cross_entropy(logits, targets):
    """Mean cross-entropy of next-token logits [.., L, V] against int targets [.., L].

    Returns (loss as a float, d_loss/d_logits [.., L, V]): the C kernel for float32, else NumPy."""
    if layers.fits(logits):
        return layers.softmax_cross_entropy(logits, targets)
    return softmax_cross_entropy_numpy(logits, targets)


def softmax_cross_entropy_numpy(logits, targets):
    """The NumPy reference of softmax_cross_entropy."""
    flat_logits = logits.reshape(-1, logits.shape[-1])  # [N, V]
    flat_targets = targets.reshape(-1)  # [N]
    rows = np.arange(flat_targets.size)
    shifted = flat_logits - flat_logits.max(axis=-1, keepdims=True)  # max 0: exp cannot overflow
    exps = np.exp(shifted)  # [N, V]
    totals = exps.sum(axis=-1, keepdims=True)  # [N, 1]
    loss = -float((shifted[rows, flat_targets] - np.log(totals[:, 0])).mean())
    d_logits = exps
    d_logits /= totals  # softmax
    d_logits[rows, flat_targets] -= 1.0
    d_logits /= flat_targets.size
    return loss, d_logits.reshape(logits.shape)


def linear_backward(d_out, x, weight):
    """y = x @ weight + bias with x [.., n_in], weight [n_in, n_out]: (d_x, d_weight, d_bias)."""
    flat_x = x.reshape(-1, x.shape[-1])  # [N, n_in]
    flat_d_out = d_out.reshape(-1, d_out.shape[-1])  # [N, n_out]; flat: one BLAS call, not one per batch row
    d_weight = beside(np.matmul, flat_x.T, flat_d_out)  # [n_in, N] @ [N, n_out] -> [n_in, n_out], on another core
    d_x = (flat_d_out @ weight.T).reshape(x.shape)  # [N, n_out] @ [n_out, n_in] -> [N, n_in] -> [.., n_in]
    d_bias = flat_d_out.sum(axis=0)  # [n_out]
    return d_x, d_weight.result(), d_bias


def layer_norm_backward(d_out, x, weight, eps):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis: (d_x, d_weight, d_bias).

    The mean and the scale are recomputed from the input x [.., C]. The C kernel for float32, else NumPy."""
    if layers.fits(d_out, x, weight):
        return layers.layer_norm_backward(d_out, x, weight, eps)
    return layer_norm_backward_numpy(d_out, x, weight, eps)


def layer_norm_backward_numpy(d_out, x, weight, eps):
    """The NumPy reference of layer_norm_backward."""
    centred = x - x.mean(axis=-1, keepdims=True)  # [.., C]
    inv_scale = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)  # [.., 1]
    normalized = centred * inv_scale  # [.., C]
    flat_d_out = d_out.reshape(-1, d_out.shape[-1])  # [N, C]
    d_weight = (flat_d_out * normalized.reshape(flat_d_out.shape)).sum(axis=0)
    d_bias = flat_d_out.sum(axis=0)
    d_normalized = d_out * weight  # [.., C]
    d_x = inv_scale * (d_normalized
                       - d_normalized.mean(axis=-1, keepdims=True)
                       - normalized * (d_normalized * normalized).mean(axis=-1, keepdims=True))
    return d_x, d_weight, d_bias


def gelu_backward(d_out, x):
    """d_x = d_out * gelu'(x) for GELU's tanh approximation: the C kernel for float32, else NumPy."""
    if layers.fits(d_out, x):
        return layers.gelu_backward(d_out, x)
    return gelu_backward_numpy(d_out, x)


def gelu_backward_numpy(d_out, x):
    """The NumPy reference: d_x for GELU's tanh approximation 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3):

    d_x = d_out * 0.5 ((1 + tanh(u)) + x (1 - tanh(u)^2) u'), with u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    Written in place on two buffers, with tanh (never exp, which is slow where it overflows)."""
    x_squared = x * x  # [.., M]
    tanh_u = GELU_COEFF * x_squared
    tanh_u += 1.0
    tanh_u *= x
    tanh_u *= SQRT_2_OVER_PI  # u
    np.tanh(tanh_u, out=tanh_u)
    slope = tanh_u * tanh_u
    np.subtract(1.0, slope, out=slope)  # 1 - tanh(u)^2
    slope *= x
    x_squared *= 3.0 * GELU_COEFF
    x_squared += 1.0
    x_squared *= SQRT_2_OVER_PI  # u'
    slope *= x_squared
    tanh_u += 1.0
    slope += tanh_u
    slope *= 0.5
    slope *= d_out
    return slope


def embedding_backward(d_out, ids, table_rows):
    """d_table [table_rows, C] for rows looked up as table[ids] with d_out [.., L, C] (C kernel for float32)."""
    if layers.fits(d_out):
        return layers.embedding_backward(d_out, ids, table_rows)
    return embedding_backward_numpy(d_out, ids, table_rows)


def embedding_backward_numpy(d_out, ids, table_rows):
    """The NumPy reference of embedding_backward."""
    d_table = np.zeros((table_rows, d_out.shape[-1]), dtype=d_out.dtype)
    np.add.at(d_table, ids.reshape(-1), d_out.reshape(-1, d_out.shape[-1]))  # repeated ids add up
    return d_table


def lm_head_weight_gradient(d_logits, final_normalized):
    """d_lm_head [V, C] alone (head-mode training needs nothing else), for logits = x @ lm_head.T."""
    flat_d_logits = d_logits.reshape(-1, d_logits.shape[-1])  # [N, V]
    return flat_d_logits.T @ final_normalized.reshape(-1, final_normalized.shape[-1])  # [V, N] @ [N, C] -> [V, C]


def lm_head_backward(d_logits, final_normalized, lm_head):
    """logits = x @ lm_head.T with x [.., L, C], lm_head [V, C]: (d_x, d_lm_head)."""
    d_lm_head = beside(lm_head_weight_gradient, d_logits, final_normalized)  # on another core
    d_x = d_logits.reshape(-1, d_logits.shape[-1]) @ lm_head  # [N, V] @ [V, C] -> [N, C]
    return d_x.reshape(final_normalized.shape), d_lm_head.result()  # [.., L, C], [V, C]


def _undo_dropout(d_out, cache, name):
    """The gradient before a dropout whose scaled keep-mask the forward stored under `name`."""
    keep = cache.get(name)
    return d_out if keep is None else d_out * keep


def attention_layer_backward(d_attn_out, p, config, cache, layer):
    """Back through c_proj, the attention core and c_attn: (d_ln1_out, grads by short name)."""
    name = f"blocks.{layer}.attn"
    z = cache[f"{name}.hook_z"]  # [.., H, L, D]
    d_merged, d_proj_w, d_proj_b = linear_backward(d_attn_out, merge_heads(z), p["attn.c_proj.weight"])
    d_z = split_heads(d_merged, config.n_head)  # [.., L, C] -> [.., H, L, D]
    d_q, d_k, d_v = attention_backward(
        d_z, cache[f"{name}.hook_q"], cache[f"{name}.hook_k"], cache[f"{name}.hook_v"],
        cache[f"{name}.hook_pattern"], scale=config.attention_scale)  # 3 x [.., H, L, D]
    d_qkv = np.concatenate([merge_heads(d_q), merge_heads(d_k), merge_heads(d_v)], axis=-1)  # [.., L, 3C]
    d_ln1, d_attn_w, d_attn_b = linear_backward(d_qkv, cache[f"blocks.{layer}.ln1.hook_normalized"],
                                                p["attn.c_attn.weight"])
    grads = {"attn.c_attn.weight": d_attn_w, "attn.c_attn.bias": d_attn_b,
             "attn.c_proj.weight": d_proj_w, "attn.c_proj.bias": d_proj_b}
    return d_ln1, grads


def mlp_backward(d_mlp_out, p, cache, layer):
    """Back through c_proj, GELU and c_fc: (d_ln2_out, grads by short name)."""
    name = f"blocks.{layer}.mlp"
    d_post, d_proj_w, d_proj_b = linear_backward(d_mlp_out, cache[f"{name}.hook_post"], p["mlp.c_proj.weight"])
    d_pre = gelu_backward(d_post, cache[f"{name}.hook_pre"])  # [.., L, M]
    d_ln2, d_fc_w, d_fc_b = linear_backward(d_pre, cache[f"blocks.{layer}.ln2.hook_normalized"],
                                            p["mlp.c_fc.weight"])
    grads = {"mlp.c_fc.weight": d_fc_w, "mlp.c_fc.bias": d_fc_b,
             "mlp.c_proj.weight": d_proj_w, "mlp.c_proj.bias": d_proj_b}
    return d_ln2, grads


def block_backward(d_resid_post, params, config, cache, layer):
    """One block, from d(resid_post) to d(resid_pre); grads under full GPT-2 names."""
    p, name, eps = block_params(params, layer), f"blocks.{layer}", config.layer_norm_epsilon
    d_mlp_out = _undo_dropout(d_resid_post, cache, f"{name}.hook_mlp_dropout")
    d_ln2, grads = mlp_backward(d_mlp_out, p, cache, layer)
    d_mid, grads["ln_2.weight"], grads["ln_2.bias"] = layer_norm_backward(
        d_ln2, cache[f"{name}.hook_resid_mid"], p["ln_2.weight"], eps)
    d_mid += d_resid_post  # the residual path
    d_attn_out = _undo_dropout(d_mid, cache, f"{name}.hook_attn_dropout")
    d_ln1, attn_grads = attention_layer_backward(d_attn_out, p, config, cache, layer)
    grads.update(attn_grads)
    d_pre, grads["ln_1.weight"], grads["ln_1.bias"] = layer_norm_backward(
        d_ln1, cache[f"{name}.hook_resid_pre"], p["ln_1.weight"], eps)
    d_pre += d_mid
    return d_pre, {f"transformer.h.{layer}.{short}": grad for short, grad in grads.items()}


def _check_backward_inputs(config, cache, d_logits) -> None:
    needed = ["hook_tokens", "ln_final.hook_normalized", f"blocks.{config.n_layer - 1}.hook_resid_post"]
    missing = [name for name in needed if name not in cache]
    if missing:
        raise ValueError(f"the cache lacks {missing}: pass the dict that gpt_forward(..., cache=...) filled")
    expected = (*cache["hook_tokens"].shape, config.vocab_size)
    if np.shape(d_logits) != expected:
        raise ValueError(f"d_logits must have the logits' shape {expected}, got {np.shape(d_logits)}")


def gpt_backward(params, config, cache, d_logits):
    """Gradients of every parameter (a dict with the params' keys and shapes) given
    d_loss/d_logits [.., L, V] and the cache of the `gpt_forward` call that made the logits."""
    _check_backward_inputs(config, cache, d_logits)
    grads = {}
    d_final, grads[HEAD] = lm_head_backward(d_logits, cache["ln_final.hook_normalized"], params[HEAD])
    d_x, grads["transformer.ln_f.weight"], grads["transformer.ln_f.bias"] = layer_norm_backward(
        d_final, cache[f"blocks.{config.n_layer - 1}.hook_resid_post"], params["transformer.ln_f.weight"],
        config.layer_norm_epsilon)
    for layer in reversed(range(config.n_layer)):
        d_x, block_grads = block_backward(d_x, params, config, cache, layer)
        grads.update(block_grads)
    d_embed = _undo_dropout(d_x, cache, "hook_embed_dropout")  # [.., L, C]
    grads["transformer.wte.weight"] = embedding_backward(d_embed, cache["hook_tokens"], config.vocab_size)
    length, width = d_embed.shape[-2:]
    grads["transformer.wpe.weight"] = np.zeros((config.n_positions, width), dtype=d_embed.dtype)
    grads["transformer.wpe.weight"][:length] = d_embed.reshape(-1, length, width).sum(axis=0)  # [L, C]
    return {name: grads[name].astype(params[name].dtype, copy=False) for name in params}
