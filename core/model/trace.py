"""`Trace`: every intermediate of one forward pass over one prompt, for display.

Built by `Model.run` from `gpt_forward`'s cache (one code path: the weights and logits here
are the ones the forward computed). L = tokens, C = n_embd, H = n_head, D = d_head, M = d_mlp,
V = vocab.
Besides its named fields a Trace is a read-only mapping under TransformerLens's hook names
without the batch dim (`trace["blocks.0.attn.hook_pattern"]` is [H, L, L]); q/k/v/z are
head-first [H, L, D], unlike TransformerLens's [L, H, D]. `token_labels` names the positions
on every axis that shows tokens.

For the llama family (core.model.forward) a LayerTrace's q and k are the rotated ones (after
RoPE: what the scores were made from), and k and v are shown per query head: each of the Hkv
key/value heads repeated for its group (a display copy; the hooks keep the Hkv heads). There are
no position embeddings (None): positions are rotations of q and k.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from core.model.interventions import Interventions
from core.model.sampling import ranking, softmax


@dataclass(eq=False)
class LayerTrace:
    """One block's intermediates."""

    resid_pre: np.ndarray  # [L, C] residual stream entering the block
    ln_1: np.ndarray  # [L, C] ln_1 output (the residual itself when the LN is skipped)
    q: np.ndarray  # [H, L, D] queries
    k: np.ndarray  # [H, L, D] keys
    v: np.ndarray  # [H, L, D] values
    scale: float  # the factor the scores were multiplied by: 1/sqrt(D), or 1 when dropped
    raw_scores: np.ndarray  # [H, L, L] q.k
    scaled_scores: np.ndarray  # [H, L, L] q.k * scale
    masked_scores: np.ndarray  # [H, L, L] scaled, -inf where the causal mask hides a key
    weights: np.ndarray  # [H, L, L] attention weights: rows = queries, columns = keys; rows sum to 1
    head_outputs: np.ndarray  # [H, L, D] weights @ v per head (z)
    attn_out: np.ndarray  # [L, C] heads merged, after c_proj
    resid_mid: np.ndarray  # [L, C] residual after the attention sub-layer
    ln_2: np.ndarray  # [L, C]
    mlp_pre: np.ndarray  # [L, M] before the activation
    mlp_post: np.ndarray  # [L, M] after the activation (the config's, or ReLU); SwiGLU: silu(gate) * up
    mlp_out: np.ndarray  # [L, C] after the MLP's c_proj
    resid_post: np.ndarray  # [L, C] residual leaving the block
    mlp_pre_linear: np.ndarray | None = None  # [L, M] SwiGLU's up(x) (llama family; None for GPT-2)


@dataclass(eq=False)
class Trace(Mapping):
    """One prompt's forward pass; also a mapping of TransformerLens hook names to arrays."""

    tokens: list[str]  # [L] the tokens the model saw (unknown words as "<unk>")
    ids: np.ndarray  # [L] token ids
    token_embeddings: np.ndarray  # [L, C] wte rows
    position_embeddings: np.ndarray | None  # [L, C] wpe rows (None for RoPE models)
    layers: list[LayerTrace]  # [n_layer]
    final_ln: np.ndarray  # [L, C] ln_f output
    logits: np.ndarray  # [L, V] each position's next-token logits
    next_token_probs: np.ndarray  # [V] softmax of the last position's logits (float64)
    interventions: Interventions  # the changes this pass ran with
    vocabulary: list[str] = field(default_factory=list, repr=False)  # [V] token of each id
    notices: list[str] = field(default_factory=list)  # truncation, unknown words, ...
    hooks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # TransformerLens names

    @classmethod
    def from_cache(cls, cache: dict, tokens, ids, logits, config, interventions, notices, vocabulary) -> Trace:
        """Assemble a Trace from `gpt_forward`'s cache of a 1-D (unbatched) run."""
        scale = config.attention_scale if interventions.scale_scores else 1.0
        layers = [_layer_trace(cache, f"blocks.{layer}.", scale, config.n_head) for layer in range(config.n_layer)]
        return cls(tokens=list(tokens), ids=np.asarray(ids), token_embeddings=cache["hook_embed"],
                   position_embeddings=cache.get("hook_pos_embed"), layers=layers,
                   final_ln=cache["ln_final.hook_normalized"], logits=logits, next_token_probs=softmax(logits[-1].astype(np.float64)),
                   interventions=interventions, vocabulary=vocabulary, notices=list(notices), hooks=dict(cache))

    @property
    def embeddings(self) -> np.ndarray:
        """[L, C] token (+ position) embeddings: the residual stream entering block 0."""
        return self.layers[0].resid_pre

    @property
    def residual_stream(self) -> np.ndarray:
        """[n_layer + 1, L, C]: before block 0, then after every block."""
        return np.stack([self.layers[0].resid_pre] + [layer.resid_post for layer in self.layers])

    def top_predictions(self, count: int = 5) -> list[tuple[str, float]]:
        """The `count` most likely next tokens (by id ties) and their probabilities."""
        order = ranking(self.next_token_probs)[:count]
        return [(self.vocabulary[index], float(self.next_token_probs[index])) for index in order]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.hooks:
            raise KeyError(f"no hook named {name!r}; the trace has {sorted(self.hooks)[:6]} ...")
        return self.hooks[name]

    def __iter__(self):
        return iter(self.hooks)

    def __len__(self) -> int:
        return len(self.hooks)

    __eq__ = object.__eq__  # Mapping's item-wise == would compare arrays; a trace equals itself only
    __hash__ = object.__hash__

    def to_json_dict(self) -> dict:
        """Plain JSON data: tokens, ids, notices, the top predictions, and every hook array
        as {"shape": [...], "values": nested lists} (-inf written as null)."""
        arrays = dict(self.hooks)
        for layer, trace in enumerate(self.layers):
            arrays[f"blocks.{layer}.attn.raw_scores"] = trace.raw_scores
            arrays[f"blocks.{layer}.attn.scaled_scores"] = trace.scaled_scores
        arrays["logits"], arrays["next_token_probs"] = self.logits, self.next_token_probs
        return {"tokens": self.tokens, "ids": [int(index) for index in self.ids], "notices": self.notices,
                "top_predictions": self.top_predictions(), "arrays": {name: _json_array(value)
                                                                      for name, value in arrays.items()}}


def token_labels(tokens) -> list[str]:
    """Unique labels for tokens, position and token ("0 the", "1 sky", "2 the"): a repeated
    token stays two rows of a chart and two options of a question."""
    return [f"{position} {token}" for position, token in enumerate(tokens)]


def _per_query_head(kv: np.ndarray, n_head: int) -> np.ndarray:
    """[Hkv, L, D] -> [H, L, D]: each key/value head repeated for its group of query heads."""
    return kv if kv.shape[0] == n_head else np.repeat(kv, n_head // kv.shape[0], axis=0)


def _layer_trace(cache: dict, prefix: str, scale: float, n_head: int) -> LayerTrace:
    rotated = prefix + "attn.hook_rot_q" in cache  # the llama family: the rotated q and k made the scores
    q = cache[prefix + ("attn.hook_rot_q" if rotated else "attn.hook_q")]
    k = _per_query_head(cache[prefix + ("attn.hook_rot_k" if rotated else "attn.hook_k")], n_head)
    raw = q @ np.swapaxes(k, -1, -2)  # [H, L, D] @ [H, D, L] -> [H, L, L]
    return LayerTrace(
        resid_pre=cache[prefix + "hook_resid_pre"], ln_1=cache[prefix + "ln1.hook_normalized"], q=q, k=k,
        v=_per_query_head(cache[prefix + "attn.hook_v"], n_head), scale=scale, raw_scores=raw, scaled_scores=raw * scale,
        masked_scores=cache[prefix + "attn.hook_attn_scores"], weights=cache[prefix + "attn.hook_pattern"],
        head_outputs=cache[prefix + "attn.hook_z"], attn_out=cache[prefix + "hook_attn_out"],
        resid_mid=cache[prefix + "hook_resid_mid"], ln_2=cache[prefix + "ln2.hook_normalized"],
        mlp_pre=cache[prefix + "mlp.hook_pre"], mlp_post=cache[prefix + "mlp.hook_post"],
        mlp_out=cache[prefix + "hook_mlp_out"], resid_post=cache[prefix + "hook_resid_post"],
        mlp_pre_linear=cache.get(prefix + "mlp.hook_pre_linear"))


def _json_array(array: np.ndarray) -> dict:
    values = np.asarray(array, dtype=np.float64)
    nested = np.where(np.isfinite(values), values, np.nan).tolist()  # NaN marks -inf, then becomes None
    return {"shape": list(values.shape), "values": _nan_to_none(nested)}


def _nan_to_none(values):
    if isinstance(values, list):
        return [_nan_to_none(value) for value in values]
    return None if values != values else values
