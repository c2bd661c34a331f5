"""A session's training runs: what each run was asked (core.train.settings' TrainSettings), what it
recorded (one record per step, snapshots for the time-lapse, core.train.history's History), how it
ended, and its held-out predictions before and after. dashboard.jobs fills a run in the
background; the training and experiments pages read the finished ones from `runs()`."""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from core.model.model import Model
from core.text.corpus import heldout_scores, load_heldout
from core.train.history import History
from core.train.loop import usable_heldout
from core.train.settings import TrainSettings

RUNS_KEY = "train_runs"  # session_state: this session's finished runs (TrainingRun), oldest first
NOTICE_KEY = "train_notice"  # session_state: what the last finished run wants to tell the learner
SHOWN_RUN_KEY = "train_run"  # the training page's "Look at run" selectbox
NEWEST_KEY = "train_show_newest"  # session_state: a run has ended; the training page selects the newest


@dataclass
class TrainingRun:
    """One training run of a session: what it was asked, what it recorded, how it ended."""

    number: int
    settings: TrainSettings
    config: object
    tokenizer: object
    records: list[dict] = field(default_factory=list)  # one per step (core.train.history.RECORD_KEYS)
    snapshots: list[tuple[int, dict]] = field(default_factory=list)  # (step, parameters) for the time-lapse
    history: History | None = None  # set when the run has ended
    heldout: object = None  # pandas table: prompt, expected, before, after (set when the run has ended)
    stop_note: str | None = None  # why the dashboard stopped it (Stop, time limit, closed session)

    @property
    def name(self) -> str:
        return f"run {self.number}"

    @property
    def description(self) -> str:
        what = {"head": "output head", "full": "whole model"}.get(self.settings.mode, self.settings.mode)
        start = "from a fresh random model" if self.settings.from_scratch else "from the model in use"
        return (f"{what}, {self.settings.steps} steps, batch {self.settings.batch_size}, "
                f"lr {self.settings.lr:g}, {start}")

    @property
    def stop_reason(self) -> str | None:
        if self.stop_note:
            return self.stop_note
        return self.history.stop_reason if self.history else None

    @property
    def diverged(self) -> bool:
        return bool(getattr(self.history, "diverged", False))

    def model(self, params: dict) -> Model:
        return Model(self.config, params, self.tokenizer)


def heldout_table(before: Model, after: Model):
    """Each held-out prompt with its expected word and the prediction before and after training
    (core.text.corpus scores them)."""
    import pandas as pd

    pairs = usable_heldout(after.tokenizer, load_heldout(), after.config.n_positions)

    def predicted(model: Model) -> list[str]:
        return [model.tokenizer.token(index) for index in heldout_scores(model, pairs)["predicted"]]

    return pd.DataFrame({"prompt": [prompt for prompt, _ in pairs], "expected": [expected for _, expected in pairs],
                         "before": predicted(before), "after": predicted(after)})


def runs() -> list[TrainingRun]:
    """This session's finished runs, oldest first."""
    return st.session_state.setdefault(RUNS_KEY, [])


def newest_with_snapshots() -> TrainingRun | None:
    """This session's newest run that kept a time-lapse (only the last few runs keep one), or None."""
    found = [run for run in runs() if len(run.snapshots) > 1]
    return found[-1] if found else None
