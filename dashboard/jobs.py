"""Training in the background, fairly shared: one training per session, at most `max_trainings()`
per server at once (the others wait in a queue, first come first served).

A training runs in a worker thread, outside the page's script run, so the learner can visit other
pages while it runs. The worker never calls Streamlit: it fills its job's `TrainingRun`
(dashboard.runs) under a lock; the page and the sidebar read a `Progress` copy of it
(`sidebar_progress`, drawn on every page by app.py, polls once a second in an `st.fragment`).
A job stops when asked (Stop, from any page), when its session closes, or at the time limit
MAX_SECONDS. An ended job's run joins the session's runs and its model becomes the one in use
(`collect`).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np
import streamlit as st

from core.model.model import Model
from core.model.params import init_params
from core.native.parallel import cores
from core.train.loop import train
from core.train.settings import TrainSettings, trainability
from dashboard import models, server
from dashboard.runs import NEWEST_KEY, NOTICE_KEY, TrainingRun, heldout_table, runs
from dashboard.text import safe_message

MAX_SECONDS = 180  # wall-clock limit of one training (the step and batch caps keep it well below)
MAX_TRAINABLE_PARAMETERS = 5_000_000  # a larger model learns nothing useful within the step and time caps
POLL_SECONDS = 1.0  # how often the sidebar and the live chart look at a running training
SNAPSHOTS = 12  # time-lapse frames per run (plus the starting point)
JOB_KEY = "train_job"  # session_state: this session's queued or running TrainingJob


def max_trainings() -> int:
    """Trainings a server runs at once: GLASSBOX_MAX_TRAININGS, default max(1, cores - 1)."""
    text = os.environ.get("GLASSBOX_MAX_TRAININGS", "")
    return max(1, int(text)) if text.strip().isdigit() else max(1, cores() - 1)


def size_refusal(model) -> str | None:
    """None when `model` is small enough to train on a shared server; otherwise why not."""
    count = sum(int(value.size) for value in model.params.values())
    if count > MAX_TRAINABLE_PARAMETERS:
        return (f"This model has {count:,} parameters; the dashboard trains models of at most "
                f"{MAX_TRAINABLE_PARAMETERS:,}, so that a run stays short.")
    return None


def training_refusal(model) -> str | None:
    """None when this server may train `model`: what training can take, within the server's size cap."""
    return trainability(model) or size_refusal(model)


def copy_params(params: dict) -> dict:
    return {name: np.array(value) for name, value in params.items()}


def snapshot_steps(steps: int) -> set[int]:
    return set(np.unique(np.linspace(0, steps, SNAPSHOTS + 1).round().astype(int)).tolist())


@dataclass(frozen=True)
class Progress:
    """What the page shows of a job: a copy, so that the page never holds the lock."""

    status: str  # "queued", "running", "finished", "failed" or "cancelled"
    step: int
    steps: int
    loss: float | None
    tokens_per_s: float | None
    position: int | None  # place in the queue (1 = next), when queued
    records: tuple[dict, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


# --- the job -------------------------------------------------------------------------------------

class TrainingJob:
    """A training of one session: queued, then run by a worker thread on a copy of the model."""

    def __init__(self, session_id: str, base: Model, settings: TrainSettings, number: int):
        self.session_id = session_id
        self.model = Model(base.config, copy_params(base.params), base.tokenizer)
        self.run = TrainingRun(number, settings, base.config, base.tokenizer)
        self.lock = threading.Lock()  # guards status, run.records, run.snapshots
        self.status = "queued"
        self.error: str | None = None
        self.stop_requested = threading.Event()
        self.ended = threading.Event()
        self.queue: TrainingQueue | None = None

    def progress(self) -> Progress:
        with self.lock:
            last = self.run.records[-1] if self.run.records else {}
            records = tuple(self.run.records)
            status = self.status
        position = self.queue.position(self) if self.queue is not None and status == "queued" else None
        return Progress(status, last.get("step", 0), self.run.settings.steps, last.get("train_loss"),
                        last.get("tokens_per_s"), position, records)

    def request_stop(self) -> None:
        """Stop a running job after its current step, or take a queued one out of the queue."""
        self.stop_requested.set()
        if self.queue is not None:
            self.queue.cancel(self)

    def execute(self, alive) -> None:
        """Train (in the worker thread); `alive()` says whether the session is still there."""
        settings, run = self.run.settings, self.run
        start = (init_params(run.config, settings.seed) if settings.from_scratch else copy_params(self.model.params))
        run.snapshots.append((0, start))
        wanted, began = snapshot_steps(settings.steps), time.monotonic()

        def callback(record, params):
            with self.lock:
                run.records.append(record)
                if record["step"] in wanted:
                    run.snapshots.append((record["step"], copy_params(params)))
            note = self._stop_note(alive, time.monotonic() - began)
            if note is not None:
                run.stop_note = f"stopped after step {record['step']}: {note}"
                return False
            return True

        try:
            history = train(self.model, settings, callback=callback)
        except ValueError as error:  # settings train() refuses for this model, e.g. a batch larger than the data
            self._end("failed", error=str(error))
            return
        steps = len(run.records)
        with self.lock:
            if run.snapshots[-1][0] != steps:
                run.snapshots.append((steps, copy_params(self.model.params)))
        run.history = history
        run.heldout = heldout_table(run.model(start), self.model)
        self._end("finished")

    def _stop_note(self, alive, elapsed: float) -> str | None:
        if self.stop_requested.is_set():
            return "you pressed Stop"
        if elapsed > MAX_SECONDS:
            return f"the time limit of {MAX_SECONDS} s per training"
        if not alive():
            return "the browser session closed"
        return None

    def _end(self, status: str, error: str | None = None) -> None:
        with self.lock:
            self.status, self.error = status, error
        self.ended.set()


# --- the queue -----------------------------------------------------------------------------------

class TrainingQueue:
    """At most `max_trainings()` jobs run at once; the others wait, first come first served."""

    def __init__(self, alive=server.session_alive):
        self.lock = threading.Lock()
        self.waiting: list[TrainingJob] = []
        self.running: set[TrainingJob] = set()
        self.alive = alive

    def submit(self, job: TrainingJob) -> None:
        job.queue = self
        with self.lock:
            self.waiting.append(job)
            self._dispatch()

    def position(self, job: TrainingJob) -> int | None:
        with self.lock:
            return self.waiting.index(job) + 1 if job in self.waiting else None

    def cancel(self, job: TrainingJob) -> None:
        with self.lock:
            if job not in self.waiting:
                return
            self.waiting.remove(job)
        job._end("cancelled")

    def counts(self) -> tuple[int, int]:
        """(running, waiting)."""
        with self.lock:
            return len(self.running), len(self.waiting)

    def _dispatch(self) -> None:
        """Start waiting jobs while there is room (called with the lock held)."""
        while self.waiting and len(self.running) < max_trainings():
            job = self.waiting.pop(0)
            if not self.alive(job.session_id):
                job._end("cancelled")
                continue
            self.running.add(job)
            threading.Thread(target=self._work, args=(job,), name=f"glassbox-training-{job.run.number}",
                             daemon=True).start()

    def _work(self, job: TrainingJob) -> None:
        with job.lock:
            job.status = "running"
        try:
            job.execute(lambda: self.alive(job.session_id))
        except Exception as error:  # noqa: BLE001 - a worker must always hand its slot back
            job._end("failed", error=f"{type(error).__name__}: {error}")
        finally:
            with self.lock:
                self.running.discard(job)
                self._dispatch()


QUEUE = TrainingQueue()  # one per server process


# --- the session's side (Streamlit) ----------------------------------------------------------------

def current_job() -> TrainingJob | None:
    return st.session_state.get(JOB_KEY)


def start_training(base: Model, settings: TrainSettings) -> TrainingJob:
    """Queue a training of a copy of `base` for this session (one at a time: ValueError otherwise)."""
    job = current_job()
    if job is not None and job.progress().active:
        raise ValueError("this session is already training; stop it first (sidebar)")
    job = TrainingJob(server.session_id(), base, settings, len(runs()) + 1)
    st.session_state[JOB_KEY] = job
    QUEUE.submit(job)
    return job


def collect(job: TrainingJob, keep_snapshots: int = 3) -> None:
    """File an ended job's run with the session's runs and make its model the one in use."""
    st.session_state.pop(JOB_KEY, None)
    run = job.run
    if job.status == "cancelled":
        st.session_state[NOTICE_KEY] = f"{run.name} was taken out of the queue before it started."
        return
    if job.status == "failed":
        st.session_state[NOTICE_KEY] = f"Training did not run: {safe_message(job.error)}"
        return
    runs().append(run)
    for old in runs()[:-keep_snapshots]:
        old.snapshots = old.snapshots[:1]
    models.use_trained_model(job.model, run.name)
    st.session_state[NEWEST_KEY] = True  # the training page shows the newest run
    if run.stop_reason:
        st.session_state[NOTICE_KEY] = f"{run.name}: {run.stop_reason}."


def sidebar_progress() -> None:
    """This session's training in the sidebar (every page): progress, queue place, one Stop button."""
    if current_job() is not None:
        with st.sidebar:
            _progress_box()


@st.fragment(run_every=POLL_SECONDS)
def _progress_box() -> None:
    job = current_job()
    if job is None:
        return
    progress = job.progress()
    if not progress.active:
        collect(job)
        st.rerun()  # every page element (and the sidebar's model name) now shows the new model
    box = st.container(border=True)
    if progress.status == "queued":
        running, waiting = QUEUE.counts()
        box.markdown(f"**{job.run.name} is waiting**: place {progress.position} of {waiting} in the queue "
                     f"({running} of {max_trainings()} trainings running on this server).")
        box.button("Cancel", key="train_stop", on_click=job.request_stop)
        return
    text = f"**Training {job.run.name}**: step {progress.step} of {progress.steps}"
    if progress.loss is not None:
        text += f" · loss {progress.loss:.3f} · {progress.tokens_per_s:,.0f} tokens/s"
    box.markdown(text)
    box.progress(progress.step / progress.steps)
    box.button("Stop", key="train_stop", on_click=job.request_stop,
               help="Stop after the current step; the model trained so far becomes the one in use.")
