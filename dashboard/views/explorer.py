"""Attention explorer: every layer and head at once, per-head summaries, the residual stream's
norm, the logit lens, MLP activations, and "what if" switches (the model's interventions).
With a switch on, every view shows the changed model (marked "what if"), the plain model one
click away; the switches, layer and head are kept for the session."""
from math import isqrt

import numpy as np
import streamlit as st

from core.explain import block as explain_block
from core.explain import heads as explain_heads
from core.explain import stream as explain_stream
from core.text.markdown import escaped
from core.model.interventions import NO_INTERVENTIONS, Interventions
from dashboard import charts, figures, frame, glossary, models, traces, widgets
from dashboard.navigation import EXPLORER
from dashboard.prompt import current_prompt

LENS_TOP = 3
LENS_POSITIONS = 8  # positions the logit lens and the residual chart show at once
LENS_ROOM = 240  # pixels beside the lens's columns: "after block 11", titles, the last label's slant
MLP_UNITS = 24
TILE_CELLS = 12_288  # cells the overview of every head draws at most (longer prompts are pooled)
SIDE_BY_SIDE = 12  # up to this many tokens the enlarged head sits beside the overview, else below it
COLUMN_WIDTH = charts.PAGE_WIDTH // 2 - 20  # pixels a figure in one of two columns may take
TILES_WIDTH = 300  # pixels of the overview's tiles at most
TILES_ROOM = 60  # pixels beside the tiles (legend below them): layer numbers, axis title
LABEL_ROOM = 220  # pixels beside a heatmap's cells (legend below): row labels (up to 160 px), axis title, paddings
SUMMARY_ROOM = 100  # the same for a summary map (labels "0" to "11")
WHAT_IF_MARK = " · what if"
TABS = EXPLORER.tabs
TOGGLES = {"whatif_mask": "no causal mask", "whatif_scale": "no 1/√d_head scaling",
           "whatif_relu": "ReLU for the activation"}


def stream_labels(n_layer: int) -> list[str]:
    """Names of the points of the residual stream: before block 0, then after every block."""
    return ["embeddings"] + [f"after block {layer}" for layer in range(n_layer)]


# --- what if: the switches, kept for the session and applied to every view ----------------------

def switch_options(config) -> dict[str, list]:
    blocks = range(config.n_layer)
    return {"whatif_heads": [(layer, head) for layer in blocks for head in range(config.n_head)],
            "whatif_ln": [(block, name) for block in blocks for name in ("ln_1", "ln_2")],
            "whatif_residual": [(block, name) for block in blocks for name in ("attn", "mlp")]}


def kept_interventions(config) -> Interventions:
    """The "what if" switches as this session left them (restored before any widget is drawn)."""
    lists = {key: widgets.keep(key, [], options) for key, options in switch_options(config).items()}
    toggles = {key: widgets.keep(key, False, (True, False)) for key in TOGGLES}
    return Interventions(zero_heads=frozenset(lists["whatif_heads"]), causal=not toggles["whatif_mask"],
                         scale_scores=not toggles["whatif_scale"], skip_ln=frozenset(lists["whatif_ln"]),
                         skip_residual=frozenset(lists["whatif_residual"]),
                         activation="relu" if toggles["whatif_relu"] else "gelu")


def describe(interventions: Interventions) -> str:
    """The switches that are on, in words."""
    parts = [f"layer {layer} head {head} off" for layer, head in sorted(interventions.zero_heads)]
    parts += [f"layer {layer} {name} skipped" for layer, name in sorted(interventions.skip_ln)]
    parts += [f"no residual around layer {layer} {name}" for layer, name in sorted(interventions.skip_residual)]
    flags = {"whatif_mask": not interventions.causal, "whatif_scale": not interventions.scale_scores,
             "whatif_relu": interventions.activation == "relu"}
    parts += [words for key, words in TOGGLES.items() if flags[key]]
    return ", ".join(parts)


def what_if_banner(switches: Interventions, length: int, n_layer: int) -> Interventions | None:
    """The interventions every view shows: the switches, unless none is on or the learner picked
    the plain model (a toggle above the tabs). Says which, and where a switch cannot act."""
    if switches == NO_INTERVENTIONS:
        return None
    widgets.keep("explorer_plain", False, (True, False))
    left, right = st.columns([3, 1])
    plain = right.toggle("Show the plain model", **widgets.kept_widget("explorer_plain"),
                         help="The same views without the \"what if\" switches, for comparison.")
    if plain:
        left.info(f"Showing the plain model. The \"what if\" switches ({describe(switches)}) are kept: turn this "
                  "toggle off to see them again.")
    else:
        left.info(f"What if: {describe(switches)}. Every view on this page shows the changed model (titles marked "
                  f"\"{WHAT_IF_MARK.strip(' ·')}\"); \"Show the plain model\" compares.")
    for note in explain_stream.what_if_notes(switches, length, n_layer):
        st.info(note)
    return None if plain else switches


def what_if_controls(config) -> None:
    """The switches (their values restored by `kept_interventions`, so no defaults here)."""
    options = switch_options(config)
    left, right = st.columns(2)
    left.multiselect("Switch off heads", options["whatif_heads"], format_func=lambda p: f"layer {p[0]} head {p[1]}",
                     **widgets.kept_widget("whatif_heads"))
    left.multiselect(f"Skip {explain_block.norm_name(config)}s", options["whatif_ln"], format_func=lambda p: f"layer {p[0]} {p[1]}",
                     **widgets.kept_widget("whatif_ln"))
    left.multiselect("Drop the residual around", options["whatif_residual"],
                     format_func=lambda p: f"layer {p[0]} {p[1]}", **widgets.kept_widget("whatif_residual"))
    right.toggle("No causal mask (tokens see the future)", **widgets.kept_widget("whatif_mask"))
    right.toggle("No 1/√d_head scaling", **widgets.kept_widget("whatif_scale"))
    right.toggle("ReLU for the activation (instead of SwiGLU's SiLU gate)" if config.family == "llama" else
                 "ReLU instead of GELU", **widgets.kept_widget("whatif_relu"))


def what_if(prompt, model, switches: Interventions) -> None:
    what_if_controls(model.config)
    before = traces.trace(prompt.ids).next_token_probs
    after = traces.trace(prompt.ids, None if switches == NO_INTERVENTIONS else switches).next_token_probs
    change = explain_stream.distribution_change(before, after)
    words = [model.tokenizer.token(int(i)) for i in change["ids"]]
    cols = st.columns(4)
    cols[0].metric("Top token before", escaped(model.tokenizer.token(int(before.argmax()))))  # a metric is Markdown
    cols[1].metric("Top token after", escaped(model.tokenizer.token(int(after.argmax()))))
    cols[2].metric("Total variation", f"{change['total_variation']:.3g}")
    cols[3].metric("KL(before ‖ after)", f"{change['kl']:.3g} bits")
    if switches != NO_INTERVENTIONS and change["total_variation"] == 0:
        st.info("These switches do not change the next-token distribution for this prompt. The other tabs show "
                "what they change inside the model.")
    figures.show_chart(charts.grouped_bars(words, {"before": change["before"], "after": change["after"]},
                                          title="Next-token probabilities with and without the change"))


# --- every head ----------------------------------------------------------------------------------

def block_labels(edges: np.ndarray, tokens) -> list[str]:
    """Labels of pooled blocks of positions: the token when a block is one position, else "3-9"."""
    return [charts.token_labels(tokens)[start] if end - start == 1 else f"{start}-{end - 1}"
            for start, end in zip(edges[:-1], edges[1:])]


@st.fragment
def head_grid(config, patterns: np.ndarray, tokens, mark: str) -> None:
    """Every head in one compact chart and one enlarged (a fragment: picking a head redraws only this)."""
    n_layer, n_head, length = patterns.shape[:3]
    layer, head = widgets.choose_head(config, "explorer")
    pooled, edges = explain_heads.pool_patterns(patterns, max(4, isqrt(TILE_CELLS // (n_layer * n_head))))
    beside = length <= SIDE_BY_SIDE
    overview, enlarged = st.columns(2) if beside else (st.container(), st.container())
    room = COLUMN_WIDTH if beside else charts.PAGE_WIDTH  # pixels for each of the two figures
    figures.show_chart(charts.head_tiles(pooled, block_labels(edges, tokens), selected=(layer, head),
                                         width=min(TILES_WIDTH, room - TILES_ROOM), legend_below=True,
                                         title=f"All {n_layer} layers x {n_head} heads{mark}"), overview)
    if len(edges) - 1 < length:
        overview.caption(f"{length} tokens: each tile shows blocks of about {length // (len(edges) - 1)} positions "
                         "(the average weight a block's queries give to a block's keys). The enlarged head shows "
                         "every token.")
    labels = charts.token_labels(tokens)
    cell = max(3, min(charts.CELL, (room - LABEL_ROOM) // length))
    figures.show_chart(charts.heatmap(patterns[layer, head], labels, labels, title=f"Layer {layer}, head {head}{mark}",
                                      cell=cell, every_label=cell >= 11, legend_below=True), enlarged)


def summaries(patterns: np.ndarray, mark: str) -> None:
    st.subheader("What each head does, in three numbers")
    n_layer, n_head = patterns.shape[:2]
    summary = explain_heads.head_summaries(patterns)
    layers, heads = [str(i) for i in range(n_layer)], [str(i) for i in range(n_head)]
    titles = {"entropy": ("Entropy (bits):", "how spread out"), "previous": ("Weight on the", "previous token"),
              "first": ("Weight on the", "first token")}  # two lines: a title no wider than its map
    cell = max(10, min(34, (charts.PAGE_WIDTH - 3 * SUMMARY_ROOM) // (3 * n_head)))  # three in a row if they fit
    in_a_row = 3 * (cell * n_head + SUMMARY_ROOM) <= charts.PAGE_WIDTH
    figures.show_chart(charts.side_by_side([
        charts.heatmap(summary[name], layers, heads, title=[first, second + mark], value_title=name,
                       row_title="layer", col_title="head", cell=cell, every_label=True, legend_below=True)
        for name, (first, second) in titles.items()], columns=None if in_a_row else 1))
    st.caption(f"All three are {explain_heads.SUMMARY_ROWS}. Low {glossary.link('entropy')}: the head listens to one "
               "token. A head with "
               "a high previous-token weight passes each word's neighbour along; one that stares at the first "
               "token is often just resting there.")


def every_head(config, patterns: np.ndarray, tokens, mark: str) -> None:
    head_grid(config, patterns, tokens, mark)
    summaries(patterns, mark)


# --- the residual stream and the logit lens -------------------------------------------------------

def shown_positions(length: int) -> list[int]:
    """The positions the lens and the residual chart show: all, or a window the learner moves."""
    if length <= LENS_POSITIONS:
        return list(range(length))
    last = st.slider("Positions shown: up to", LENS_POSITIONS - 1, length - 1, length - 1,
                     key=f"explorer_positions_{length}", help=f"{LENS_POSITIONS} positions at a time")
    return list(range(last - LENS_POSITIONS + 1, last + 1))


def residual(trace, tokens, positions, n_layer: int, mark: str) -> None:
    st.subheader("The residual stream through the layers")
    labels, norms = stream_labels(n_layer), explain_stream.residual_norms(trace.residual_stream[:, positions])  # [P, N]
    series = dict(zip([charts.token_labels(tokens)[p] for p in positions], norms.T))
    figures.show_chart(charts.lines(labels, series, title=f"Length (L2 norm) of each token's vector{mark}",
                                    x_title="point", y_title="norm", x_sort=labels))
    st.caption("Every block adds its attention and MLP output to this running sum; it never overwrites it.")


def logit_lens(trace, tokens, positions, model, mark: str) -> None:
    st.subheader("Logit lens: the guess after every layer")
    ids, probs = explain_stream.lens_table(model.params, model.config, trace.residual_stream, positions, LENS_TOP)
    words = [[[model.tokenizer.token(int(i)) for i in cell] for cell in row] for row in ids]  # [P, N, top]
    details = [[" · ".join(f"{word} {prob:.1%}" for word, prob in zip(cell_words, cell_probs))
                for cell_words, cell_probs in zip(row_words, row_probs)] for row_words, row_probs in zip(words, probs)]
    top = [[cell[0] for cell in row] for row in words]
    labels = [charts.token_labels(tokens)[p] for p in positions]
    figures.show_chart(charts.lens_grid(stream_labels(model.config.n_layer), labels, top, probs[:, :, 0], details,
                                        title=f"Top next-token guesses at each position{mark}",
                                        col_title="position (the guess is for the token after it)",
                                        col_width=min(80, (charts.PAGE_WIDTH - LENS_ROOM) // len(positions)),
                                        legend_below=True))
    st.caption(f"The final {explain_block.norm_name(model.config)} and output head applied early, as if the model stopped after that layer. Each "
               f"cell: the most likely next token and its probability (colour); the tooltip has the top {LENS_TOP}. "
               "Only the positions shown are computed.")


def stream_and_lens(trace, tokens, model, mark: str) -> None:
    positions = shown_positions(len(tokens))
    logit_lens(trace, tokens, positions, model, mark)
    residual(trace, tokens, positions, model.config.n_layer, mark)


# --- MLP ---------------------------------------------------------------------------------------------

def activation_name(config, trace) -> str:
    """What the shown MLP units come out of: ReLU (what if), SwiGLU's SiLU(gate) × up, or GELU."""
    if trace.interventions.activation == "relu":
        return "ReLU(gate) × up" if config.family == "llama" else "ReLU"
    return "SiLU(gate) × up" if config.family == "llama" else "GELU"


def mlp_activations(trace, tokens, config, mark: str) -> None:
    layer = widgets.choose_layer(config, "explorer_mlp_layer", label="MLP of layer")
    post = trace.layers[layer].mlp_post  # [L, d_mlp]
    units = explain_stream.top_units(post, MLP_UNITS)
    cell = 20 if len(tokens) <= 32 else 11
    figures.show_chart(charts.heatmap(post[:, units], charts.token_labels(tokens), [f"unit {u}" for u in units],
                                      title=f"The {len(units)} of {post.shape[1]:,} hidden units that fire most "
                                            f"(after {activation_name(config, trace)})"
                                            f"{mark}",
                                      value_title="activation", row_title="token", col_title="hidden unit",
                                      diverging=True, symmetric=True, text=False, cell=cell, every_label=True,
                                      legend_below=True))
    if config.family == "llama":
        st.caption(f"This model's MLP is SwiGLU. It works on each token alone: two projections to d_mlp = "
                   f"{config.d_mlp:,} numbers, a gate passed through SiLU and a value, multiplied unit by unit (the "
                   "units shown), then projected back. A unit's output can be negative as well as positive (the value "
                   "has either sign). A unit that lights up for one word is a feature detector. The colours are "
                   "proportional on both sides of zero (the scale runs from -m to m, m the largest size).")
    else:
        st.caption("The MLP works on each token alone: it expands the row to 4 × d_model numbers, lets the positive "
                   "ones through (GELU), and projects back. A unit that lights up for one word is a feature detector. "
                   "The colours are proportional on both sides of zero (the scale runs from -m to m, m the largest "
                   "size), so GELU's small negative outputs stay pale.")


def main() -> None:
    prompt = current_prompt()
    if prompt is None:
        return
    model = models.current_model()
    config = model.config
    switches = kept_interventions(config)
    interventions = what_if_banner(switches, len(prompt.ids), config.n_layer)
    trace = traces.trace(prompt.ids, interventions)
    mark = WHAT_IF_MARK if interventions is not None else ""
    patterns = np.stack([layer.weights for layer in trace.layers])  # [n_layer, n_head, L, L]
    widgets.lazy_tabs(EXPLORER, {
        TABS.every_head: lambda: every_head(config, patterns, prompt.tokens, mark),
        TABS.lens: lambda: stream_and_lens(trace, prompt.tokens, model, mark),
        TABS.mlp: lambda: mlp_activations(trace, prompt.tokens, config, mark),
        TABS.what_if: lambda: what_if(prompt, model, switches),
    })


frame.render_page(EXPLORER, main, "All layers and heads at once, and what happens if you change the model "
                  f"({glossary.link('head')}, {glossary.link('residual stream')}, {glossary.link('logit')}, "
                  f"{glossary.link('ablation')}).")
