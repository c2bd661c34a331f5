"""Training page: train the output head or the whole model from the sidebar and watch it learn.

A live loss curve and progress bar while it runs; held-out accuracy and before/after predictions
when it ends; every run of this session overlaid; a time-lapse of snapshots taken during
training (loss marker, one head's attention and the next-token distribution at that step).
The trained model lives in this session only (st.session_state), never in the shared cache.
"""
import numpy as np
import pandas as pd
import streamlit as st

from core import Model
from core.model import init_params
from core.corpus import load_heldout
from core.training import DEFAULT_LR, History, save_trained, train, usable_heldout
from dashboard import charts, state

SNAPSHOTS = 12  # time-lapse frames per run (plus the starting point)
LIVE_REDRAWS = 25  # how often the live loss curve is redrawn during a run
RUNS_WITH_SNAPSHOTS = 3  # older runs keep their curves but drop their snapshots (memory)
TOP = 8


def copy_params(params: dict) -> dict:
    return {name: np.array(value) for name, value in params.items()}


def sidebar_controls() -> dict:
    """The training settings and buttons, in the sidebar."""
    bar = st.sidebar
    bar.subheader("Training")
    mode = bar.radio("What to train", ["head", "full"], key="train_mode", horizontal=True,
                     format_func={"head": "output head only", "full": "whole model"}.get)
    steps = bar.number_input("Steps", 1, 5000, 100, key="train_steps")
    batch_size = bar.number_input("Batch size", 1, 256, 16, key="train_batch")
    lr = bar.number_input("Learning rate", 1e-5, 1.0, DEFAULT_LR[mode], format="%.5f", key=f"train_lr_{mode}")
    seed = bar.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
    from_scratch = bar.checkbox("Start from a fresh random model", key="train_scratch")
    start, stop = bar.columns(2)
    return {"settings": {"mode": mode, "steps": int(steps), "batch_size": int(batch_size), "lr": float(lr),
                         "seed": int(seed), "from_scratch": from_scratch},
            "start": start.button("Start", type="primary", key="train_start"),
            "stop": stop.button("Stop", key="train_stop"),
            "reset": bar.button("Reset to the default model", key="train_reset")}


def save_controls() -> None:
    bar = st.sidebar
    directory = bar.text_input("Save the current model to a directory", key="train_save_dir",
                               placeholder="e.g. /tmp/my-model")
    if not bar.button("Save", key="train_save"):
        return
    if not directory.strip():
        bar.warning("Type a directory first.")
        return
    run = current_run()
    model = state.current_model()
    try:
        path = save_trained(model, run["history"], directory) if run else model.save(directory)
    except (OSError, ValueError) as error:
        bar.error(f"Could not save there: {error}")
        return
    bar.success(f"Saved to {path}")


def runs() -> list[dict]:
    return st.session_state.setdefault("runs", [])


def current_run() -> dict | None:
    """The run that made the model now in use, if any."""
    return next((run for run in runs() if run["name"] == state.model_id()), None)


# --- running -------------------------------------------------------------------------------------

def snapshot_steps(steps: int) -> set[int]:
    return set(np.unique(np.linspace(0, steps, SNAPSHOTS + 1).round().astype(int)).tolist())


def start_run(settings: dict) -> None:
    """Train a copy of the current model; draw progress live; keep the result in this session."""
    base = state.current_model()
    model = Model(base.config, copy_params(base.params), base.tokenizer)
    start = init_params(base.config, settings["seed"]) if settings["from_scratch"] else copy_params(base.params)
    name = f"run {len(runs()) + 1}: {settings['mode']}, {settings['steps']} steps, lr {settings['lr']:g}"
    run = {"name": name, "settings": dict(settings), "records": [], "snapshots": [(0, start)],
           "live_params": None, "config": base.config, "tokenizer": base.tokenizer}
    st.session_state["live_run"] = run  # survives an interruption (the Stop button)
    progress = st.progress(0.0, text="Starting ...")
    curve = st.empty()
    status = st.status(f"Training {name} ...", expanded=True)
    wanted = snapshot_steps(settings["steps"])
    every = max(1, settings["steps"] // LIVE_REDRAWS)

    def callback(record, params):
        run["records"].append(record)
        run["live_params"] = params
        step = record["step"]
        if step in wanted:
            run["snapshots"].append((step, copy_params(params)))
        progress.progress(step / settings["steps"], text=f"Step {step} of {settings['steps']} · "
                                                         f"loss {record['train_loss']:.3f}")
        if step % every == 0 or step == settings["steps"]:
            state.show_chart(loss_chart([run], "Loss so far"), curve)
        if record["accuracy"] is not None:
            status.write(f"Step {step}: held-out accuracy {record['accuracy']:.0%}"
                         + (f", validation loss {record['val_loss']:.3f}" if record["val_loss"] is not None else ""))

    history = train(model, mode=settings["mode"], steps=settings["steps"], batch_size=settings["batch_size"],
                    lr=settings["lr"], seed=settings["seed"], from_scratch=settings["from_scratch"],
                    eval_every=max(10, settings["steps"] // 5), callback=callback)
    status.update(label=f"Finished {name}", state="complete")
    finish_run(run, model.params, history)
    st.rerun()  # redraw every page element (and the sidebar) with the new model


def finish_run(run: dict, params: dict, history: History) -> None:
    """Make the run's parameters this session's model and file the run with the others."""
    model = run_model(run, copy_params(params))
    run["history"] = history
    run["stop_reason"] = history.stop_reason
    run["heldout"] = heldout_table(run_model(run, run["snapshots"][0][1]), model)
    del run["live_params"]
    state.use_trained_model(model, run["name"])
    runs().append(run)
    for old in runs()[:-RUNS_WITH_SNAPSHOTS]:
        old["snapshots"] = old["snapshots"][:1]
    st.session_state.pop("live_run", None)


def finish_interrupted_run() -> None:
    """A run cut short by Stop (or by leaving the page): keep what it learned so far."""
    run = st.session_state.get("live_run")
    if run is None:
        return
    if run["live_params"] is None:
        st.session_state.pop("live_run")
        return
    steps = len(run["records"])
    history = History(records=run["records"], settings=run["settings"], stop_reason=f"stopped after step {steps}")
    if run["snapshots"][-1][0] != steps:
        run["snapshots"].append((steps, copy_params(run["live_params"])))
    finish_run(run, run["live_params"], history)
    st.session_state["train_notice"] = f"Training stopped after step {steps}; the model from that step is now in use."
    st.rerun()  # redraw the sidebar too, with the new model


# --- results -------------------------------------------------------------------------------------

def loss_chart(shown: list[dict], title: str, marker: int | None = None):
    """Train (every step) and validation (where evaluated) loss of the given runs, overlaid."""
    steps = sorted({record["step"] for run in shown for record in run["records"]})
    series = {}
    for run in shown:
        by_step = {record["step"]: record for record in run["records"]}
        for kind, label in (("train_loss", "train"), ("val_loss", "validation")):
            key = f"{run['name']} · {label}" if len(shown) > 1 else label
            series[key] = [by_step[step][kind] if step in by_step else None for step in steps]
    return charts.lines(steps, series, title=title, x_title="step", y_title="loss (cross-entropy, nats per token)",
                        marker=marker)


def predictions(model, prompts) -> list[str]:
    """The model's most likely next word for each prompt."""
    return [model.tokenizer.token(int(np.argmax(model.forward(np.array(model.tokenizer.encode(p)))[-1])))
            for p in prompts]


def run_model(run: dict, params: dict) -> Model:
    return Model(run["config"], params, run["tokenizer"])


def heldout_table(before: Model, after: Model) -> pd.DataFrame:
    """Each held-out prompt with its expected word and the prediction before and after training."""
    pairs = usable_heldout(after.tokenizer, load_heldout(), after.config.n_positions)
    prompts = [prompt for prompt, _ in pairs]
    return pd.DataFrame({"prompt": prompts, "expected": [expected for _, expected in pairs],
                         "before": predictions(before, prompts), "after": predictions(after, prompts)})


def before_after(run: dict) -> None:
    st.subheader("Held-out prompts: before and after")
    table = run["heldout"]
    cols = st.columns(3)
    cols[0].metric("Held-out accuracy before", f"{np.mean(table['before'] == table['expected']):.0%}")
    cols[1].metric("Held-out accuracy after", f"{np.mean(table['after'] == table['expected']):.0%}")
    evaluated = [record for record in run["records"] if record["accuracy"] is not None]
    if evaluated:
        cols[2].metric("Last evaluation during training", f"{evaluated[-1]['accuracy']:.0%}",
                       f"step {evaluated[-1]['step']}", delta_color="off", delta_arrow="off")
    st.caption("Prompts the model never saw verbatim; 'after' is the model at the end of the run.")
    st.dataframe(table, hide_index=True, height=260)


def time_lapse(run: dict, prompt) -> None:
    st.subheader("Time-lapse: watch attention form")
    steps = [step for step, _ in run["snapshots"]]
    if len(steps) < 2:
        st.info("This run kept no snapshots (only the last few runs keep them).")
        return
    step = st.select_slider("Training step", steps, value=steps[-1], key=f"lapse_{run['name']}")
    config = run["config"]
    left, right = st.columns(2)
    layer = left.selectbox("Layer", range(config.n_layer), key="lapse_layer")
    head = right.selectbox("Head", range(config.n_head), key="lapse_head")
    params = dict(run["snapshots"])[step]
    trace = state.remembered("snapshot", (run["name"], step, prompt.ids),
                             lambda: run_model(run, params).run(np.asarray(prompt.ids)))
    labels = charts.token_labels(prompt.tokens)
    probs = trace.next_token_probs
    ids = np.argsort(-probs, kind="stable")[:TOP]
    cols = st.columns(3)
    state.show_chart(loss_chart([run], f"Loss, step {step} marked", marker=step), cols[0])
    state.show_chart(charts.heatmap(trace.layers[layer].weights[head], labels, labels,
                                    title=f"Step {step}: layer {layer}, head {head}"), cols[1])
    state.show_chart(charts.bars([run["tokenizer"].token(int(i)) for i in ids], probs[ids],
                                 title=f"Step {step}: next token"), cols[2])


def history_view(prompt) -> None:
    if not runs():
        st.info("No training yet in this session. Pick the settings in the sidebar and press Start: "
                "'output head only' takes seconds.")
        return
    st.subheader("Every run of this session")
    state.show_chart(loss_chart(runs(), "Loss of every run"))
    names = [run["name"] for run in runs()]
    chosen = st.selectbox("Look at run", names, index=len(names) - 1, key="train_run")
    run = runs()[names.index(chosen)]
    if run.get("stop_reason"):
        st.info(f"{chosen}: {run['stop_reason']}")
    before_after(run)
    if prompt is not None:
        time_lapse(run, prompt)


def main() -> None:
    controls = sidebar_controls()
    save_controls()
    finish_interrupted_run()
    if controls["reset"]:
        state.reset_model()
        st.rerun()
    if "train_notice" in st.session_state:
        st.info(st.session_state.pop("train_notice"))
    prompt = state.current_prompt()
    if controls["start"]:
        try:
            start_run(controls["settings"])
        except ValueError as error:  # settings train() refuses, e.g. a batch larger than the data
            st.session_state.pop("live_run", None)
            st.error(f"Training did not start: {error}")
    elif controls["stop"]:
        st.info("Nothing is training right now.")
    history_view(prompt)


state.render_page("Training", main, "Teach the model from the sidebar: only the output head (fast) or everything "
                  "(backpropagation through every layer). Your training stays in your session.")
