"""Experiments: why the softmax must be stable (scores multiplied until float32's exp overflows),
minimal pairs (two prompts compared layer by layer), attention is not explanation (each
head's effect when ablated against how hard the last token looks), and watch learning happen
(one training step taken apart: gradient norms per parameter group, what the step does to the
prompt, and how the prompt's prediction moved between a training run's snapshots)."""
import numpy as np
import pandas as pd
import streamlit as st

from core.explain import block as explain_block
from core.explain import experiments, learning_step, questions
from core.text.markdown import escaped
from dashboard import ablation, charts, figures, frame, glossary, models, runs, traces, widgets
from dashboard.navigation import EXPERIMENTS
from dashboard.prompt import current_prompt, prepare_prompt
from dashboard.text import safe_message
from dashboard.widgets import note

LEARNING_RATES = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
UPDATE_RULES = {"sgd": "plain SGD", "adamw": "AdamW, first step"}
TABS = EXPERIMENTS.tabs


def fmt(value: float) -> str:
    return "NaN" if np.isnan(value) else "inf" if np.isinf(value) else f"{value:.6g}"


# --- why the softmax must be stable ------------------------------------------------------------

def stable_softmax(model, trace) -> None:
    layer, head = widgets.choose_head(model.config, "overflow")
    query = len(trace.tokens) - 1
    labels = charts.token_labels(trace.tokens)
    row = trace.layers[layer].masked_scores[head, query, :query + 1]  # [query + 1] the visible scaled scores
    breaking = experiments.breaking_factor(row)
    note("Softmax needs exp of every score. In float32, exp of anything above 88.72 is larger than the largest "
         "number float32 holds (3.4 × 10³⁸) and becomes inf; then inf / inf is NaN, and the weights are garbage. "
         "Subtracting the row's largest score first changes nothing mathematically but keeps every exp at most 1.")
    factor = st.select_slider("Multiply this head's scores by", experiments.pressure_factors(breaking), value=1.0,
                              key="overflow_factor")
    two_ways = experiments.softmax_two_ways(row, factor)
    kernels = experiments.kernel_row(trace, layer, head, query, factor)
    if breaking is None:
        st.markdown("The largest score is 0 here, so exp never overflows.")
    else:
        limit = experiments.FLOAT32_EXP_LIMIT if breaking > 0 else experiments.FLOAT32_EXP_FLOOR
        st.markdown(f"The largest score of **{escaped(labels[query])}**'s row is {row.max():.4f}: the naive softmax breaks "
                    f"past a factor of **{breaking:.2f}** ({row.max():.4f} × {breaking:.2f} = {limit:.2f}).")
    naive_nan = int(np.isnan(two_ways["naive"]).sum())
    cols = st.columns(3)
    cols[0].metric("naive: NaN weights", naive_nan)
    cols[1].metric("stable: sum of weights", f"{two_ways['stable'].sum():.6f}")
    if "c" in kernels:
        cols[2].metric("C kernel vs stable", f"{np.abs(kernels['c'] - two_ways['stable']).max():.1e}")
    table = {"key": labels[:query + 1], "score × factor": [fmt(v) for v in two_ways["scaled"]],
             "exp(x), naive": [fmt(v) for v in two_ways["naive_exp"]],
             "naive weight": [fmt(v) for v in two_ways["naive"]],
             "stable weight": [fmt(v) for v in two_ways["stable"]]}
    for backend, weights in kernels.items():
        table[f"{'C kernel' if backend == 'c' else 'NumPy kernel'} weight"] = [fmt(v) for v in weights]
    st.table(pd.DataFrame(table))
    if naive_nan:
        st.warning("The naive softmax has broken: exp overflowed to inf. The stable one and the kernels are fine.")


# --- minimal pairs ------------------------------------------------------------------------------

def pair_prompt(model, label: str, key: str, default: str):
    text = st.text_input(label, value=default, key=key)
    try:
        return prepare_prompt(model, text)
    except ValueError as error:
        st.warning(f"{label}: {safe_message(error)}.")
        return None


def minimal_pairs(model) -> None:
    note("Change one word and watch where the difference travels. The distance between the two last tokens' "
         "residual vectors shows how far apart the model's running notes are after each layer; the attention and "
         "the next-token distribution show what that changes. "
         f"See {glossary.link('total variation')} and {glossary.link('KL divergence')}.")
    left, right = st.columns(2)
    with left:
        first = pair_prompt(model, "First prompt", "pair_a", "the sky is")
    with right:
        second = pair_prompt(model, "Second prompt", "pair_b", "the grass is")
    if first is None or second is None:
        return
    trace_a, trace_b = traces.trace(first.ids), traces.trace(second.ids)
    result = experiments.minimal_pair(trace_a, trace_b)
    change = result["next_token"]
    cols = st.columns(4)
    cols[0].metric("first: next token", escaped(trace_a.top_predictions(1)[0][0]))  # a metric is Markdown
    cols[1].metric("second: next token", escaped(trace_b.top_predictions(1)[0][0]))
    cols[2].metric("total variation", f"{change['total_variation']:.4f}")
    cols[3].metric("KL(first || second), bits", "∞" if np.isinf(change["kl"]) else f"{change['kl']:.4f}")
    points = ["embedding"] + [f"after block {layer}" for layer in range(model.config.n_layer)]
    figures.show_chart(charts.lines(points, {"distance": result["distance"]}, x_sort=points,
                                    title="Distance between the last tokens' residual vectors", x_title="point",
                                    y_title="L2 distance"))
    heads = [f"head {h}" for h in range(model.config.n_head)]
    figures.show_chart(charts.heatmap(result["attention_change"], [f"layer {l}" for l in range(model.config.n_layer)],
                                      heads, title="Change in the last token's attention (total variation)",
                                      value_title="total variation", row_title="layer", col_title="head"))
    figures.show_chart(charts.grouped_bars([model.tokenizer.token(int(i)) for i in change["ids"]],
                                           {"first": change["before"], "second": change["after"]},
                                           title="Next-token probabilities"))


# --- attention is not explanation --------------------------------------------------------------

def attention_against_effect(model, trace) -> None:
    config = model.config
    token_id = explain_block.predicted_token(trace)
    token = trace.vocabulary[token_id]
    note(f"Zero one head at a time and see how the probability of **{escaped(token)}** changes. Next to it: how hard the "
         "last token looks at any one token through that head. A head can look hard at a token and matter little, "
         f"and a diffuse head can matter a lot: attention shows where information may flow, "
         f"{glossary.link('ablation')} shows whether it counted.")
    automatic = config.n_layer * config.n_head <= questions.MAX_AUTO_ABLATIONS
    layers = set(range(config.n_layer)) if automatic else ablation.requested_layers(trace)
    if not automatic:
        left, right = st.columns([2, 1])
        layer = widgets.choose_layer(config, "ablate_layer", place=left, label="Layer to ablate")
        right.button(f"Ablate the {config.n_head} heads of layer {layer}", key="ablate_button",
                     on_click=layers.add, args=(layer,))
        st.caption(f"{config.n_layer * config.n_head} heads take one forward pass each: one layer at a time.")
    if not layers:
        return
    focus, where = experiments.last_token_focus(trace)
    labels = charts.token_labels(trace.tokens)
    rows = []
    for layer in sorted(layers):
        effects = ablation.layer_effects(model, trace, token_id, layer)
        rows += [{"head": f"L{layer}H{h}", "layer": f"layer {layer}", "max weight": float(focus[layer, h]),
                  "looks at": labels[where[layer, h]], "change": float(effects[h])} for h in range(config.n_head)]
    table = pd.DataFrame(rows)
    figures.show_chart(charts.labelled_scatter(table["max weight"], table["change"], table["head"], table["layer"],
                                               title=f"Attention against effect on {token}",
                                               x_title="largest attention weight of the last token",
                                               y_title=f"change in p({token}) when zeroed"))
    st.dataframe(table, hide_index=True)


# --- watch learning happen ------------------------------------------------------------------------

def step_gradients(model):
    """The seeded batch and (loss, gradients) on it, once per model in this session."""
    batch = learning_step.step_batch(model)
    return batch, learning_step.batch_gradients(model.params, model.config, *batch)


def watch_learning(model, prompt) -> None:
    reason = learning_step.step_refusal(model)
    if reason is not None:
        st.warning(f"{safe_message(reason)} So this tab cannot take a training step with it; pick the bundled model or one "
                   "you trained in the sidebar.")
        return
    note("Training nudges every parameter against its gradient: the direction that raises the loss on a batch "
         "of sentences fastest. The bars show how steep the loss is for each group of parameters; one step of "
         "plain SGD moves each group by the learning rate times exactly that gradient, so the tallest bars move "
         "most. Below: what that one step does to your prompt's next-token probabilities and to one head's "
         f"attention. See {glossary.link('gradient')} and {glossary.link('learning rate')}.")
    left, right = st.columns(2)
    optimizer = left.radio("Update rule", list(UPDATE_RULES), format_func=UPDATE_RULES.get, horizontal=True,
                           key="learn_optimizer")
    lr = right.select_slider("Learning rate", LEARNING_RATES, value=0.1, key="learn_lr")
    if optimizer == "adamw":
        st.caption("AdamW's first step (fresh moments, as at step 1 of a run) divides each gradient by its own "
                   "size: every parameter moves by about the learning rate, whatever its gradient. Training "
                   "uses it with learning rates near 0.003.")
    batch, grads = traces.remembered("learning_grads", (), lambda: step_gradients(model))
    step = learning_step.one_training_step(model, lr, optimizer, grads=grads, batch=batch)
    inputs = batch[0]
    cols = st.columns(4)
    cols[0].metric("loss before the step", f"{step.loss_before:.4f}")
    cols[1].metric("loss after the step", f"{step.loss_after:.4f}",
                   delta=f"{step.loss_after - step.loss_before:+.4f}", delta_color="inverse")
    cols[2].metric("gradient norm (all)", f"{step.total_norm:.4f}")
    cols[3].metric("batch", f"{inputs.shape[0]} × {inputs.shape[1]} tokens")
    figures.show_chart(charts.bars(list(step.norms), np.array(list(step.norms.values())),
                                   title="Gradient norm of each parameter group", value_title="gradient norm",
                                   label_title="group", every_label=True))
    layer, head = widgets.choose_head(model.config, "learn")
    change = learning_step.prompt_change(model, step.params_after, prompt.ids, layer, head)
    moved = change["distribution"]
    cols = st.columns(3)
    cols[0].metric("next token: total variation", f"{moved['total_variation']:.6f}")
    cols[1].metric("next token: KL(before || after), bits", f"{moved['kl']:.6f}")
    cols[2].metric(f"head {layer}.{head}: largest weight change", f"{change['largest_pattern_change']:.6f}")
    figures.show_chart(charts.grouped_bars([model.tokenizer.token(int(i)) for i in moved["ids"]],
                                           {"before": moved["before"], "after": moved["after"]},
                                           title="Next-token probabilities before and after one step"))
    labels = charts.token_labels(prompt.tokens)
    figures.show_chart(charts.heatmap(change["pattern_change"], labels, labels, diverging=True, symmetric=True,
                                      value_title="after − before",
                                      title=f"Layer {layer}, head {head}: attention after the step minus before"))
    snapshot_moves(model, prompt)


def snapshot_moves(model, prompt) -> None:
    st.subheader("Between the snapshots of your training run")
    run = runs.newest_with_snapshots()
    if run is None:
        st.caption("Train a model on the Training page and come back: this part shows how your prompt's next-token "
                   "distribution moved between the run's time-lapse snapshots.")
        return
    try:
        ids = run.tokenizer.encode(prompt.text)[-run.config.n_positions:]
        moves = traces.remembered("snapshot_moves", (run.name, len(run.snapshots), prompt.text),
                                  lambda: learning_step.snapshot_moves(run.config, run.tokenizer, run.snapshots, ids))
    except ValueError as error:
        st.warning(f"{escaped(run.name)}'s model cannot read this prompt: {safe_message(error)}.")
        return
    st.caption(f"{escaped(run.name)} ({escaped(run.description)}): how far the next-token distribution of "
               f"\"{escaped(prompt.text)}\" moved "
               "from each snapshot to the next: where the big moves are is where the model changed its mind.")
    table = pd.DataFrame(moves)
    steps = [f"{move['from_step']}→{move['to_step']}" for move in moves]
    figures.show_chart(charts.lines(steps, {"total variation": table["total_variation"].to_numpy()}, x_sort=steps,
                                    title="Next-token distribution: change between consecutive snapshots",
                                    x_title="steps", y_title="total variation"))
    st.dataframe(table.rename(columns={"from_step": "from step", "to_step": "to step", "kl": "KL, bits",
                                       "total_variation": "total variation", "top": "most likely next",
                                       "top_probability": "its probability"}), hide_index=True)


def main() -> None:
    prompt = current_prompt()
    if prompt is None:
        return
    model = models.current_model()
    trace = traces.trace(prompt.ids)
    widgets.lazy_tabs(EXPERIMENTS, {
        TABS.softmax: lambda: stable_softmax(model, trace),
        TABS.pairs: lambda: minimal_pairs(model),
        TABS.ablation: lambda: attention_against_effect(model, trace),
        TABS.learning: lambda: watch_learning(model, prompt),
    })


frame.render_page(EXPERIMENTS, main, "Break the softmax, compare two prompts, switch heads off.")
