"""The model's hyper-parameters: `GPTConfig`, validated, and its GPT-2 `config.json` form.

`to_hf_dict()` writes the keys Hugging Face's GPT-2 uses (so a checkpoint directory also
loads in other GPT-2 tooling); `from_hf_dict(d)` reads them back, from Glassbox's checkpoints
and from any GPT-2-family config.json (gpt2, distilgpt2, gpt2-medium, ...), and checks every value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.checks import flag, number, whole
from core.model.attention import default_scale
from core.model.ops import ACTIVATIONS

# Upper bounds generous enough for GPT-2 XL (48 layers, n_embd 1600); a config asking for more
# is a typo or an attack.
LIMITS = {
    "vocab_size": (3, 300_000),
    "n_positions": (1, 8192),
    "n_embd": (1, 8192),
    "n_layer": (1, 128),
    "n_head": (1, 256),
    "n_inner": (1, 32768),
}
ACTIVATION = "gelu_new"  # GPT-2's name for GELU with the tanh approximation
SUPPORTED = "GPT-2-family models (config.json model_type 'gpt2': gpt2, distilgpt2, gpt2-medium, ...)"
# GPT-2 options that change the computation, with the value this model runs
UNSUPPORTED_OPTIONS = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                       "add_cross_attention": False}


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a GPT-2-style model; C = n_embd, d_head = n_embd // n_head."""

    vocab_size: int
    n_positions: int = 32
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    layer_norm_epsilon: float = 1e-5
    activation: str = ACTIVATION  # the MLP's activation, by transformers' name (core.model.ops.ACTIVATIONS)
    tied: bool = False  # the output head is the token embedding wte (GPT-2's own models)
    n_inner: int | None = None  # the MLP's width; None means 4 * n_embd

    def __post_init__(self):
        for name, (low, high) in LIMITS.items():
            if name != "n_inner" or self.n_inner is not None:  # stored as int: NumPy's would not write to JSON
                object.__setattr__(self, name, whole(getattr(self, name), f"config {name}", low, high))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"config activation_function {self.activation!r} is not supported; "
                             f"use one of {', '.join(sorted(ACTIVATIONS))}")
        flag(self.tied, "config tie_word_embeddings")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        epsilon = number(self.layer_norm_epsilon, "config layer_norm_epsilon")
        if not (0 < epsilon <= 1 and math.isfinite(epsilon)):  # compared first: huge ints overflow isfinite
            raise ValueError(f"config layer_norm_epsilon must be in (0, 1], got {epsilon}")

    @property
    def d_head(self) -> int:
        return self.n_embd // self.n_head

    @property
    def d_mlp(self) -> int:
        """The MLP's hidden width (4 * n_embd unless n_inner says otherwise)."""
        return 4 * self.n_embd if self.n_inner is None else self.n_inner

    @property
    def attention_scale(self) -> float:
        """The factor the attention scores q.k are multiplied by: 1/sqrt(d_head)."""
        return default_scale(self.d_head)

    def to_hf_dict(self, eos_token_id: int = 0) -> dict:
        """GPT-2's config.json keys; bos and eos are the end-of-text token's id."""
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": self.vocab_size,
            "n_positions": self.n_positions,
            "n_ctx": self.n_positions,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": self.n_inner,  # None means 4 * n_embd in GPT-2
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation_function": self.activation,
            "tie_word_embeddings": self.tied,
            "bos_token_id": eos_token_id,
            "eos_token_id": eos_token_id,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "scale_attn_weights": True,
            "torch_dtype": "float32",
        }

    @classmethod
    def from_hf_dict(cls, config: dict) -> GPTConfig:
        """A GPTConfig from GPT-2 config.json keys (missing tie_word_embeddings means tied, as in
        transformers); anything this model cannot run is a ValueError saying what is supported."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a JSON object, got {type(config).__name__}")
        model_type = config.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise ValueError(f"config model_type is {model_type!r}: Glassbox runs only {SUPPORTED}")
        missing = [name for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head") if name not in config]
        if missing:
            raise ValueError(f"config is missing {', '.join(missing)}")
        for name, value in UNSUPPORTED_OPTIONS.items():
            if config.get(name, value) != value:
                raise ValueError(f"config {name} = {config[name]!r} is not supported (only {value!r})")
        activation = config.get("activation_function", ACTIVATION)
        if not isinstance(activation, str):
            raise TypeError(f"config activation_function must be a string, got {activation!r}")
        n_inner = config.get("n_inner")
        return cls(
            vocab_size=config["vocab_size"],
            n_positions=config["n_positions"],
            n_embd=config["n_embd"],
            n_layer=config["n_layer"],
            n_head=config["n_head"],
            layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-5),
            activation=activation,
            tied=config.get("tie_word_embeddings", True),
            n_inner=None if n_inner == 4 * config["n_embd"] else n_inner,
        )
