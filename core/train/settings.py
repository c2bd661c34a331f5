"""`TrainSettings`: one frozen dataclass holding a run's settings, whose defaults are the bundled
model's recipe; the CLI, the dashboard, `History.settings` and the training benchmark all start from it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from core.checks import choice, flag, is_number, is_whole, whole

MODES = ("head", "full")
DEFAULT_LR = {"head": 1e-2, "full": 3e-3}  # peak learning rate per mode
@dataclass(frozen=True)
class TrainSettings:
    """How to train. The defaults are the bundled model's recipe
    (`python -m core train --mode full --steps 1000 --out core/data/default`).

    mode: "full" (every parameter) or "head" (lm_head only). lr: the peak learning rate
    (None: DEFAULT_LR[mode]). warmup_steps: None = min(100, steps // 10), at least 1.
    dropout: "full" mode only. seq_len: None = the model's n_positions. val_fraction: the share
    of sentences held out for the validation loss (0: none). from_scratch: start from a fresh
    random init (init_params(config, seed)) instead of the model's parameters.
    Checked on construction (ValueError/TypeError naming the setting); seq_len against the
    model's context is checked by train().
    """

    mode: str = "full"
    steps: int = 1000
    batch_size: int = 32
    lr: float | None = None
    seed: int = 0
    weight_decay: float = 0.01
    eval_every: int = 50
    dropout: float = 0.1
    warmup_steps: int | None = None
    grad_clip: float = 1.0
    seq_len: int | None = None
    val_fraction: float = 0.1
    from_scratch: bool = False

    def __post_init__(self):
        choice(self.mode, MODES, "mode")
        given = {name: value for name, value in asdict(self).items()  # an optional None follows the default rule
                 if not (value is None and name in ("lr", "warmup_steps", "seq_len"))}
        for name in ("steps", "batch_size", "eval_every", "seq_len"):
            if name in given and whole(given[name], name) <= 0:
                raise ValueError(f"{name} must be positive, got {given[name]}")
        for name in ("seed", "warmup_steps"):
            if name in given and not (is_whole(given[name]) and given[name] >= 0):
                raise ValueError(f"{name} must be a whole number >= 0, got {given[name]!r}")
        for name in ("lr", "grad_clip"):
            if name in given and not (is_number(given[name]) and math.isfinite(given[name]) and given[name] > 0):
                raise ValueError(f"{name} must be a positive number, got {given[name]!r}")
        for name in ("weight_decay", "dropout", "val_fraction"):
            if not (is_number(getattr(self, name)) and 0 <= getattr(self, name) < 1):
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        flag(self.from_scratch, "from_scratch")

    @property
    def peak_lr(self) -> float:
        return DEFAULT_LR[self.mode] if self.lr is None else float(self.lr)

    @property
    def warmup(self) -> int:
        return max(1, min(100, self.steps // 10)) if self.warmup_steps is None else self.warmup_steps

    def recorded(self, config) -> dict:
        """The settings as run on a model with this config: every None resolved (History.settings)."""
        return {**asdict(self), "lr": self.peak_lr, "warmup_steps": self.warmup,
                "seq_len": config.n_positions if self.seq_len is None else self.seq_len,
                "dropout": self.dropout if self.mode == "full" else 0.0}


def trainability(model) -> str | None:
    """None when training can take `model`; otherwise a sentence saying why not (training reads the
    bundled corpus as words, so a subword tokenizer has nothing to learn from it)."""
    if getattr(model.tokenizer, "kind", "word") == "bpe":
        return ("This model reads text with a byte-level BPE tokenizer (GPT-2 family): Glassbox "
                "trains only word-level models on its own corpus.")
    return None
