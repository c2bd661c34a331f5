"""Attention explorer: every layer and head at once, per-head summaries, the residual stream's
norm, MLP activations, the logit lens, and "what if" switches (the model's interventions)
with the change they make to the next-token distribution."""
import numpy as np
import streamlit as st

from core import explain
from core.model import Interventions
from dashboard import charts, state

LENS_TOP = 3
MLP_UNITS = 24


def stream_labels(n_layer: int) -> list[str]:
    """Names of the points of the residual stream: before block 0, then after every block."""
    return ["embeddings"] + [f"after block {layer}" for layer in range(n_layer)]


@st.fragment
def head_grid(patterns: np.ndarray, tokens) -> None:
    """The grid of small heatmaps and one large selected head (a fragment: picking a head redraws only this)."""
    n_layer, n_head = patterns.shape[:2]
    left, right = st.columns(2)
    layer = left.selectbox("Layer", range(n_layer), key="explorer_layer")
    head = right.selectbox("Head", range(n_head), key="explorer_head")
    grid_col, large_col = st.columns([3, 2])
    state.show_chart(charts.head_grid(patterns, tokens, selected=(layer, head)), grid_col)
    labels = charts.token_labels(tokens)
    state.show_chart(charts.heatmap(patterns[layer, head], labels, labels, title=f"Layer {layer}, head {head}"),
                     large_col)


def summaries(patterns: np.ndarray) -> None:
    st.subheader("What each head does, in three numbers")
    summary = explain.head_summaries(patterns)
    layers = [f"layer {i}" for i in range(patterns.shape[0])]
    heads = [f"head {i}" for i in range(patterns.shape[1])]
    titles = {"entropy": "Entropy (bits): how spread out", "previous": "Weight on the previous token",
              "first": "Weight on the first token"}
    state.show_chart(charts.side_by_side([
        charts.heatmap(summary[name], layers, heads, title=title, value_title=name, row_title="layer",
                       col_title="head", cell=34)
        for name, title in titles.items()]))
    st.caption("Low entropy: the head listens to one guest. A head with a high previous-token weight passes each "
               "word's neighbour along; one that stares at the first token is often just resting there.")


def residual(trace, tokens, n_layer: int) -> None:
    st.subheader("The residual stream through the layers")
    labels, norms = stream_labels(n_layer), explain.residual_norms(trace.residual_stream)
    series = dict(zip(charts.token_labels(tokens), norms.T))
    state.show_chart(charts.lines(labels, series, title="Length (L2 norm) of each token's vector", x_title="point",
                                 y_title="norm", x_sort=labels))
    st.caption("Every block adds its attention and MLP output to this running sum; it never overwrites it.")


def mlp_activations(trace, tokens, n_layer: int) -> None:
    layer = st.selectbox("MLP of layer", range(n_layer), key="explorer_mlp_layer")
    post = trace.layers[layer].mlp_post  # [L, 4C]
    units = explain.top_units(post, MLP_UNITS)
    state.show_chart(charts.heatmap(post[:, units], charts.token_labels(tokens), [f"unit {u}" for u in units],
                                   title=f"The {MLP_UNITS} hidden units that fire most (after GELU)",
                                   value_title="activation", row_title="token", col_title="hidden unit",
                                   diverging=True, text=False, cell=20))
    st.caption("The MLP works on each token alone: it expands the row to 4 × d_model numbers, lets the positive "
               "ones through (GELU), and projects back. A unit that lights up for one word is a feature detector.")


def logit_lens(trace, model) -> None:
    st.subheader("Logit lens: the guess after every layer")
    labels = stream_labels(model.config.n_layer)
    ids, probs = explain.logit_lens(model.params, model.config, trace.residual_stream, LENS_TOP)
    words = [[model.tokenizer.token(int(i)) for i in row] for row in ids]
    state.show_chart(charts.top_tokens_table(labels, words, probs, title="Top next-token guesses at the last position",
                                            row_title="read off"))
    st.caption("The final LayerNorm and output head applied early, as if the model stopped after that layer.")


def what_if_controls(config) -> Interventions:
    heads = [(layer, head) for layer in range(config.n_layer) for head in range(config.n_head)]
    blocks = range(config.n_layer)
    left, right = st.columns(2)
    zero = left.multiselect("Switch off heads", heads, format_func=lambda p: f"layer {p[0]} head {p[1]}",
                            key="whatif_heads")
    skip_ln = left.multiselect("Skip LayerNorms", [(b, n) for b in blocks for n in ("ln_1", "ln_2")],
                               format_func=lambda p: f"layer {p[0]} {p[1]}", key="whatif_ln")
    skip_residual = left.multiselect("Drop the residual around", [(b, n) for b in blocks for n in ("attn", "mlp")],
                                     format_func=lambda p: f"layer {p[0]} {p[1]}", key="whatif_residual")
    no_mask = right.toggle("No causal mask (tokens see the future)", key="whatif_mask")
    no_scale = right.toggle("No 1/√d_head scaling", key="whatif_scale")
    use_relu = right.toggle("ReLU instead of GELU", key="whatif_relu")
    return Interventions(zero_heads=frozenset(zero), causal=not no_mask, scale_scores=not no_scale,
                         skip_ln=frozenset(skip_ln), skip_residual=frozenset(skip_residual),
                         activation="relu" if use_relu else "gelu")


def what_if(prompt, model) -> None:
    interventions = what_if_controls(model.config)
    before = state.trace(prompt.ids).next_token_probs
    after = state.trace(prompt.ids, interventions).next_token_probs
    change = explain.distribution_change(before, after)
    words = [model.tokenizer.token(int(i)) for i in change["ids"]]
    cols = st.columns(4)
    cols[0].metric("Top token before", model.tokenizer.token(int(before.argmax())))
    cols[1].metric("Top token after", model.tokenizer.token(int(after.argmax())))
    cols[2].metric("Total variation", f"{change['total_variation']:.3g}")
    cols[3].metric("KL(before ‖ after)", f"{change['kl']:.3g} bits")
    state.show_chart(charts.grouped_bars(words, {"before": change["before"], "after": change["after"]},
                                        title="Next-token probabilities with and without the change"))


def every_head(patterns: np.ndarray, tokens) -> None:
    head_grid(patterns, tokens)
    summaries(patterns)


def stream_and_lens(trace, tokens, model) -> None:
    left, right = st.columns(2)
    with left:
        residual(trace, tokens, model.config.n_layer)
    with right:
        logit_lens(trace, model)


def main() -> None:
    prompt = state.current_prompt()
    if prompt is None:
        return
    model = state.current_model()
    n_layer = model.config.n_layer
    trace = state.trace(prompt.ids)
    patterns = np.stack([layer.weights for layer in trace.layers])  # [n_layer, n_head, L, L]
    state.lazy_tabs("explorer_tab", {
        "Every head": lambda: every_head(patterns, prompt.tokens),
        "Residual stream and logit lens": lambda: stream_and_lens(trace, prompt.tokens, model),
        "MLP activations": lambda: mlp_activations(trace, prompt.tokens, n_layer),
        "What if": lambda: what_if(prompt, model),
    })


state.render_page("Attention explorer", main, "All layers and heads at once, and what happens if you change the model.")
