"""The model's hyper-parameters: `GPTConfig`, validated, and its GPT-2 `config.json` form.

`to_hf_dict()` writes the keys Hugging Face's GPT-2 uses (so a checkpoint directory also
loads in other GPT-2 tooling); `from_hf_dict(d)` reads them back and checks every value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Generous upper bounds: this is a toy model, and a config asking for more is a typo or an attack.
LIMITS = {
    "vocab_size": (3, 100_000),
    "n_positions": (1, 4096),
    "n_embd": (1, 4096),
    "n_layer": (1, 64),
    "n_head": (1, 256),
}
ACTIVATION = "gelu_new"  # GPT-2's name for GELU with the tanh approximation


def _check_int(name: str, value) -> int:
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"config {name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"config {name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a GPT-2-style model; C = n_embd, d_head = n_embd // n_head."""

    vocab_size: int
    n_positions: int = 32
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self):
        for name in LIMITS:
            _check_int(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        epsilon = self.layer_norm_epsilon
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
            raise TypeError(f"config layer_norm_epsilon must be a number, got {epsilon!r}")
        if not (math.isfinite(epsilon) and 0 < epsilon <= 1):
            raise ValueError(f"config layer_norm_epsilon must be in (0, 1], got {epsilon}")

    @property
    def d_head(self) -> int:
        return self.n_embd // self.n_head

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
            "n_inner": None,  # None means 4 * n_embd in GPT-2
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation_function": ACTIVATION,
            "tie_word_embeddings": False,
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
        """A GPTConfig from GPT-2 config.json keys; anything this model cannot run is a ValueError."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a JSON object, got {type(config).__name__}")
        missing = [name for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head") if name not in config]
        if missing:
            raise ValueError(f"config is missing {', '.join(missing)}")
        if config.get("model_type", "gpt2") != "gpt2":
            raise ValueError(f"config model_type must be 'gpt2', got {config.get('model_type')!r}")
        if config.get("activation_function", ACTIVATION) != ACTIVATION:
            raise ValueError(f"config activation_function must be {ACTIVATION!r}, got {config['activation_function']!r}")
        if config.get("tie_word_embeddings", False) is not False:
            raise ValueError("config tie_word_embeddings must be false: this model's lm_head is its own matrix")
        n_inner = config.get("n_inner")
        if n_inner is not None and n_inner != 4 * config["n_embd"]:
            raise ValueError(f"config n_inner must be null or 4 * n_embd, got {n_inner!r}")
        return cls(
            vocab_size=config["vocab_size"],
            n_positions=config["n_positions"],
            n_embd=config["n_embd"],
            n_layer=config["n_layer"],
            n_head=config["n_head"],
            layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-5),
        )
