"""The model's hyper-parameters: `GPTConfig`, validated, and its `config.json` form.

Two families share one config and one forward pass (core.model.forward):
  "gpt2"  GPT-2's block: LayerNorm, one c_attn, learned positions, GELU MLP.
  "llama" Llama's block, which Hugging Face's llama, qwen2, qwen3 and mistral all use: RMSNorm,
          q/k/v/o projections (grouped-query attention: n_kv_head key/value heads), rotary
          positions (RoPE), SwiGLU MLP. Qwen2 adds q/k/v biases, Qwen3 per-head q/k RMSNorms
          and its own head_dim, Mistral a sliding window.
Every new field defaults to GPT-2's value, so a GPT-2 config is what it always was.

`to_hf_dict()` writes the keys Hugging Face's GPT-2 uses (so a checkpoint directory also
loads in other GPT-2 tooling), or Llama-style keys for the llama family; `from_hf_dict(d)` reads
any GPT-2-family config.json (gpt2, distilgpt2, gpt2-medium, ...) and llama / qwen2 / qwen3 /
mistral ones, in both styles (transformers 5's `rope_parameters`, the hub's `rope_theta` +
`rope_scaling`), and checks every value.

Context length of RoPE models: positions are computed, not learned, so nothing in the weights
fixes n_positions; it is min(max_position_embeddings, LIMITS' 8192) (Llama 3.2 says 131072).
A sliding window (Mistral's sliding_window; Qwen's only when use_sliding_window is true) caps
n_positions at the window: within the window, sliding-window attention is full causal attention,
so the one attention this forward pass runs is exact there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.checks import flag, is_number, number, whole
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
SUPPORTED = ("GPT-2-family models (config.json model_type 'gpt2': gpt2, distilgpt2, gpt2-medium, ...) and "
             "Llama-family ones (model_type 'llama', 'qwen2', 'qwen3', 'mistral')")
LLAMA_TYPES = ("llama", "qwen2", "qwen3", "mistral")  # Hugging Face model types run by the llama block
ROPE_TYPES = ("default", "llama3")
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
# GPT-2 options that change the computation, with the value this model runs
UNSUPPORTED_OPTIONS = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                       "add_cross_attention": False}


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a GPT-2-style or Llama-style model; C = n_embd, D = d_head (head_dim, or
    n_embd // n_head when None), H = n_head, Hkv = n_kv_head."""

    vocab_size: int
    n_positions: int = 32
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    layer_norm_epsilon: float = 1e-5
    activation: str = ACTIVATION  # the MLP's activation, by transformers' name (core.model.ops.ACTIVATIONS)
    tied: bool = False  # the output head is the token embedding wte (GPT-2's own models)
    n_inner: int | None = None  # the MLP's width; None means 4 * n_embd
    # the llama family (defaults: GPT-2's, which uses none of them)
    family: str = "gpt2"  # "gpt2" or "llama" (the block llama, qwen2, qwen3 and mistral use)
    model_type: str = "gpt2"  # Hugging Face's model_type, for display
    n_kv_head: int | None = None  # key/value heads (num_key_value_heads); None means n_head
    head_dim: int | None = None  # D; None means n_embd // n_head (Qwen3 sets its own)
    rope_theta: float = 10000.0  # RoPE's base
    rope_scaling: tuple | None = None  # None, or llama3's (("factor", 8.0), ("high_freq_factor", 4.0), ...)
    attention_bias: bool = False  # q/k/v projections have biases (Qwen2; attention_bias in llama/qwen3)
    attention_out_bias: bool = False  # o_proj has a bias (attention_bias in llama/qwen3; never in Qwen2)
    qk_norm: bool = False  # per-head RMSNorm on q and k before RoPE (Qwen3)
    sliding_window: int | None = None  # the attention window when active (n_positions is capped at it)
    max_position_embeddings: int | None = None  # the config's own context, before the cap (display)

    def __post_init__(self):
        for name, (low, high) in LIMITS.items():
            if name != "n_inner" or self.n_inner is not None:  # stored as int: NumPy's would not write to JSON
                object.__setattr__(self, name, whole(getattr(self, name), f"config {name}", low, high))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"config activation_function {self.activation!r} is not supported; "
                             f"use one of {', '.join(sorted(ACTIVATIONS))}")
        flag(self.tied, "config tie_word_embeddings")
        if self.family not in ("gpt2", "llama"):
            raise ValueError(f"config family must be 'gpt2' or 'llama', got {self.family!r}")
        if self.family == "gpt2" and (self.n_kv_head not in (None, self.n_head) or self.rope_scaling is not None
                                      or self.head_dim not in (None, self.n_embd // self.n_head)
                                      or self.attention_bias or self.attention_out_bias or self.qk_norm):
            raise ValueError("grouped-query attention, head_dim, RoPE scaling, projection biases and q/k norms "
                             "are llama-family settings (family 'llama')")
        if self.head_dim is None and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        object.__setattr__(self, "head_dim", whole(self.n_embd // self.n_head if self.head_dim is None
                                                   else self.head_dim, "config head_dim", 1, 1024))
        object.__setattr__(self, "n_kv_head", whole(self.n_head if self.n_kv_head is None else self.n_kv_head,
                                                    "config num_key_value_heads", 1, 256))
        if self.n_head % self.n_kv_head:
            raise ValueError(f"num_key_value_heads ({self.n_kv_head}) must divide num_attention_heads "
                             f"({self.n_head}): each key/value head serves a whole group of query heads")
        if self.family == "llama" and self.head_dim % 2:
            raise ValueError(f"config head_dim must be even for rotary positions, got {self.head_dim}")
        theta = number(self.rope_theta, "config rope_theta")
        if not (0 < theta < 1e12):
            raise ValueError(f"config rope_theta must be in (0, 1e12), got {theta}")
        if self.rope_scaling is not None:
            scaling = dict(self.rope_scaling) if isinstance(self.rope_scaling, tuple) else None
            if scaling is None or sorted(scaling) != sorted(LLAMA3_KEYS) or not all(
                    is_number(value) and 0 < value < 1e7 for value in scaling.values()):
                raise ValueError(f"config rope_scaling must be llama3's {LLAMA3_KEYS} as (name, value) pairs, "
                                 f"got {self.rope_scaling!r}")
            if scaling["high_freq_factor"] <= scaling["low_freq_factor"]:
                raise ValueError("config rope_scaling high_freq_factor must be above low_freq_factor")
        for name in ("attention_bias", "attention_out_bias", "qk_norm"):
            flag(getattr(self, name), f"config {name}")
        for name in ("sliding_window", "max_position_embeddings"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, whole(getattr(self, name), f"config {name}", 1, 2**40))
        epsilon = number(self.layer_norm_epsilon, "config layer_norm_epsilon")
        if not (0 < epsilon <= 1 and math.isfinite(epsilon)):  # compared first: huge ints overflow isfinite
            raise ValueError(f"config layer_norm_epsilon must be in (0, 1], got {epsilon}")

    @property
    def d_head(self) -> int:
        """D, each head's width: head_dim (n_embd // n_head unless the config sets it)."""
        return self.head_dim

    @property
    def rope(self) -> bool:
        """Whether positions are rotary (the llama family) rather than learned (GPT-2's wpe)."""
        return self.family == "llama"

    @property
    def d_mlp(self) -> int:
        """The MLP's hidden width (4 * n_embd unless n_inner says otherwise)."""
        return 4 * self.n_embd if self.n_inner is None else self.n_inner

    @property
    def attention_scale(self) -> float:
        """The factor the attention scores q.k are multiplied by: 1/sqrt(d_head)."""
        return default_scale(self.d_head)

    def to_hf_dict(self, eos_token_id: int = 0) -> dict:
        """GPT-2's config.json keys (Llama-style ones for the llama family); bos and eos are the
        end-of-text token's id."""
        if self.family == "llama":
            return self._llama_hf_dict(eos_token_id)
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

    def _llama_hf_dict(self, eos_token_id: int) -> dict:
        """Llama-style config.json keys (hub style: rope_theta + rope_scaling)."""
        return {
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.n_embd,
            "intermediate_size": self.d_mlp,
            "num_hidden_layers": self.n_layer,
            "num_attention_heads": self.n_head,
            "num_key_value_heads": self.n_kv_head,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings or self.n_positions,
            "rms_norm_eps": self.layer_norm_epsilon,
            "hidden_act": self.activation,
            "tie_word_embeddings": self.tied,
            "rope_theta": self.rope_theta,
            "rope_scaling": None if self.rope_scaling is None else {"rope_type": "llama3", **dict(self.rope_scaling)},
            "attention_bias": self.attention_bias,
            **({"use_qk_norm": True} if self.qk_norm and self.model_type != "qwen3" else {}),
            "sliding_window": self.sliding_window,
            "bos_token_id": eos_token_id,
            "eos_token_id": eos_token_id,
            "torch_dtype": "float32",
        }

    @classmethod
    def from_hf_dict(cls, config: dict) -> GPTConfig:
        """A GPTConfig from GPT-2 config.json keys (missing tie_word_embeddings means tied, as in
        transformers); anything this model cannot run is a ValueError saying what is supported."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a JSON object, got {type(config).__name__}")
        model_type = config.get("model_type", "gpt2")
        if model_type in LLAMA_TYPES:
            return cls._from_llama_dict(config, model_type)
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

    @classmethod
    def _from_llama_dict(cls, config: dict, model_type: str) -> GPTConfig:
        """A llama-family GPTConfig from llama / qwen2 / qwen3 / mistral config.json keys."""
        missing = [name for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                     "num_attention_heads") if name not in config]
        if missing:
            raise ValueError(f"config (model_type {model_type!r}) is missing {', '.join(missing)}")
        if config.get("mlp_bias", False):
            raise ValueError("config mlp_bias = true is not supported (Llama's MLP without biases only)")
        if config.get("pretraining_tp", 1) not in (1, None):
            raise ValueError(f"config pretraining_tp = {config['pretraining_tp']!r} is not supported (only 1)")
        activation = config.get("hidden_act", "silu")
        if not isinstance(activation, str):
            raise TypeError(f"config hidden_act must be a string, got {activation!r}")
        theta, scaling = _rope_settings(config)
        window = config.get("sliding_window")
        if model_type in ("qwen2", "qwen3") and not config.get("use_sliding_window", False):
            window = None  # Qwen's sliding_window is a dormant setting unless use_sliding_window is true
        max_positions = config.get("max_position_embeddings", 2048)
        if not (isinstance(max_positions, int) and max_positions >= 1):
            raise ValueError(f"config max_position_embeddings must be a positive integer, got {max_positions!r}")
        if window is not None and not (isinstance(window, int) and window >= 1):
            raise ValueError(f"config sliding_window must be a positive integer or null, got {window!r}")
        n_positions = min(max_positions, LIMITS["n_positions"][1], window or max_positions)
        head_dim = config.get("head_dim")
        heads = config["num_attention_heads"]
        return cls(
            vocab_size=config["vocab_size"],
            n_positions=n_positions,
            n_embd=config["hidden_size"],
            n_layer=config["num_hidden_layers"],
            n_head=heads,
            layer_norm_epsilon=config.get("rms_norm_eps", 1e-6),
            activation=activation,
            tied=config.get("tie_word_embeddings", False),  # transformers' LlamaConfig default: untied
            n_inner=config["intermediate_size"],
            family="llama",
            model_type=model_type,
            n_kv_head=config.get("num_key_value_heads") or heads,
            head_dim=head_dim if head_dim is not None else (
                config["hidden_size"] // heads if isinstance(heads, int) and heads > 0 else None),
            rope_theta=theta,
            rope_scaling=scaling,
            attention_bias=True if model_type == "qwen2" else config.get("attention_bias", False),
            attention_out_bias=False if model_type == "qwen2" else config.get("attention_bias", False),
            qk_norm=model_type == "qwen3",
            sliding_window=window,
            max_position_embeddings=max_positions,
        )


def _rope_settings(config: dict) -> tuple[float, tuple | None]:
    """(rope_theta, llama3 scaling pairs or None) from transformers 5's `rope_parameters` or the
    hub's `rope_theta` + `rope_scaling`; other rope types are refused by name."""
    parameters = config.get("rope_parameters")
    if parameters is None:
        parameters = dict(config.get("rope_scaling") or {})
        parameters.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    if not isinstance(parameters, dict):
        raise ValueError(f"config rope_parameters must be an object, got {parameters!r}")
    if parameters and all(isinstance(value, dict) for value in parameters.values()):
        raise ValueError("config rope_parameters per layer type is not supported (one RoPE for every layer only)")
    rope_type = parameters.get("rope_type", parameters.get("type", "default")) or "default"
    if rope_type not in ROPE_TYPES:
        raise ValueError(f"rope_scaling type {rope_type!r} is not supported; Glassbox runs default and llama3 RoPE")
    if parameters.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"config partial_rotary_factor {parameters['partial_rotary_factor']!r} is not supported "
                         "(RoPE over the whole head only)")
    theta = parameters.get("rope_theta", config.get("rope_theta", 10000.0))
    if rope_type == "default":
        return theta, None
    missing = [key for key in LLAMA3_KEYS if key not in parameters]
    if missing:
        raise ValueError(f"config rope_scaling llama3 is missing {', '.join(missing)}")
    return theta, tuple((key, parameters[key]) for key in sorted(LLAMA3_KEYS))
