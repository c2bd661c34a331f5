"""The shapes of the pipeline from prompt to next token, for one prompt and one config."""
from __future__ import annotations


def pipeline_shapes(config, length: int) -> list[tuple[str, str, str, bool]]:
    """The steps from prompt to next token with this prompt's array shapes:
    (step, what it does, shape, whether it is inside the repeated transformer block)."""
    if length < 1:
        raise ValueError(f"the prompt needs at least one token, got length {length}")
    L, C, H, D, M, V = length, config.n_embd, config.n_head, config.d_head, config.d_mlp, config.vocab_size
    if getattr(config, "family", "gpt2") == "llama":
        return llama_shapes(config, L)
    return [
        ("tokens", "the prompt split into words, each looked up as an id", f"[{L}]", False),
        ("embeddings", "token embedding + position embedding", f"[{L}] -> [{L}, {C}]", False),
        ("ln_1", "LayerNorm before attention", f"[{L}, {C}]", True),
        ("q, k, v", "three projections, split into heads", f"[{L}, {C}] -> [{L}, {3 * C}] -> 3 x [{H}, {L}, {D}]",
         True),
        *attention_rows(L, H, D),
        ("head outputs", "weights x values, heads joined again",
         f"[{H}, {L}, {L}] x [{H}, {L}, {D}] -> [{H}, {L}, {D}] -> [{L}, {C}]", True),
        ("attention out", "c_proj, added to the residual stream", f"[{L}, {C}]", True),
        ("MLP", "LayerNorm, expand, GELU, project back, add", f"[{L}, {C}] -> [{L}, {M}] -> [{L}, {C}]", True),
        ("ln_f", "final LayerNorm", f"[{L}, {C}]", False),
        *output_rows(L, C, V),
    ]


def llama_shapes(config, length: int) -> list[tuple[str, str, str, bool]]:
    """The llama family's steps (same step names as GPT-2's where the step has the same place):
    no position embedding (RoPE rotates q and k instead), RMSNorm, q_proj with H heads and
    k_proj / v_proj with Hkv key/value heads (each shared by H / Hkv query heads), o_proj, SwiGLU."""
    L, C, H, D, M, V = length, config.n_embd, config.n_head, config.d_head, config.d_mlp, config.vocab_size
    Hkv = config.n_kv_head
    qk_norm = ", then RMSNorm per head (q_norm, k_norm)" if config.qk_norm else ""
    return [
        ("tokens", "the prompt split into words, each looked up as an id", f"[{L}]", False),
        ("embeddings", "token embedding only (no position embedding: RoPE rotates q and k instead)",
         f"[{L}] -> [{L}, {C}]", False),
        ("ln_1", "RMSNorm before attention (input_layernorm: no mean, no bias)", f"[{L}, {C}]", True),
        ("q, k, v", f"q_proj into {H} query heads, k_proj and v_proj into {Hkv} key/value heads "
                    f"(each shared by {H // Hkv} query heads){qk_norm}; RoPE turns q and k by position",
         f"[{L}, {C}] -> q [{H}, {L}, {D}], k, v [{Hkv}, {L}, {D}]", True),
        *attention_rows(L, H, D),
        ("head outputs", "weights x values, heads joined again",
         f"[{H}, {L}, {L}] x [{H}, {L}, {D}] -> [{H}, {L}, {D}] -> [{L}, {H * D}]", True),
        ("attention out", "o_proj, added to the residual stream", f"[{L}, {H * D}] -> [{L}, {C}]", True),
        ("MLP", "RMSNorm, SwiGLU: silu(gate_proj) x up_proj, down_proj back, add",
         f"[{L}, {C}] -> 2 x [{L}, {M}] -> [{L}, {M}] -> [{L}, {C}]", True),
        ("ln_f", "final RMSNorm (model.norm)", f"[{L}, {C}]", False),
        *output_rows(L, C, V),
    ]


def attention_rows(L: int, H: int, D: int) -> list[tuple[str, str, str, bool]]:
    """The scores and their softmax, the same in both families (one row per query head)."""
    return [
        ("scores", "q . k / sqrt(d_head), future keys masked", f"[{H}, {L}, {D}] x [{H}, {D}, {L}] -> [{H}, {L}, {L}]",
         True),
        ("weights", "softmax over each row", f"[{H}, {L}, {L}]", True),
    ]


def output_rows(L: int, C: int, V: int) -> list[tuple[str, str, str, bool]]:
    """The output head and the next token's distribution, the same in both families."""
    return [
        ("logits", "lm_head: a score for every word, at every position", f"[{L}, {C}] x [{C}, {V}] -> [{L}, {V}]",
         False),
        ("next token", "softmax of the last position's logits", f"[{V}]", False),
    ]
