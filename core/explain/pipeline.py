"""The shapes of the pipeline from prompt to next token, for one prompt and one config."""
from __future__ import annotations


def pipeline_shapes(config, length: int) -> list[tuple[str, str, str, bool]]:
    """The steps from prompt to next token with this prompt's array shapes:
    (step, what it does, shape, whether it is inside the repeated transformer block)."""
    if length < 1:
        raise ValueError(f"the prompt needs at least one token, got length {length}")
    L, C, H, D, M, V = length, config.n_embd, config.n_head, config.d_head, config.d_mlp, config.vocab_size
    return [
        ("tokens", "the prompt split into words, each looked up as an id", f"[{L}]", False),
        ("embeddings", "token embedding + position embedding", f"[{L}] -> [{L}, {C}]", False),
        ("ln_1", "LayerNorm before attention", f"[{L}, {C}]", True),
        ("q, k, v", "three projections, split into heads", f"[{L}, {C}] -> [{L}, {3 * C}] -> 3 x [{H}, {L}, {D}]",
         True),
        ("scores", "q . k / sqrt(d_head), future keys masked", f"[{H}, {L}, {D}] x [{H}, {D}, {L}] -> [{H}, {L}, {L}]",
         True),
        ("weights", "softmax over each row", f"[{H}, {L}, {L}]", True),
        ("head outputs", "weights x values, heads joined again",
         f"[{H}, {L}, {L}] x [{H}, {L}, {D}] -> [{H}, {L}, {D}] -> [{L}, {C}]", True),
        ("attention out", "c_proj, added to the residual stream", f"[{L}, {C}]", True),
        ("MLP", "LayerNorm, expand, GELU, project back, add", f"[{L}, {C}] -> [{L}, {M}] -> [{L}, {C}]", True),
        ("ln_f", "final LayerNorm", f"[{L}, {C}]", False),
        ("logits", "lm_head: a score for every word, at every position", f"[{L}, {C}] x [{C}, {V}] -> [{L}, {V}]",
         False),
        ("next token", "softmax of the last position's logits", f"[{V}]", False),
    ]
