"""The block step by step: everything in a transformer block besides the attention pattern.

One head's slice of c_attn making Q, K and V; the heads joined and c_proj; LayerNorm of one
token; the MLP of one token with its pre-activations on the GELU curve; the residual stream
as a sum of parts and each part's direct push on the predicted token's logit. Every number
comes from core.explain.block, checked against the model's own intermediates on the page.
"""
import numpy as np
import streamlit as st

from core.explain import block as explain_block
from core.text.markdown import escaped
from dashboard import charts, figures, frame, glossary, models, traces, widgets
from dashboard.navigation import BLOCK_STEPS
from dashboard.prompt import current_prompt
from dashboard.widgets import note

WEIGHT_ROWS = 16  # rows of a weight matrix drawn (GPT-2's W_Q slice is 768 x 64)
SHOWN = 8  # numbers written out in a line
TABS = BLOCK_STEPS.tabs


def numbers(values, count: int = SHOWN) -> str:
    """The first `count` numbers of a vector, written out."""
    values = np.asarray(values)
    more = f", … ({values.size} in all)" if values.size > count else ""
    return "[" + ", ".join(f"{value:.4f}" for value in values[:count]) + more + "]"


def choices(config, tokens) -> tuple[int, int, int]:
    layer_col, head_col, token_col = st.columns(3)
    layer, head = widgets.choose_head(config, "block", (layer_col, head_col))
    position = widgets.choose_token(charts.token_labels(tokens), "block_token", place=token_col)
    return layer, head, position


def projections(model, trace, layer: int, head: int, position: int) -> None:
    config = model.config
    x = trace.layers[layer].ln_1  # [L, C]
    parts = explain_block.head_projections(model.params, config, layer, head, x)
    L, C, D = x.shape[0], config.n_embd, config.d_head
    llama = config.family == "llama"
    if llama:
        kv = explain_block.kv_head_of(config, head)
        note("Every token's row X (after input_layernorm, an RMSNorm) is multiplied by three weight matrices. The "
             "product with W_Q is the question the token asks, with W_K the name tag it wears, with W_V what it will "
             f"share. W_Q is this query head's {D} rows of q_proj; W_K and W_V are the {D} rows of k_proj and "
             f"v_proj of key/value head {kv}: with grouped-query attention {config.n_head // config.n_kv_head} query "
             "heads share each key/value head. "
             f"({glossary.link('query, key, value')}, {glossary.link('head')}, {glossary.link('d_head')})")
        groups = explain_block.kv_groups(config)
        st.markdown("**Which query heads share each key/value head:** " + "; ".join(
            f"k/v head {group}: query heads {', '.join(str(h) for h in heads)}" for group, heads in enumerate(groups)))
        model_outs = {"Q": trace[f"blocks.{layer}.attn.hook_q"][head], "K": trace[f"blocks.{layer}.attn.hook_k"][kv],
                      "V": trace[f"blocks.{layer}.attn.hook_v"][kv]}
    else:
        note("Every token's row X (after ln_1) is multiplied by three weight matrices. The product with W_Q is the "
             "question the token asks, with W_K the name tag it wears, with W_V what it will share. A head's three "
             "matrices are slices of one big matrix, c_attn [C, 3C]: its columns for this head. "
             f"({glossary.link('query, key, value')}, {glossary.link('head')}, {glossary.link('d_head')})")
        model_outs = {"Q": trace.layers[layer].q[head], "K": trace.layers[layer].k[head],
                      "V": trace.layers[layer].v[head]}
    label = charts.token_labels(trace.tokens)[position]
    for name, model_out in model_outs.items():
        part = parts[name]
        st.markdown(f"##### {name}: `X [{L}, {C}] @ W_{name} [{C}, {D}] + b_{name} [{D}] = {name} [{L}, {D}]`")
        if llama:
            rows_of = head if name == "Q" else kv
            projection = {"Q": "q_proj", "K": "k_proj", "V": "v_proj"}[name]
            st.caption(f"W_{name} is {projection}.weight[{rows_of * D}:{(rows_of + 1) * D}, :] transposed "
                       f"({'query head' if name == 'Q' else 'key/value head'} {rows_of}); "
                       + ("b is its bias." if (part["bias"] != 0).any() else "no bias (b = 0).")
                       + (f" Then {name.lower()}_norm, an RMSNorm over the head's {D} dims." if "normed" in part else "")
                       + (" RoPE then turns it by position (Attention step by step, RoPE)." if name != "V" else ""))
        else:
            columns = explain_block.head_slices(config, head)[name]
            st.caption(f"W_{name} is c_attn.weight[:, {columns.start}:{columns.stop}].")
        difference = float(np.abs(part.get("normed", part["out"]) - model_out).max())
        first = part["weight"][:, 0]
        terms = " + ".join(f"{a:.3f}×{b:.3f}" for a, b in zip(x[position][:4], first[:4]))
        st.markdown(f"{name}[{escaped(label)}, 0] = {terms} + … + b = **{part['out'][position, 0]:.4f}**  \n"
                    f"{name}[{escaped(label)}] = {numbers(part['out'][position])}  \n"
                    f"Largest difference from the model's own {name}: {difference:.1e}")
        if name == "Q":
            shown = min(WEIGHT_ROWS, C)
            fit = charts.PAGE_WIDTH - charts.LABEL_ROOM  # each part fits the page alone; the figure wraps
            figures.show_chart(charts.side_by_side([
                charts.vectors_heatmap(x[:, :shown], trace.tokens, title=f"X, first {shown} of {C} columns",
                                       max_width=fit),
                charts.heatmap(part["weight"][:shown], [f"c{i}" for i in range(shown)], [f"d{j}" for j in range(D)],
                               title=f"W_Q, first {shown} of {C} rows", value_title="weight", row_title="input c",
                               col_title="output d", diverging=True, text=shown * D <= 96, max_width=fit),
                charts.vectors_heatmap(part["out"], trace.tokens, title="Q = X @ W_Q + b_Q", max_width=fit)],
                max_width=charts.PAGE_WIDTH))


def joined(model, trace, layer: int, position: int) -> None:
    config = model.config
    result = explain_block.heads_joined(model.params, config, layer, trace.layers[layer].head_outputs)
    H, C, D = config.n_head, config.n_embd, config.d_head
    L = len(trace.tokens)
    if config.family == "llama":
        note("Each head hands back a short vector per token (its weighted mix of values). The heads' vectors are "
             f"laid side by side into one row of width H × D = {H * D}, and o_proj, a [{C}, {H * D}] matrix "
             "(used transposed), mixes them into one update for the residual stream. Because its columns split by "
             f"head, the update is a sum of one piece per head. ({glossary.link('d_model')})")
        bias = " + b" if result["bias"].any() else ""
        st.markdown(f"`z [{H}, {L}, {D}]` → joined `[{L}, {H} × {D} = {H * D}]` → `@ o_proj.T [{H * D}, {C}]{bias}` "
                    f"→ attention output `[{L}, {C}]`")
    else:
        note("Each head hands back a short vector per token (its weighted mix of values). The heads' vectors are "
             "laid side by side into one row of width C, and c_proj, a [C, C] matrix, mixes them into one update for "
             "the residual stream. Because the rows of c_proj split by head, the update is a sum of one piece per "
             f"head. ({glossary.link('d_model')})")
        st.markdown(f"`z [{H}, {L}, {D}]` → joined `[{L}, {H} × {D} = {C}]` → `@ c_proj [{C}, {C}] + b [{C}]` "
                    f"→ attention output `[{L}, {C}]`")
    label = charts.token_labels(trace.tokens)[position]
    difference = float(np.abs(result["out"] - trace.layers[layer].attn_out).max())
    st.markdown(f"attention output[{escaped(label)}] = {numbers(result['out'][position])}  \n"
                f"Largest difference from the model's own attention output: {difference:.1e}")
    sizes = np.linalg.norm(result["per_head"][:, position], axis=-1)  # [H]
    figures.show_chart(charts.bars([f"head {h}" for h in range(H)], sizes,
                                   title=f"How big each head's piece of {label}'s update is", value_title="L2 norm",
                                   label_title="head"))


def layer_norm(model, trace, layer: int, position: int) -> None:
    which = st.radio("LayerNorm", explain_block.NORMS, horizontal=True, key="block_norm",
                     format_func={"ln_1": "ln_1 (before attention)", "ln_2": "ln_2 (before the MLP)",
                                  "ln_f": "ln_f (before the logits)"}.get)
    x, weight, bias = explain_block.norm_input(model.params, trace, which, layer)
    model_out = {"ln_1": trace.layers[layer].ln_1, "ln_2": trace.layers[layer].ln_2, "ln_f": trace.final_ln}[which]
    if model.config.family == "llama":
        rms_norm(model, trace, which, x, weight, model_out, position)
        return
    steps = explain_block.layer_norm_steps(x[position], weight, bias, model.config.layer_norm_epsilon)
    note("LayerNorm makes every token's row comparable: subtract the row's mean, divide by its standard "
         "deviation, so the row has mean 0 and spread 1. Then a learned gain and bias per dimension let the model "
         "turn up the dimensions it needs. Nothing mixes between tokens here. "
         f"({glossary.link('LayerNorm')})")
    cols = st.columns(4)
    cols[0].metric("mean", f"{steps['mean']:.4f}")
    cols[1].metric("variance", f"{steps['variance']:.4f}")
    cols[2].metric("√(variance + ε)", f"{steps['std']:.4f}")
    cols[3].metric("largest difference from the model", f"{np.abs(steps['out'] - model_out[position]).max():.1e}")
    st.markdown(f"x = {numbers(steps['x'])}  \n(x − mean) / √(variance + ε) = {numbers(steps['normalised'])}  \n"
                f"gain = {numbers(weight)}  \nbias = {numbers(bias)}  \n"
                f"output = normalised × gain + bias = {numbers(steps['out'])}")
    dims = list(range(x.shape[1]))
    figures.show_chart(charts.lines(dims, {"input x": steps["x"], "normalised": steps["normalised"],
                                           "output": steps["out"]},
                                    title=f"{which} of {charts.token_labels(trace.tokens)[position]}, every dimension",
                                    x_title="dimension", y_title="value"))


def rms_norm(model, trace, which: str, x, weight, model_out, position: int) -> None:
    """The llama family's RMSNorm of one token: no mean subtracted, no bias."""
    steps = explain_block.rms_norm_steps(x[position], weight, model.config.layer_norm_epsilon)
    names = {"ln_1": "input_layernorm", "ln_2": "post_attention_layernorm", "ln_f": "model.norm"}
    note(f"This model uses RMSNorm ({names[which]}), a simpler LayerNorm: divide the token's row by its root mean "
         "square √(mean(x²) + ε), so the row's typical size is 1, then multiply by a learned gain per dimension. "
         "Unlike LayerNorm, no mean is subtracted and there is no bias. Nothing mixes between tokens here. "
         f"({glossary.link('LayerNorm')})")
    cols = st.columns(3)
    cols[0].metric("mean(x²)", f"{steps['mean_square']:.4f}")
    cols[1].metric("√(mean(x²) + ε)", f"{steps['rms']:.4f}")
    cols[2].metric("largest difference from the model", f"{np.abs(steps['out'] - model_out[position]).max():.1e}")
    st.markdown(f"x = {numbers(steps['x'])}  \nx / √(mean(x²) + ε) = {numbers(steps['normalised'])}  \n"
                f"gain = {numbers(weight)}  \noutput = normalised × gain = {numbers(steps['out'])}")
    dims = list(range(x.shape[1]))
    figures.show_chart(charts.lines(dims, {"input x": steps["x"], "normalised": steps["normalised"],
                                           "output": steps["out"]},
                                    title=f"RMSNorm {which} of {charts.token_labels(trace.tokens)[position]}, "
                                          "every dimension", x_title="dimension", y_title="value"))


def swiglu(model, trace, layer: int, position: int, steps) -> None:
    """The llama family's SwiGLU MLP of one token, its gate pre-activations on the SiLU curve."""
    C, M = model.config.n_embd, model.config.d_mlp
    note(f"This model's MLP is SwiGLU. It works on each token alone: two projections to d_mlp = {M} numbers, the "
         "gate (gate_proj) and the value (up_proj). The gate goes through SiLU, x × sigmoid(x), which lets positive "
         "values through and squashes negative ones towards 0 (a little below 0 near −1.3), and multiplies the "
         "value unit by unit; down_proj projects the product back to C. "
         f"({glossary.link('MLP')})")
    st.markdown(f"`gate = x [{C}] @ gate_proj.T [{C}, {M}]`, `up = x @ up_proj.T [{C}, {M}]` → "
                f"`post = SiLU(gate) × up [{M}]` → `post @ down_proj.T [{M}, {C}] = out [{C}]`  \n"
                f"gate = {numbers(steps['pre'])}  \nup = {numbers(steps['pre_linear'])}  \n"
                f"SiLU(gate) = {numbers(steps['gate'])}  \npost = SiLU(gate) × up = {numbers(steps['post'])}  \n"
                f"out = {numbers(steps['out'])}  \n"
                f"Largest difference from the model's own MLP output: "
                f"{np.abs(steps['out'] - trace.layers[layer].mlp_out[position]).max():.1e}")
    curve_x, curve_y = explain_block.silu_curve(min(-6.0, steps["pre"].min()), max(4.0, steps["pre"].max()))
    label = charts.token_labels(trace.tokens)[position]
    figures.show_chart(charts.curve_with_points(curve_x, curve_y, steps["pre"], steps["gate"],
                                                title=f"SiLU, with {label}'s {M} gate pre-activations on it",
                                                x_title="gate pre-activation", y_title="SiLU(gate)"))
    st.caption("The units with the largest SiLU(gate) × up for this token: " +
               ", ".join(f"unit {unit} ({steps['post'][unit]:.3f})" for unit in steps["top"]))


def mlp(model, trace, layer: int, position: int) -> None:
    steps = explain_block.mlp_steps(model.params, model.config, layer, trace.layers[layer].ln_2[position])
    if model.config.family == "llama":
        swiglu(model, trace, layer, position, steps)
        return
    C, M = model.config.n_embd, model.config.d_mlp
    note("The MLP works on each token alone. It expands the row to d_mlp numbers, 4C in GPT-2 (many "
         "detectors, each asking 'is this pattern here?'), passes each through GELU, which lets positive values "
         "through and squashes negative ones to nearly 0, and projects back to C: the detectors that fired write "
         "their answer. "
         f"({glossary.link('MLP')}, {glossary.link('GELU')})")
    st.markdown(f"`x [{C}] @ c_fc [{C}, {M}] + b = pre [{M}]` → `GELU` → `post [{M}] @ c_proj "
                f"[{M}, {C}] + b = out [{C}]`  \n"
                f"pre = {numbers(steps['pre'])}  \npost = GELU(pre) = {numbers(steps['post'])}  \n"
                f"out = {numbers(steps['out'])}  \n"
                f"Largest difference from the model's own MLP output: "
                f"{np.abs(steps['out'] - trace.layers[layer].mlp_out[position]).max():.1e}")
    curve_x, curve_y = explain_block.gelu_curve(min(-4.0, steps["pre"].min()), max(4.0, steps["pre"].max()))
    label = charts.token_labels(trace.tokens)[position]
    figures.show_chart(charts.curve_with_points(curve_x, curve_y, steps["pre"], steps["post"],
                                                title=f"GELU, with {label}'s {M} pre-activations on it",
                                                x_title="pre-activation", y_title="GELU(pre)"))
    top = steps["top"]
    st.caption("The units that fire most for this token: " +
               ", ".join(f"unit {unit} ({steps['post'][unit]:.3f})" for unit in top))


def residual(model, trace) -> None:
    token_id = explain_block.predicted_token(trace)
    token = trace.vocabulary[token_id]
    result = explain_block.logit_attribution(model.params, trace, token_id)
    note("The residual stream is a running sum: it starts as the embedding, and every attention and MLP sub-layer "
         "adds its output to it. So the last token's final vector is the sum of the parts below. Read through ln_f "
         "and lm_head, each part pushes the predicted token's logit up or down by its own amount (direct logit "
         "attribution, with ln_f's scale taken from the real residual). "
         f"({glossary.link('residual stream')}, {glossary.link('logit')}, {glossary.link('direct logit attribution')})")
    cols = st.columns(3)
    cols[0].metric(f"logit of {escaped(token)}", f"{result['logit']:.4f}")
    cols[1].metric("sum of the parts + bias term", f"{result['total']:.4f}")
    if model.config.family == "llama":
        cols[2].metric("final RMSNorm's bias term", "none")
        st.caption(f"The final RMSNorm (model.norm) divides the last token's residual by its root mean square s = "
                   f"{result['scale']:.4f}; each part (not centred: RMSNorm subtracts no mean) is divided by s, "
                   "multiplied by the norm's gain and dotted with lm_head's row for the token. There is no position "
                   "embedding part: RoPE turns q and k inside attention instead.")
    else:
        cols[2].metric("ln_f's bias term", f"{result['bias_term']:.4f}")
        st.caption(f"ln_f divides the last token's residual by s = {result['scale']:.4f}; each part is centred, "
                   "divided by s, multiplied by ln_f's gain and dotted with lm_head's row for the token.")
    figures.show_chart(charts.bars(result["names"], result["contributions"],
                                   title=f"How much each part pushes the logit of {token}", value_title="logit push",
                                   label_title="part"))
    parts = explain_block.residual_parts(trace)
    figures.show_chart(charts.bars([name for name, _ in parts], [np.linalg.norm(part[-1]) for _, part in parts],
                                   title="The size of each part (last token)", value_title="L2 norm",
                                   label_title="part"))


def main() -> None:
    prompt = current_prompt()
    if prompt is None:
        return
    model = models.current_model()
    layer, head, position = choices(model.config, prompt.tokens)
    trace = traces.trace(prompt.ids)
    widgets.lazy_tabs(BLOCK_STEPS, {
        TABS.projections: lambda: projections(model, trace, layer, head, position),
        TABS.joined: lambda: joined(model, trace, layer, position),
        TABS.layer_norm: lambda: layer_norm(model, trace, layer, position),
        TABS.mlp: lambda: mlp(model, trace, layer, position),
        TABS.residual: lambda: residual(model, trace),
    })


frame.render_page(BLOCK_STEPS, main,
                  "The rest of the block as carefully as attention: the weights, the multiplications, the numbers.")
