"""`Interventions`: the "what if" changes the forward pass can run with (core.model.forward.gpt_forward)."""
from __future__ import annotations

from dataclasses import dataclass

from core.checks import choice, flag, index
from core.model.config import GPTConfig


@dataclass(frozen=True)
class Interventions:
    """"What if" changes to the forward pass; the default changes nothing.

    zero_heads: {(layer, head)} whose output z is replaced by zeros before c_proj.
    zero_head_by_row: for a batch of ids [B, L], one (layer, head) or None per row: that row alone
        also has that head zeroed (B ablations in one forward pass); empty: no row-wise zeroing.
    causal: False lets every token attend to every token, later ones too.
    scale_scores: False drops the 1/sqrt(d_head) factor (scores are plain q.k).
    skip_ln: {(layer, "ln_1" | "ln_2")} LayerNorms replaced by the identity.
    skip_residual: {(layer, "attn" | "mlp")} sub-layers whose input is NOT added back
        (x = attn(ln_1(x)) instead of x + attn(ln_1(x))).
    activation: "gelu" runs the model's own activation (config.activation: a GELU in GPT-2's
        family, SiLU in the llama family's SwiGLU), "relu" replaces it by ReLU in every MLP
        (the llama family: relu(gate) * up).
    skip_ln names the llama family's input_layernorm "ln_1" and post_attention_layernorm "ln_2".
    """

    zero_heads: frozenset = frozenset()
    zero_head_by_row: tuple = ()
    causal: bool = True
    scale_scores: bool = True
    skip_ln: frozenset = frozenset()
    skip_residual: frozenset = frozenset()
    activation: str = "gelu"

    def __post_init__(self):
        for name in ("zero_heads", "skip_ln", "skip_residual"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        object.__setattr__(self, "zero_head_by_row", tuple(self.zero_head_by_row))
        for name in ("causal", "scale_scores"):
            flag(getattr(self, name), f"interventions {name}")
        choice(self.activation, ("gelu", "relu"), "interventions activation")
        _check_pairs(self.zero_heads, "zero_heads", "(layer, head)")
        _check_pairs({pair for pair in self.zero_head_by_row if pair is not None}, "zero_head_by_row",
                     "(layer, head) or None")
        _check_pairs(self.skip_ln, "skip_ln", "(layer, 'ln_1' or 'ln_2')", ("ln_1", "ln_2"))
        _check_pairs(self.skip_residual, "skip_residual", "(layer, 'attn' or 'mlp')", ("attn", "mlp"))

    def check(self, config: GPTConfig, ids_shape: tuple[int, ...]) -> None:
        """ValueError when a layer or head number does not exist in `config`, or when
        zero_head_by_row does not name one pair per row of ids of shape `ids_shape`."""
        for layer, head in self.zero_heads | {pair for pair in self.zero_head_by_row if pair is not None}:
            index(layer, config.n_layer, "zero_heads layer")
            index(head, config.n_head, "zero_heads head")
        for layer, _ in self.skip_ln | self.skip_residual:
            index(layer, config.n_layer, "intervention layer")
        if self.zero_head_by_row and (len(ids_shape) != 2 or ids_shape[0] != len(self.zero_head_by_row)):
            raise ValueError(f"interventions zero_head_by_row has {len(self.zero_head_by_row)} rows; "
                             f"the token ids have shape {ids_shape} (it needs [B, L] with B = that many)")

    def zeroed_heads(self, layer: int, n_head: int) -> tuple[list[int], list[tuple[int, int]]]:
        """Layer `layer`'s heads zeroed in every row, and the (row, head) pairs zeroed in one row."""
        everywhere = [head for head in range(n_head) if (layer, head) in self.zero_heads]
        by_row = [(row, pair[1]) for row, pair in enumerate(self.zero_head_by_row) if pair and pair[0] == layer]
        return everywhere, by_row


def _check_pairs(pairs: frozenset, name: str, form: str, parts: tuple[str, ...] | None = None) -> None:
    """ValueError unless every item is a pair whose second element is one of `parts` (any when None)."""
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and (parts is None or pair[1] in parts)):
            raise ValueError(f"interventions {name} holds {form} pairs, got {pair!r}")


NO_INTERVENTIONS = Interventions()
