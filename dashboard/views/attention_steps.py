"""Attention step by step: one head of one layer, small enough to read every number.

Embeddings -> Q, K, V -> raw scores q.k -> scaled -> masked -> stable softmax (subtract the
row's max, exp, divide) -> weights -> weighted sum of the values; each token's ranked
"influenced by" list; PCA pictures of the embeddings and of Q and K; the worked arithmetic
of one weight, with the C kernel's value next to the NumPy fallback's.

Wide matrices (GPT-2's [L, 768]) are drawn as heatmaps narrowed to the page, with a table of a
slice of their numbers beside; figures wrap so that none is wider than the page at 1280 px.
Every choice (layer, head, tab, query and key, the slice) is kept for the session.
"""
import numpy as np
import pandas as pd
import streamlit as st

from core.explain import block as explain_block
from core.explain import heads as explain_heads
from core.explain import rope as explain_rope
from core.text.markdown import escaped
from core.model.attention import scaled_dot_product_attention
from core.native.kernel import available_backends
from dashboard import charts, figures, frame, glossary, models, traces, widgets
from dashboard.navigation import ATTENTION_STEPS
from dashboard.prompt import current_prompt
from dashboard.wording import count

PLOT_WIDTH = charts.PAGE_WIDTH - charts.LABEL_ROOM  # pixels of cells of a figure alone in its row
SLICE = 16  # dimensions per slice in the tables of numbers
TOP_KEYS = 8  # keys named per token in "who influenced whom"
PCA_WIDTH = 260
MAX_TERMS = 16  # products written out in the worked dot product
TABS = ATTENTION_STEPS.tabs


def step(title: str, note: str, *parts, columns: int | None = None) -> None:
    """One step: a plain-language note, then its charts drawn as one figure (`columns` per row,
    default: as many as fit in the page's width)."""
    st.markdown(f"#### {title}")
    widgets.note(note)
    figures.show_chart(charts.side_by_side(parts, columns=columns, max_width=charts.PAGE_WIDTH))


def wide(values, tokens, title: str) -> dict:
    """A per-token matrix [L, d] as a heatmap that fits the page, every token labelled."""
    return charts.vectors_heatmap(values, tokens, title=title, max_width=PLOT_WIDTH, every_label=True)


def numbers(matrices: dict[str, np.ndarray], tokens, key: str) -> None:
    """A table of real numbers: one of `matrices` ([L, d] each), every token, SLICE dimensions of
    the learner's choice (both choices kept for the session)."""
    names = list(matrices)
    width = next(iter(matrices.values())).shape[1]
    starts = list(range(0, width, SLICE))
    left, right = st.columns(2)
    widgets.keep(f"{key}_matrix", names[0], names)
    widgets.keep(f"{key}_slice", 0, starts)
    name = left.selectbox("Numbers of", names, **widgets.kept_widget(f"{key}_matrix"))
    start = right.selectbox("Dimensions", starts, **widgets.kept_widget(f"{key}_slice"),
                            format_func=lambda first: f"d{first} to d{min(first + SLICE, width) - 1} (of {width})")
    values = matrices[name][:, start:start + SLICE]  # [L, SLICE]
    table = pd.DataFrame(values, index=charts.token_labels(tokens), columns=[f"d{start + i}" for i in range(values.shape[1])])
    st.dataframe(table, column_config={column: st.column_config.NumberColumn(format="%.4f") for column in table.columns})


def embeddings(trace, tokens, layer: int) -> None:
    if trace.position_embeddings is None:  # the llama family: positions are RoPE's rotations of q and k
        matrices = {"Token embeddings": trace.token_embeddings,
                    f"Input to layer {layer}'s attention (after RMSNorm)": trace.layers[layer].ln_1}
        step("1. Embeddings", "Each guest arrives with a short self-description: a row of "
             f"{glossary.link('d_model')} numbers for the word (its {glossary.link('embedding')}). This model "
             "adds no row for the seat: there is no position embedding. Positions enter inside attention, where "
             "RoPE turns each query and key by an angle that grows with its position (tab 9). Before attention, "
             "RMSNorm rescales each row (dividing by its root mean square; no mean subtracted, no bias) so no "
             "guest shouts louder than the others.",
             *(wide(values, tokens, f"{name} [L, d_model]") for name, values in matrices.items()), columns=1)
        numbers(matrices, tokens, "steps_embed")
        return
    matrices = {"Token embeddings": trace.token_embeddings, "Position embeddings": trace.position_embeddings,
                f"Input to layer {layer}'s attention (after ln_1)": trace.layers[layer].ln_1}
    step("1. Embeddings", "Each guest arrives with a short self-description: a row of "
         f"{glossary.link('d_model')} numbers for the word (its {glossary.link('embedding')}) "
         f"plus a row for its seat (position). The two are added. Before attention, {glossary.link('LayerNorm')} "
         "rescales each row so no guest shouts louder than the others.",
         *(wide(values, tokens, f"{name} [L, d_model]") for name, values in matrices.items()), columns=1)
    numbers(matrices, tokens, "steps_embed")


def qkv_tables(tokens, q, k, v) -> None:
    matrices = {"Q (queries)": q, "K (keys)": k, "V (values)": v}
    step("2. Queries, keys and values", "Three learned projections of each row "
         f"({glossary.link('query, key, value')}). The query is the question a guest "
         "asks ('who here is a colour word?'), the key is the name tag the guest wears, the value is what the guest "
         f"will share with whoever listens. Every {glossary.link('head')} has its own three projections, "
         f"{glossary.link('d_head')} numbers wide.",
         *(wide(values, tokens, f"{name} [L, d_head]") for name, values in matrices.items()), columns=1)
    numbers(matrices, tokens, "steps_qkv")


def square(values, labels, title: str, value_title: str = "weight") -> dict:
    """A token x token matrix [L, L], every token labelled, narrowed to fit the page."""
    return charts.heatmap(values, labels, labels, title=title, value_title=value_title, every_label=True,
                          max_width=PLOT_WIDTH)


def scores(layer_trace, head: int, labels) -> None:
    raw = square(layer_trace.raw_scores[head], labels, "Raw scores q · k", "q · k")
    scaled = square(layer_trace.scaled_scores[head], labels, f"Scaled: × {layer_trace.scale:.4f} (1/√d_head)",
                    "scaled score")
    masked = square(layer_trace.masked_scores[head], labels, "Masked: future tokens hidden (-inf)", "masked score")
    step("3. Scores: how well each question matches each name tag", "A dot product is large when a query and a key "
         f"point the same way. Dividing by √d_head keeps the numbers in a range where {glossary.link('softmax')} "
         f"still spreads its attention. The {glossary.link('causal mask', 'mask')} hides the tokens that come "
         "later: a guest cannot listen to someone who has not arrived yet, so those cells become -inf (grey).", raw, scaled, masked)


def softmax(stages, model_weights, labels) -> None:
    shifted = square(stages["shifted"], labels, "Subtract each row's max", "score - max")
    exps = square(stages["exp"], labels, "exp(score - max)", "exp")
    sums = charts.bars(labels, stages["sum"][:, 0], title="Row sums of exp", value_title="sum", label_title="query",
                       every_label=True).properties(width=260)
    weights = square(model_weights, labels, "Divide by the row sum: the weights")
    difference = float(np.abs(stages["weights"] - model_weights).max())
    step("4. Softmax, the stable way", "Subtracting the row's largest score first changes nothing in the result "
         "(it cancels in the division) but keeps exp from overflowing: the largest entry becomes exp(0) = 1. "
         "Hidden cells give exp(-inf) = 0. Dividing by the row sum makes every row add up to 1: each guest "
         "splits one unit of attention among the others. (The weights shown are the model's own; these steps, "
         f"redone in float64, match them to {difference:.1e}.)", shifted, exps, sums, weights)


def weighted_sum(head_out, tokens) -> None:
    out = wide(head_out, tokens, "Weighted sum of the values [L, d_head]")
    step("5. Weighted sum of values", "Each guest goes home with a mix of what the others shared, in proportion "
         "to the attention it paid them. This row is the head's output for that token; the heads' outputs are "
         "joined and projected back to d_model.", out)
    numbers({"Weighted sum of the values": head_out}, tokens, "steps_out")


def influence(weights, labels) -> None:
    st.markdown("#### 6. Who influenced whom")
    ranking = explain_heads.influenced_by(weights)
    labels = [escaped(label) for label in labels]  # Markdown below
    lines = [f"**{labels[query]}** ← " + ", ".join(f"{labels[key]} ({weight:.1%})" for key, weight in ranked[:TOP_KEYS])
             + (f", and {count(len(ranked) - TOP_KEYS, 'other')}" if len(ranked) > TOP_KEYS else "")
             for query, ranked in enumerate(ranking)]
    st.markdown("\n".join(f"- {line}" for line in lines))
    st.caption(f"Each token's keys ranked by attention weight, largest first (at most {TOP_KEYS} named); keys it "
               "cannot see are left out.")


def pca_pictures(trace, labels, q, k) -> None:
    coords, share = explain_heads.pca_2d(trace.embeddings)
    embed = charts.scatter_2d(coords, labels, ["embedding"] * len(labels), title="Embeddings (token + position)",
                              share=share, width=PCA_WIDTH)
    coords, share = explain_heads.pca_2d(np.concatenate([q, k]))
    qk = charts.scatter_2d(coords, labels + labels, ["query"] * len(labels) + ["key"] * len(labels),
                           title="Queries and keys of this head", share=share, width=PCA_WIDTH)
    step("7. A map of the vectors (PCA to 2-D)", f"{glossary.link('PCA')}: the two directions along which the "
         "vectors differ most. "
         "A query close to a key (in the same direction from the middle) usually means a large score. With a "
         "few tokens this is a rough picture: the axis titles say how much of the spread it shows.", embed, qk,
         columns=2)  # legends on top: two fit the page


def worked_weight(q, k, v, labels) -> None:
    st.markdown("#### 8. The arithmetic of one weight")
    left, right = st.columns(2)
    query = widgets.choose_token(labels, "steps_query", place=left, label="Query token (asking)")
    key = widgets.choose_token(labels, "steps_key", place=right, label="Key token (attended to)", default=0)
    worked = explain_heads.weight_arithmetic(q, k, query, key)
    products = [f"({a:.3f}×{b:.3f})" for a, b in zip(q[query], k[key])]
    if len(products) > MAX_TERMS:  # GPT-2's 64 dimensions: the first terms, then their count
        products = products[:MAX_TERMS] + [f"… ({len(products) - MAX_TERMS} more terms)"]
    st.markdown(f"q · k = {' + '.join(products)} = **{worked['dot']:.6f}**")
    if not worked["visible"]:
        st.warning(f"{escaped(labels[key])} comes after {escaped(labels[query])}: the mask hides it, so its weight is 0.")
    else:
        st.markdown(
            f"scaled = {worked['dot']:.6f} × {worked['scale']:.6f} = **{worked['scaled']:.6f}**  \n"
            f"exp(scaled − row max) = exp({worked['scaled']:.6f} − {worked['row_max']:.6f}) "
            f"= **{worked['exp']:.6f}**  \n"
            f"weight = {worked['exp']:.6f} / {worked['row_sum']:.6f} (row sum) = **{worked['weight']:.6f}**")
    kernel_comparison(q, k, v, query, key)


def kernel_comparison(q, k, v, query: int, key: int) -> None:
    """The same weight from each attention backend, and how far apart they are."""
    values = {}
    for backend in available_backends():
        _, weights = scaled_dot_product_attention(q, k, v, causal=True, return_weights=True, backend=backend)
        values[backend] = float(weights[query, key])
    cols = st.columns(3)
    cols[0].metric("C kernel", f"{values['c']:.9f}" if "c" in values else "not built")
    cols[1].metric("NumPy fallback", f"{values['numpy']:.9f}")
    if "c" in values:
        cols[2].metric("difference", f"{abs(values['c'] - values['numpy']):.2e}")
    st.caption(f"Both backends in {q.dtype} (the model's dtype); the explanation above works in float64.")


def rope_tab(model, trace, layer: int, head: int, labels) -> None:
    st.markdown("#### 9. RoPE: positions as rotations")
    config = model.config
    if not config.rope:
        widgets.note("This model has no RoPE: it learns a position embedding (wpe) and adds it to each token's "
                     "embedding before the first block (tab 1). Llama-family models (Llama, Qwen, Mistral) instead "
                     "turn every query and key by an angle that grows with its position.")
        return
    D = config.d_head
    kv = explain_block.kv_head_of(config, head)
    widgets.note(f"RoPE splits each head's {D} dims into {D // 2} pairs: dim i with dim i + {D // 2} (Hugging Face's "
                 "rotate_half). At position p, pair i is turned by the angle p × frequency i, fast for the first "
                 "pairs and slow for the last. q and k are both turned, by their own positions; their dot product then "
                 "depends on the positions only through the distance between them. The values are not turned. "
                 f"(Query head {head} reads key/value head {kv}.)")
    left, right = st.columns(2)
    query = widgets.choose_token(labels, "steps_rope_query", place=left, label="Query token (asking)")
    key = widgets.choose_token(labels, "steps_rope_key", place=right, label="Key token (attended to)", default=0)
    q = trace[f"blocks.{layer}.attn.hook_q"][head, query]  # [D] before RoPE
    k = trace[f"blocks.{layer}.attn.hook_k"][kv, key]
    steps = explain_rope.rope_steps(config, q, k, query, key)
    pairs = pd.DataFrame({
        "frequency": steps["frequencies"], "q angle (rad)": steps["q_angles"], "k angle (rad)": steps["k_angles"],
        "q before": [f"({a:.3f}, {b:.3f})" for a, b in steps["q_pairs"]],
        "q after": [f"({a:.3f}, {b:.3f})" for a, b in steps["q_rotated_pairs"]],
        "k before": [f"({a:.3f}, {b:.3f})" for a, b in steps["k_pairs"]],
        "k after": [f"({a:.3f}, {b:.3f})" for a, b in steps["k_rotated_pairs"]],
        "q·k of the pair": steps["pair_products"]}, index=[f"pair {i} (d{i}, d{i + D // 2})" for i in range(D // 2)])
    st.dataframe(pairs, column_config={column: st.column_config.NumberColumn(format="%.4f")
                                       for column in ("frequency", "q angle (rad)", "k angle (rad)", "q·k of the pair")})
    model_score = float(trace.layers[layer].scaled_scores[head, query, key])
    st.markdown(f"Distance {steps['distance']}: the sum of the pairs' q·k = {steps['raw']:.6f}, × "
                f"{config.attention_scale:.4f} = **{steps['score']:.6f}** (the model's score: {model_score:.6f}; "
                f"without RoPE it would be {steps['score_unrotated']:.6f})")
    if steps["distance"] < 0:
        st.caption("This key comes after the query: the causal mask hides it (its weight is 0), though RoPE still "
                   "turns both. Pick a key at or before the query to see the distance at work.")
        return
    distance = steps["distance"]
    starts = [distance + shift for shift in (0, 1, 5, 20, 100)]
    shifted = explain_rope.shifted_scores(config, q, k, distance, starts)
    st.markdown(f"**Only the distance counts.** The same q and k placed at positions (p, p − {distance}):")
    st.dataframe(pd.DataFrame({"query position p": starts, "key position p − d": [p - distance for p in starts],
                               "score": shifted}), column_config={"score": st.column_config.NumberColumn(format="%.8f")})
    distances = list(range(0, 33))
    figures.show_chart(charts.lines(distances, {"score": explain_rope.scores_by_distance(config, q, k, distances)},
                                    title="The same q and k, further and further apart", x_title="distance d",
                                    y_title="scaled score", marker=steps["distance"] if steps["distance"] >= 0 else None))


def main() -> None:
    prompt = current_prompt()
    if prompt is None:
        return
    layer, head = widgets.choose_head(models.current_model().config, "steps")
    trace = traces.trace(prompt.ids)
    layer_trace = trace.layers[layer]
    labels = charts.token_labels(prompt.tokens)
    q, k, v = (array[head] for array in (layer_trace.q, layer_trace.k, layer_trace.v))  # [L, d_head] each
    widgets.lazy_tabs(ATTENTION_STEPS, {
        TABS.embeddings: lambda: embeddings(trace, prompt.tokens, layer),
        TABS.qkv: lambda: qkv_tables(prompt.tokens, q, k, v),
        TABS.scores: lambda: scores(layer_trace, head, labels),
        TABS.softmax: lambda: softmax(explain_heads.softmax_stages(layer_trace.masked_scores[head]),
                                      layer_trace.weights[head], labels),
        TABS.weighted_sum: lambda: weighted_sum(layer_trace.head_outputs[head], prompt.tokens),
        TABS.influence: lambda: influence(layer_trace.weights[head], labels),
        TABS.vector_map: lambda: pca_pictures(trace, labels, q, k),
        TABS.one_weight: lambda: worked_weight(q, k, v, labels),
        TABS.rope: lambda: rope_tab(models.current_model(), trace, layer, head, labels),
    })


frame.render_page(ATTENTION_STEPS, main,
                  "One head, every number: queries are questions, keys are name tags, values are what gets shared.")
