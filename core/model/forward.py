"""The GPT-2-style forward pass in NumPy, read top to bottom like picoGPT.

Parameters are a plain dict keyed by GPT-2's Hugging Face names (core.model.params; a tied
model's output head is its token embedding). The MLP's activation is the config's
(core.model.ops.ACTIVATIONS). `gpt_forward` is the one forward pass: inference, the trace,
interventions, training (with dropout) and KV-cache decoding all run it. Shapes: L = sequence
length, C = n_embd, H = n_head, D = d_head = C / H, M = d_mlp (4C unless n_inner says otherwise),
V = vocab_size; `..` is an optional batch dim.

When `cache` is a dict, `gpt_forward` fills it with every intermediate under
TransformerLens's hook names, batch dim kept when ids is 2-D:
    hook_tokens [.., L]             the token ids (int64; the backward pass needs them for wte)
    hook_embed [.., L, C]           token embeddings (wte rows)
    hook_pos_embed [L, C]           position embeddings (wpe rows)
    hook_embed_dropout [.., L, C]   scaled keep-mask on the embedding sum (only when dropout > 0)
  per block l (prefix blocks.{l}.):
    hook_resid_pre [.., L, C]       residual entering the block (after embedding dropout for l = 0)
    ln1.hook_scale [.., L, 1]       LayerNorm's sqrt(var + eps)  (absent when that LN is skipped)
    ln1.hook_normalized [.., L, C]  ln_1 output (after its weight and bias)
    attn.hook_q [.., H, L, D]       head-first (TransformerLens uses [pos, head, d_head])
    attn.hook_k, attn.hook_v [.., H, Lk, D]   every key/value attended to (with a KV cache:
                                    the cached ones then the new ones, so Lk = past + L)
    attn.hook_attn_scores [.., H, L, Lk]  q.k * scale, -inf where the mask hides a key
    attn.hook_pattern [.., H, L, Lk]      attention weights (from the attention call itself)
    attn.hook_z [.., H, L, D]       per-head outputs (zeroed for heads an intervention zeroes)
    hook_attn_out [.., L, C]        after c_proj, before dropout
    hook_attn_dropout [.., L, C]    scaled keep-mask on attn_out (only when dropout > 0)
    hook_resid_mid [.., L, C]
    ln2.hook_scale, ln2.hook_normalized
    mlp.hook_pre [.., L, M]         before the activation;  mlp.hook_post [.., L, M] after it
    hook_mlp_out [.., L, C]         after c_proj, before dropout
    hook_mlp_dropout [.., L, C]     (only when dropout > 0)
    hook_resid_post [.., L, C]
  ln_final.hook_scale [.., L, 1], ln_final.hook_normalized [.., L, C]
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.checks import is_number
from core.model.attention import causal_mask, scaled_dot_product_attention
from core.model.config import GPTConfig
from core.model.interventions import NO_INTERVENTIONS
from core.model.ops import (
    ACTIVATIONS,
    layer_norm,
    linear,
    merge_heads,
    relu,
    split_heads,
)
from core.model.params import block_params, output_head
from core.native.parallel import matmul


def masked_scores(q, k, scale, causal):
    """q.k * scale with -inf where the causal mask hides a key: [.., H, L, Lk] (for display)."""
    scores = q @ np.swapaxes(k, -1, -2) * scale  # [.., H, L, D] @ [.., H, D, Lk] -> [.., H, L, Lk]
    if causal:
        scores = np.where(causal_mask(q.shape[-2], k.shape[-2]), scores, -np.inf)
    return scores


@dataclass
class KVCache:
    """The keys and values of every token processed so far, per layer [.., H, T, D].

    Pass one (empty at first) to `gpt_forward(..., kv_cache=...)`: new tokens take the
    positions after the cached ones, attend to cached and new keys, and are appended.
    """

    keys: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[-2] if self.keys else 0

    def extend(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append one layer's new k, v [.., H, L, D]; return all of them [.., H, T + L, D]."""
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer] = np.concatenate([self.keys[layer], k], axis=-2)  # [.., H, T + L, D]
            self.values[layer] = np.concatenate([self.values[layer], v], axis=-2)
        return self.keys[layer], self.values[layer]


def attention(x, p, config, layer, hooks, interventions, kv_cache):
    """Multi-head causal self-attention: [.., L, C] -> [.., L, C]."""
    name = f"blocks.{layer}.attn"
    qkv = linear(x, p["attn.c_attn.weight"], p["attn.c_attn.bias"])  # [.., L, C] -> [.., L, 3C]
    q, k, v = (np.ascontiguousarray(split_heads(part, config.n_head))  # the kernel (and the backward's) reads
               for part in np.split(qkv, 3, axis=-1))  # them contiguous: copied once, here. 3 x [.., H, L, D]
    if kv_cache is not None:
        k, v = kv_cache.extend(layer, k, v)  # [.., H, Lk, D] with Lk = past + L
    scale = config.attention_scale if interventions.scale_scores else 1.0
    z, weights = scaled_dot_product_attention(
        q, k, v, causal=interventions.causal, scale=scale, return_weights=True)  # [.., H, L, D], [.., H, L, Lk]
    zeroed, zeroed_by_row = interventions.zeroed_heads(layer, config.n_head)
    if zeroed or zeroed_by_row:
        z = z.copy()
        z[..., zeroed, :, :] = 0.0
        for row, head in zeroed_by_row:
            z[row, head] = 0.0  # [B, H, L, D]: this row's head
    hooks[f"{name}.hook_q"], hooks[f"{name}.hook_k"], hooks[f"{name}.hook_v"] = q, k, v
    hooks[f"{name}.hook_pattern"], hooks[f"{name}.hook_z"] = weights, z
    if hooks.scores:
        hooks[f"{name}.hook_attn_scores"] = masked_scores(q, k, scale, interventions.causal)
    return linear(merge_heads(z), p["attn.c_proj.weight"], p["attn.c_proj.bias"])  # [.., L, C] @ [C, C] -> [.., L, C]


def mlp(x, p, config, layer, hooks, interventions):
    """The feed-forward net: [.., L, C] -> [.., L, M] -> activation -> [.., L, C]."""
    pre = linear(x, p["mlp.c_fc.weight"], p["mlp.c_fc.bias"])  # [.., L, C] @ [C, M] -> [.., L, M]
    activation = relu if interventions.activation == "relu" else ACTIVATIONS[config.activation]
    post = activation(pre)  # [.., L, M]
    hooks[f"blocks.{layer}.mlp.hook_pre"], hooks[f"blocks.{layer}.mlp.hook_post"] = pre, post
    return linear(post, p["mlp.c_proj.weight"], p["mlp.c_proj.bias"])  # [.., L, M] @ [M, C] -> [.., L, C]


def norm(x, p, which, config, layer, hooks, interventions):
    """The block's LayerNorm `which` ("ln_1" or "ln_2"), or x itself when skipped."""
    hook = f"blocks.{layer}.{which.replace('_', '')}"  # ln_1 -> blocks.{l}.ln1
    if (layer, which) in interventions.skip_ln:
        out = x
    else:
        out, hooks[f"{hook}.hook_scale"] = layer_norm(x, p[f"{which}.weight"], p[f"{which}.bias"],
                                                      config.layer_norm_epsilon)
    hooks[f"{hook}.hook_normalized"] = out  # [.., L, C]
    return out


def block(x, p, config, layer, hooks, interventions, dropout, kv_cache):
    """One pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x))."""
    name = f"blocks.{layer}"
    hooks[f"{name}.hook_resid_pre"] = x  # [.., L, C]
    h = norm(x, p, "ln_1", config, layer, hooks, interventions)
    attn_out = hooks[f"{name}.hook_attn_out"] = attention(h, p, config, layer, hooks, interventions, kv_cache)
    attn_out = dropout(attn_out, f"{name}.hook_attn_dropout")
    x = attn_out if (layer, "attn") in interventions.skip_residual else x + attn_out  # [.., L, C]
    hooks[f"{name}.hook_resid_mid"] = x
    h = norm(x, p, "ln_2", config, layer, hooks, interventions)
    mlp_out = hooks[f"{name}.hook_mlp_out"] = mlp(h, p, config, layer, hooks, interventions)
    mlp_out = dropout(mlp_out, f"{name}.hook_mlp_dropout")
    x = mlp_out if (layer, "mlp") in interventions.skip_residual else x + mlp_out  # [.., L, C]
    hooks[f"{name}.hook_resid_post"] = x
    return x


class _Hooks:
    """Where the forward pass records intermediates: into the caller's dict, or nowhere.
    `scores`: whether the masked attention scores, which only a display reads, are recorded too."""

    def __init__(self, target: dict | None, scores: bool = True):
        self.target, self.recording = target, target is not None
        self.scores = self.recording and scores

    def __setitem__(self, name, value):
        if self.recording:
            self.target[name] = value


def make_dropout(rate: float, rng, hooks):
    """A function (x, hook name) -> x times a fresh scaled keep-mask (stored under the name);
    the identity when rate is 0."""
    if not (is_number(rate) and 0.0 <= rate < 1.0):
        raise ValueError(f"dropout must be a number in [0, 1), got {rate!r}")
    if rate == 0.0:
        return lambda x, name: x
    if not isinstance(rng, np.random.Generator):
        raise TypeError("dropout > 0 needs rng, a numpy.random.Generator")

    def dropout(x, name):
        scale = x.dtype.type(1.0) / x.dtype.type(1.0 - rate)  # rounded as x's dtype, like x
        keep = (rng.random(x.shape) >= rate) * scale  # same shape as x: 0 or 1 / (1 - rate)
        hooks[name] = keep
        return x * keep

    return dropout


def check_ids(ids, config: GPTConfig, start: int = 0) -> np.ndarray:
    """`ids` as an integer array [L] or [B, L] with 1 <= start + L <= n_positions and every id
    in 0..vocab_size-1; TypeError/ValueError otherwise."""
    try:
        array = np.asarray(ids)
    except ValueError:
        raise ValueError("token ids must be a rectangular [L] or [B, L] array") from None
    if array.ndim not in (1, 2):
        raise ValueError(f"token ids must be [L] or [B, L], got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"token ids must not be empty, got shape {array.shape}")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"token ids must be integers, got dtype {array.dtype}")
    if start + array.shape[-1] > config.n_positions:
        raise ValueError(f"{start + array.shape[-1]} tokens do not fit the context of "
                         f"{config.n_positions} positions (n_positions)")
    if array.min() < 0 or array.max() >= config.vocab_size:
        raise ValueError(f"token ids must be in 0..{config.vocab_size - 1}, got {array.min()}..{array.max()}")
    return array.astype(np.int64, copy=False)


def final_features(params, config, ids, *, cache=None, interventions=None, dropout=0.0, rng=None, kv_cache=None,
                   record_scores=True):
    """The forward pass up to the output head: ids [L] or [B, L] -> the final LayerNorm's output
    [.., L, C]. The arguments are gpt_forward's."""
    interventions = NO_INTERVENTIONS if interventions is None else interventions
    start = 0 if kv_cache is None else kv_cache.length
    ids = check_ids(ids, config, start)
    interventions.check(config, ids.shape)
    hooks = _Hooks(cache, record_scores)
    drop = make_dropout(dropout, rng, hooks)
    hooks["hook_tokens"] = ids  # [.., L]
    token_embed = hooks["hook_embed"] = params["transformer.wte.weight"][ids]  # [.., L] -> [.., L, C]
    pos_embed = hooks["hook_pos_embed"] = params["transformer.wpe.weight"][start:start + ids.shape[-1]]  # [L, C]
    x = drop(token_embed + pos_embed, "hook_embed_dropout")  # [.., L, C]
    for layer in range(config.n_layer):
        x = block(x, block_params(params, layer), config, layer, hooks, interventions, drop, kv_cache)
    x, hooks["ln_final.hook_scale"] = layer_norm(x, params["transformer.ln_f.weight"],
                                                 params["transformer.ln_f.bias"], config.layer_norm_epsilon)
    hooks["ln_final.hook_normalized"] = x  # [.., L, C]
    return x


def gpt_forward(params, config, ids, *, cache=None, interventions=None, dropout=0.0, rng=None, kv_cache=None,
                record_scores=True):
    """The forward pass: ids [L] or [B, L] -> logits [.., L, V] (in the params' dtype).

    cache: a dict to fill with every intermediate (see the module docstring).
    interventions: an `Interventions`; None runs the plain model.
    dropout, rng: training only; rate in [0, 1) and a numpy Generator for the keep-masks.
    kv_cache: a `KVCache`; the ids are then the tokens after the cached ones.
    record_scores: False leaves the masked attention scores out of the cache (only a display
    reads them; training's backward does not).
    """
    x = final_features(params, config, ids, cache=cache, interventions=interventions, dropout=dropout, rng=rng,
                       kv_cache=kv_cache, record_scores=record_scores)  # [.., L, C]
    return matmul(x, output_head(params).T)  # [.., L, C] @ [C, V] -> [.., L, V]
