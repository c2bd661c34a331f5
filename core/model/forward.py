"""The forward pass of both families in NumPy, read top to bottom like picoGPT.

One pass, two kinds of block (config.family, core.model.config):
  gpt2   LayerNorm; c_attn split into q, k, v; learned positions (wpe); GELU MLP (c_fc, c_proj).
  llama  RMSNorm; q/k/v projections (optional biases: Qwen2), per-head q/k RMSNorm (Qwen3),
         rotary positions on q and k (core.model.rope) at positions start..start+L, so the KV
         cache works; grouped-query attention (k and v keep n_kv_head heads, query head h reads
         key/value head h // (H / Hkv)); SwiGLU MLP: down(silu(gate(x)) * up(x)). Used by
         Hugging Face's llama, qwen2, qwen3 and mistral.
Each piece is a short function named for what it does: `norm`, `attention` (with
`gpt2_qkv` / `llama_qkv` making q, k and v), `mlp` (`gelu_mlp` / `swiglu_mlp`), `block`.

Parameters are a plain dict keyed by Hugging Face's names (core.model.params; a tied model's
output head is its token embedding). The MLP's activation is the config's
(core.model.ops.ACTIVATIONS). `gpt_forward` is the one forward pass: inference, the trace,
interventions, training (with dropout) and KV-cache decoding all run it. Shapes: L = sequence
length, C = n_embd, H = n_head, Hkv = n_kv_head (= H for GPT-2), D = d_head (C / H, or the
config's head_dim), M = d_mlp (4C for GPT-2 unless n_inner says otherwise), V = vocab_size;
`..` is an optional batch dim.

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
The llama family records the same names, with these differences and additions (no
hook_pos_embed: positions are rotations, not vectors added to the stream):
    ln1.*, ln2.*, ln_final.*         the RMSNorms: hook_scale = sqrt(mean(x^2) + eps) [.., L, 1]
    attn.q_norm.hook_scale [.., H, L, 1], attn.q_norm.hook_normalized [.., H, L, D]   (Qwen3)
    attn.k_norm.hook_scale [.., Hkv, L, 1], attn.k_norm.hook_normalized [.., Hkv, L, D]   (Qwen3)
    attn.hook_q [.., H, L, D]        queries before RoPE (after q_norm)
    attn.hook_k [.., Hkv, L, D]      the new keys before RoPE (after k_norm)
    attn.hook_cos, attn.hook_sin [L, D]   the rotation tables at positions start..start+L
    attn.hook_rot_q [.., H, L, D]    queries after RoPE
    attn.hook_rot_k [.., Hkv, Lk, D] every key attended to, after RoPE (cached then new)
    attn.hook_v [.., Hkv, Lk, D]     every value attended to (cached then new)
    attn.hook_attn_scores, attn.hook_pattern [.., H, L, Lk]
    mlp.hook_pre [.., L, M]          gate(x), before the activation
    mlp.hook_pre_linear [.., L, M]   up(x)
    mlp.hook_post [.., L, M]         silu(gate(x)) * up(x) (ReLU in place of silu when an intervention asks)
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
    linear_out_in,
    merge_heads,
    relu,
    rms_norm,
    split_heads,
)
from core.model.params import block_params, output_head, token_embedding
from core.model.rope import rotary_tables, rotate
from core.native.parallel import matmul


def grouped(kv, n_head):
    """[.., Hkv, Lk, D] -> [.., H, Lk, D]: each key/value head repeated for its group of query
    heads (a copy: for display only; the attention call itself reads the Hkv heads)."""
    return kv if kv.shape[-3] == n_head else np.repeat(kv, n_head // kv.shape[-3], axis=-3)


def masked_scores(q, k, scale, causal):
    """q.k * scale with -inf where the causal mask hides a key: [.., H, L, Lk] (for display)."""
    k = grouped(k, q.shape[-3])  # [.., H, Lk, D]
    scores = q @ np.swapaxes(k, -1, -2) * scale  # [.., H, L, D] @ [.., H, D, Lk] -> [.., H, L, Lk]
    if causal:
        scores = np.where(causal_mask(q.shape[-2], k.shape[-2]), scores, -np.inf)
    return scores


@dataclass
class KVCache:
    """The keys and values of every token processed so far, per layer [.., Hkv, T, D]
    (the llama family's keys after RoPE, so cached keys are never rotated again).

    Pass one (empty at first) to `gpt_forward(..., kv_cache=...)`: new tokens take the
    positions after the cached ones, attend to cached and new keys, and are appended.
    """

    keys: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[-2] if self.keys else 0

    def extend(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append one layer's new k, v [.., Hkv, L, D]; return all of them [.., Hkv, T + L, D]."""
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer] = np.concatenate([self.keys[layer], k], axis=-2)  # [.., Hkv, T + L, D]
            self.values[layer] = np.concatenate([self.values[layer], v], axis=-2)
        return self.keys[layer], self.values[layer]


def gpt2_qkv(x, p, config):
    """GPT-2's q, k, v: one c_attn, split in three and made head-first. [.., L, C] -> 3 x [.., H, L, D]."""
    qkv = linear(x, p["attn.c_attn.weight"], p["attn.c_attn.bias"])  # [.., L, C] -> [.., L, 3C]
    return (np.ascontiguousarray(split_heads(part, config.n_head))  # the kernel (and the backward's) reads
            for part in np.split(qkv, 3, axis=-1))  # them contiguous: copied once, here. 3 x [.., H, L, D]


def head_norm(x, p, which, config, layer, hooks):
    """Qwen3's per-head RMSNorm on q or k (`which` "q_norm" / "k_norm"), over each head's D dims."""
    out, hooks[f"blocks.{layer}.attn.{which}.hook_scale"] = rms_norm(
        x, p[f"self_attn.{which}.weight"], config.layer_norm_epsilon)  # [.., H, L, D], [.., H, L, 1]
    hooks[f"blocks.{layer}.attn.{which}.hook_normalized"] = out
    return out


def llama_qkv(x, p, config, layer, hooks):
    """The llama family's q [.., H, L, D], k and v [.., Hkv, L, D]: three projections (biases when
    the config has them), then Qwen3's per-head q/k norms."""
    def project(name, heads):  # [.., L, C] @ [C, heads * D] -> [.., L, heads * D] -> [.., heads, L, D]
        out = linear_out_in(x, p[f"self_attn.{name}.weight"], p.get(f"self_attn.{name}.bias"))
        return np.ascontiguousarray(split_heads(out, heads))
    q, k, v = project("q_proj", config.n_head), project("k_proj", config.n_kv_head), project("v_proj", config.n_kv_head)
    if config.qk_norm:
        q, k = head_norm(q, p, "q_norm", config, layer, hooks), head_norm(k, p, "k_norm", config, layer, hooks)
    return q, k, v


def rotary(q, k, rope, layer, hooks):
    """q [.., H, L, D] and k [.., Hkv, L, D] rotated by their positions' angles (rope = cos, sin [L, D])."""
    name = f"blocks.{layer}.attn"
    hooks[f"{name}.hook_q"], hooks[f"{name}.hook_k"] = q, k  # before RoPE
    hooks[f"{name}.hook_cos"], hooks[f"{name}.hook_sin"] = rope
    return rotate(q, *rope), np.ascontiguousarray(rotate(k, *rope))  # [.., H, L, D], [.., Hkv, L, D]


def attention(x, p, config, layer, hooks, interventions, kv_cache, rope):
    """Multi-head causal self-attention: [.., L, C] -> [.., L, C]. The llama family rotates q and
    k (`rope`: cos, sin [L, D]) and keeps Hkv key/value heads (grouped-query attention)."""
    name = f"blocks.{layer}.attn"
    if config.rope:
        q, k, v = llama_qkv(x, p, config, layer, hooks)  # [.., H, L, D], 2 x [.., Hkv, L, D]
        q, k = rotary(q, k, rope, layer, hooks)
    else:
        q, k, v = gpt2_qkv(x, p, config)  # 3 x [.., H, L, D]
    if kv_cache is not None:
        k, v = kv_cache.extend(layer, k, v)  # [.., Hkv, Lk, D] with Lk = past + L
    scale = config.attention_scale if interventions.scale_scores else 1.0
    # q [.., H, L, D] against k, v [.., Hkv, Lk, D]: query head h reads key/value head h // (H / Hkv), no copy
    z, weights = scaled_dot_product_attention(
        q, k, v, causal=interventions.causal, scale=scale, return_weights=True)  # [.., H, L, D], [.., H, L, Lk]
    zeroed, zeroed_by_row = interventions.zeroed_heads(layer, config.n_head)
    if zeroed or zeroed_by_row:
        z = z.copy()
        z[..., zeroed, :, :] = 0.0
        for row, head in zeroed_by_row:
            z[row, head] = 0.0  # [B, H, L, D]: this row's head
    if config.rope:
        hooks[f"{name}.hook_rot_q"], hooks[f"{name}.hook_rot_k"], hooks[f"{name}.hook_v"] = q, k, v
    else:
        hooks[f"{name}.hook_q"], hooks[f"{name}.hook_k"], hooks[f"{name}.hook_v"] = q, k, v
    hooks[f"{name}.hook_pattern"], hooks[f"{name}.hook_z"] = weights, z
    if hooks.scores:
        hooks[f"{name}.hook_attn_scores"] = masked_scores(q, k, scale, interventions.causal)
    if config.rope:  # [.., L, H * D] @ [H * D, C] -> [.., L, C]
        return linear_out_in(merge_heads(z), p["self_attn.o_proj.weight"], p.get("self_attn.o_proj.bias"))
    return linear(merge_heads(z), p["attn.c_proj.weight"], p["attn.c_proj.bias"])  # [.., L, C] @ [C, C] -> [.., L, C]


def gelu_mlp(x, p, activation, layer, hooks):
    """GPT-2's feed-forward net: [.., L, C] -> [.., L, M] -> activation -> [.., L, C]."""
    pre = linear(x, p["mlp.c_fc.weight"], p["mlp.c_fc.bias"])  # [.., L, C] @ [C, M] -> [.., L, M]
    post = activation(pre)  # [.., L, M]
    hooks[f"blocks.{layer}.mlp.hook_pre"], hooks[f"blocks.{layer}.mlp.hook_post"] = pre, post
    return linear(post, p["mlp.c_proj.weight"], p["mlp.c_proj.bias"])  # [.., L, M] @ [M, C] -> [.., L, C]


def swiglu_mlp(x, p, activation, layer, hooks):
    """The llama family's SwiGLU: down(silu(gate(x)) * up(x)), [.., L, C] -> [.., L, M] -> [.., L, C]."""
    gate = linear_out_in(x, p["mlp.gate_proj.weight"])  # [.., L, C] @ [C, M] -> [.., L, M]
    up = linear_out_in(x, p["mlp.up_proj.weight"])  # [.., L, C] @ [C, M] -> [.., L, M]
    post = activation(gate) * up  # [.., L, M]
    name = f"blocks.{layer}.mlp"
    hooks[f"{name}.hook_pre"], hooks[f"{name}.hook_pre_linear"], hooks[f"{name}.hook_post"] = gate, up, post
    return linear_out_in(post, p["mlp.down_proj.weight"])  # [.., L, M] @ [M, C] -> [.., L, C]


def mlp(x, p, config, layer, hooks, interventions):
    """The feed-forward net of the config's family, with its activation (ReLU when an intervention asks)."""
    activation = relu if interventions.activation == "relu" else ACTIVATIONS[config.activation]
    return (swiglu_mlp if config.rope else gelu_mlp)(x, p, activation, layer, hooks)


LLAMA_NORMS = {"ln_1": "input_layernorm", "ln_2": "post_attention_layernorm"}


def norm(x, p, which, config, layer, hooks, interventions):
    """The block's norm `which` ("ln_1" or "ln_2"; the llama family's input_layernorm and
    post_attention_layernorm): LayerNorm or RMSNorm, or x itself when skipped."""
    hook = f"blocks.{layer}.{which.replace('_', '')}"  # ln_1 -> blocks.{l}.ln1
    if (layer, which) in interventions.skip_ln:
        out = x
    elif config.rope:
        out, hooks[f"{hook}.hook_scale"] = rms_norm(x, p[f"{LLAMA_NORMS[which]}.weight"], config.layer_norm_epsilon)
    else:
        out, hooks[f"{hook}.hook_scale"] = layer_norm(x, p[f"{which}.weight"], p[f"{which}.bias"],
                                                      config.layer_norm_epsilon)
    hooks[f"{hook}.hook_normalized"] = out  # [.., L, C]
    return out


def block(x, p, config, layer, hooks, interventions, dropout, kv_cache, rope=None):
    """One pre-norm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)). `rope`: the
    llama family's cos, sin [L, D] tables (None for GPT-2)."""
    name = f"blocks.{layer}"
    hooks[f"{name}.hook_resid_pre"] = x  # [.., L, C]
    h = norm(x, p, "ln_1", config, layer, hooks, interventions)
    attn_out = hooks[f"{name}.hook_attn_out"] = attention(h, p, config, layer, hooks, interventions, kv_cache, rope)
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
    x = hooks["hook_embed"] = token_embedding(params)[ids]  # [.., L] -> [.., L, C]
    if config.rope:  # positions turn q and k in every block: one cos, sin table [L, D] for all
        rope = rotary_tables(config, np.arange(start, start + ids.shape[-1]))
    else:  # GPT-2: a learned vector per position, added to the stream
        rope, pos_embed = None, params["transformer.wpe.weight"][start:start + ids.shape[-1]]  # [L, C]
        x = x + pos_embed  # [.., L, C]
        hooks["hook_pos_embed"] = pos_embed
    x = drop(x, "hook_embed_dropout")  # [.., L, C]
    for layer in range(config.n_layer):
        x = block(x, block_params(params, layer), config, layer, hooks, interventions, drop, kv_cache, rope)
    if config.rope:
        x, hooks["ln_final.hook_scale"] = rms_norm(x, params["model.norm.weight"], config.layer_norm_epsilon)
    else:
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
