"""Training page: train the output head or the whole model and watch it learn.

Training runs in the background (dashboard.jobs): the learner can visit other pages meanwhile,
sees the progress in the sidebar and can stop it from any page. A live loss curve here while it
runs; when it ends, the newest run is shown (held-out accuracy and before/after predictions, a
diverged or worse run flagged), every run of this session overlaid, and a time-lapse of snapshots
taken during training. The trained model lives in this session only (st.session_state); it can be
saved under a name in the server's models folder or downloaded as a zip.
"""
import numpy as np
import streamlit as st

from core.text.markdown import escaped
from core.io import models_dir
from core.train import settings as train_settings
from core.train.settings import TrainSettings
from dashboard import charts, figures, frame, glossary, jobs, models, runs, traces, widgets
from dashboard.navigation import TRAINING
from dashboard.prompt import current_prompt
from dashboard.runs import TrainingRun
from dashboard.text import safe_message

MAX_STEPS = 1000  # with MAX_BATCH: the slowest run (whole model) takes about 2 minutes on a 2-core machine
MAX_BATCH = 64
TOP = 8
DEFAULTS = {"mode": "full", "steps": 200, "batch_size": 32, "seed": 0, "from_scratch": True}


# --- settings that survive other pages --------------------------------------------------------------

def kept_setting(widget, label: str, name: str, default, *args, **options):
    """The setting `name` drawn by `widget` (key "train_<name>"), kept for the session by dashboard.widgets."""
    key = f"train_{name}"
    widgets.keep(key, default)
    return widget(label, *args, **widgets.kept_widget(key), **options)


def settings_controls(busy: bool) -> tuple[TrainSettings | None, bool]:
    """The training settings and the Start button, in the sidebar: (settings or None, Start pressed)."""
    bar = st.sidebar
    bar.subheader("Training")
    with bar:
        mode = kept_setting(st.radio, "What to train", "mode", DEFAULTS["mode"], ["head", "full"], horizontal=True,
                            format_func={"head": "output head only", "full": "whole model"}.get)
        steps = kept_setting(st.number_input, "Steps", "steps", DEFAULTS["steps"], 1, MAX_STEPS)
        batch_size = kept_setting(st.number_input, "Batch size", "batch_size", DEFAULTS["batch_size"], 1, MAX_BATCH)
        lr = kept_setting(st.number_input, "Learning rate", f"lr_{mode}", train_settings.DEFAULT_LR[mode], 1e-5, 1.0,
                          format="%.5f")
        seed = kept_setting(st.number_input, "Seed", "seed", DEFAULTS["seed"], 0, 2**31 - 1)
        from_scratch = kept_setting(st.checkbox, "Start from a fresh random model", "from_scratch",
                                    DEFAULTS["from_scratch"], help="Off: continue training the model in use.")
    start = bar.button("Start", type="primary", key="train_start", disabled=busy,
                       help="One training per session; this one is already training (see above)." if busy else None)
    settings = None
    try:
        settings = TrainSettings(mode=mode, steps=int(steps), batch_size=int(batch_size), lr=float(lr),
                                 seed=int(seed), from_scratch=bool(from_scratch),
                                 eval_every=max(10, int(steps) // 5))
    except (TypeError, ValueError) as error:
        bar.warning(f"These settings cannot train: {safe_message(error)}")
    return settings, start


# --- saving ---------------------------------------------------------------------------------------

def current_run() -> TrainingRun | None:
    """The run that made the model now in use, if any."""
    return next((run for run in runs.runs() if run.name == models.model_id()), None)


def save_controls() -> None:
    """Save the trained model in use under a name (the server's models folder) or download it as a zip."""
    run = current_run()
    if run is None:  # the model in use is a saved one: nothing to lose
        return
    history = run.history.records if run.history is not None else None
    stem = run.name.replace(" ", "-")
    st.subheader("Keep this model")
    st.info("Your trained model lives in this browser tab only: **reloading or closing the page loses it**. "
            "Save it under a name on this server or download it first.")
    left, right = st.columns([2, 1])
    with left.form("train_save_form", border=False):
        name = st.text_input(f"Name (letters, digits, '-' and '_'; at most {models_dir.MAX_NAME})",
                             key="train_save_name", placeholder=safe_free_name(stem))
        saved = st.form_submit_button("Save on this server")
    model = models.current_model()
    if saved:
        save_named(model, name.strip() or safe_free_name(stem), history)
    right.download_button("Download as zip", data=lambda: models_dir.checkpoint_zip(model, history),
                          file_name=f"{stem}.zip", mime="application/zip", on_click="ignore", key="train_download",
                          help="The checkpoint (config.json, model.safetensors, vocab.json, history.json): "
                               "`python -m core generate --checkpoint DIR \"the sky is\"` reads it once unzipped.")


def safe_free_name(stem: str) -> str:
    try:
        return models_dir.free_name(stem)
    except (OSError, ValueError):
        return stem


def save_named(model, name: str, history) -> None:
    try:
        saved = models_dir.save_named(model, name, history=history)
    except (OSError, ValueError) as error:
        st.warning(f"Not saved: {safe_message(error)}")
        return
    st.success(f"Saved as '{escaped(saved)}' in this server's models folder.")


# --- while training -----------------------------------------------------------------------------

def loss_chart(shown: list, title: str, marker: int | None = None, records=None):
    """Train (every step) and validation (where evaluated) loss of the given runs, overlaid.
    Series are named "run N · train" / "run N · validation" (short, so that legends are never cut)."""
    record_lists = [records] if records is not None else [run.records for run in shown]
    steps = sorted({record["step"] for found in record_lists for record in found})
    series = {}
    for run, found in zip(shown, record_lists):
        by_step = {record["step"]: record for record in found}
        for kind, label in (("train_loss", "train"), ("val_loss", "validation")):
            key = f"{run.name} · {label}" if len(shown) > 1 else label
            series[key] = [by_step[step][kind] if step in by_step else None for step in steps]
    return charts.lines(steps, series, title=title, x_title="step", y_title="loss (cross-entropy, nats per token)",
                        marker=marker)


@st.fragment(run_every=jobs.POLL_SECONDS)
def live_view() -> None:
    """The running training's loss so far (redrawn once a second; the training itself never waits for it)."""
    job = jobs.current_job()
    if job is None:
        return
    progress = job.progress()
    if not progress.active:
        jobs.collect(job)
        st.rerun()
    if progress.status == "queued":
        st.info(f"{job.run.name} waits for a free place: place {progress.position} in the queue. "
                "It starts by itself; you can cancel it in the sidebar.")
        return
    st.info(f"Training {job.run.name} ({job.run.description}) in the background: visit other pages if you like; "
            "the sidebar shows the progress and has the Stop button.")
    if progress.records:
        figures.show_chart(loss_chart([job.run], "Loss so far", records=progress.records))


# --- results -------------------------------------------------------------------------------------

def accuracy(table, column: str) -> float:
    return float(np.mean(table[column] == table["expected"]))


def run_flags(run: TrainingRun) -> None:
    """Say when a run diverged, was cut short or left the model worse than it started."""
    if run.diverged:
        st.warning(f"{run.name} diverged: {run.history.stop_reason}. The model in use is the last one before "
                   "it did; try a smaller learning rate.")
    elif run.stop_reason:
        st.info(f"{run.name}: {run.stop_reason}.")
    before, after = accuracy(run.heldout, "before"), accuracy(run.heldout, "after")
    if after < before:
        st.warning(f"{run.name} made the model worse on the held-out prompts ({before:.0%} before, {after:.0%} "
                   "after). 'Reset to the default model' brings back the bundled one.")


def before_after(run: TrainingRun) -> None:
    st.subheader(f"Held-out prompts: before and after {run.name}")
    table = run.heldout
    cols = st.columns(3)
    before, after = accuracy(table, "before"), accuracy(table, "after")
    cols[0].metric("Held-out accuracy before", f"{before:.0%}")
    cols[1].metric("Held-out accuracy after", f"{after:.0%}", f"{(after - before) * 100:+.0f} points")
    evaluated = [record for record in run.records if record["accuracy"] is not None]
    if evaluated:
        cols[2].metric("Last evaluation during training", f"{evaluated[-1]['accuracy']:.0%}",
                       f"step {evaluated[-1]['step']}", delta_color="off", delta_arrow="off")
    if run.records:
        speeds = [record["tokens_per_s"] for record in run.records]
        st.caption(f"{len(run.records)} steps in {run.records[-1]['elapsed_s']:.1f} s, median "
                   f"{np.median(speeds):,.0f} tokens/s. Prompts the model never saw verbatim; 'after' is the model "
                   "at the end of the run.")
    st.dataframe(table, hide_index=True, height=260)


def time_lapse(run: TrainingRun, prompt) -> None:
    st.subheader("Time-lapse: watch attention form")
    steps = [step for step, _ in run.snapshots]
    if len(steps) < 2:
        st.info("This run kept no snapshots (only the last few runs keep them).")
        return
    step = st.select_slider("Training step", steps, value=steps[-1], key=f"lapse_{run.name}")
    layer, head = widgets.choose_head(run.config, "lapse")
    params = dict(run.snapshots)[step]
    trace = traces.remembered("snapshot", (run.name, step, prompt.ids),
                              lambda: run.model(params).run(np.asarray(prompt.ids)))
    labels = charts.token_labels(prompt.tokens)
    top = trace.top_predictions(TOP)  # [(token, probability)]
    cols = st.columns(3)
    figures.show_chart(loss_chart([run], f"Loss, step {step} marked", marker=step), cols[0])
    figures.show_chart(charts.heatmap(trace.layers[layer].weights[head], labels, labels,
                                      title=f"Step {step}: layer {layer}, head {head}"), cols[1])
    figures.show_chart(charts.bars([token for token, _ in top], np.array([p for _, p in top]),
                                   title=f"Step {step}: next token"), cols[2])


def history_view(prompt) -> None:
    finished = runs.runs()
    if not finished:
        st.info("No training yet in this session. Pick the settings in the sidebar and press Start: by default a "
                "fresh random model learns the corpus from scratch, so you can watch it learn.")
        return
    st.subheader("Every run of this session")
    figures.show_chart(loss_chart(finished, "Loss of every run"))
    st.dataframe({"run": [run.name for run in finished], "settings": [run.description for run in finished],
                  "ended": [run.stop_reason or "all steps done" for run in finished]}, hide_index=True)
    names = [run.name for run in finished]
    if st.session_state.pop(runs.NEWEST_KEY, False) or st.session_state.get(runs.SHOWN_RUN_KEY) not in names:
        st.session_state[runs.SHOWN_RUN_KEY] = names[-1]  # set before the selectbox exists in this run
    chosen = st.selectbox("Look at run", names, key=runs.SHOWN_RUN_KEY)
    run = finished[names.index(chosen)]
    if run is not finished[-1]:
        st.caption(f"The newest run is {finished[-1].name}; this one is older.")
    run_flags(run)
    before_after(run)
    if prompt is not None:
        time_lapse(run, prompt)


def main() -> None:
    model = models.current_model()
    refusal = jobs.training_refusal(model)
    job = jobs.current_job()
    busy = job is not None and job.progress().active
    if refusal is not None:
        st.info(f"Training is not offered for this model: {safe_message(refusal)}")
    else:
        settings, start = settings_controls(busy)
        if start and settings is not None and not busy:
            try:
                jobs.start_training(model, settings)
            except ValueError as error:
                st.warning(f"Training did not start: {safe_message(error)}")
            else:
                st.rerun()  # the sidebar shows the progress and the Stop button; Start is disabled
    if st.sidebar.button("Reset to the default model", key="train_reset"):
        models.reset_model()
        st.rerun()
    if runs.NOTICE_KEY in st.session_state:
        st.info(st.session_state.pop(runs.NOTICE_KEY))
    if jobs.current_job() is not None:  # a fragment that draws nothing would let its reruns clear the next element
        live_view()
    prompt = current_prompt()
    history_view(prompt)
    save_controls()


frame.render_page(TRAINING, main, "Teach the model: only the output head (fast) or everything (backpropagation "
                  "through every layer). Training runs in the background; your training stays in your session. "
                  f"The curves show the {glossary.link('cross-entropy loss', 'loss')} in "
                  f"{glossary.link('bits and nats', 'nats')} per token; each step follows the "
                  f"{glossary.link('gradient')}, as far as the {glossary.link('learning rate')} says.")
