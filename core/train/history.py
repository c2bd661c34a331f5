"""`History`: the record of a run (one row per step, the settings, how it stopped), and saving a
trained model with its history beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.io.checkpoint import history_text, save_checkpoint

RECORD_KEYS = ("step", "train_loss", "val_loss", "accuracy", "heldout_perplexity", "lr", "grad_norm",
               "tokens_per_s", "elapsed_s")


@dataclass
class History:
    """What a training run did: one record per completed step (RECORD_KEYS; evaluation fields
    None between evaluations), the settings it ran with (TrainSettings.recorded plus facts about
    the data), why it stopped early (None if it did not), and whether that was divergence."""

    records: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    stop_reason: str | None = None
    diverged: bool = False

    def evaluations(self) -> list[dict]:
        """The records where the model was evaluated (validation loss and/or held-out accuracy)."""
        return [record for record in self.records
                if record.get("val_loss") is not None or record.get("accuracy") is not None]

    def to_json(self) -> str:
        """The records as history.json holds them (core.io.checkpoint.history_text)."""
        return history_text(self.records)


def save_trained(model, history: History, directory, *, overwrite: bool = False) -> Path:
    """The checkpoint with its history.json, written as one (core.io.checkpoint.save_checkpoint)."""
    return save_checkpoint(model, directory, overwrite=overwrite, history=history.records)
