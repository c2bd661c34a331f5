"""Overview page: the pipeline from prompt to next token with this prompt's shapes (the residual
connections drawn, every box linked to the page and tab that explains it), the model card, and
the model's prediction for the next token."""
import streamlit as st

from core.explain import pipeline as explain_pipeline
from core.text.markdown import code, escaped
from dashboard import charts, figures, frame, glossary, models, traces
from dashboard.navigation import ATTENTION_STEPS, BLOCK_STEPS, EXPLORER, OVERVIEW, SAMPLING, tab_query
from dashboard.prompt import current_prompt
from dashboard.wording import count

TOP = 10
ADDS = ("attention out", "MLP")  # the block's steps whose output is added to the residual stream
STEPS, BLOCK = ATTENTION_STEPS.tabs, BLOCK_STEPS.tabs
EXPLAINED_IN = {  # pipeline step: (page, its tab or None, where the link goes, in short)
    "tokens": (ATTENTION_STEPS, STEPS.embeddings, "step by step, 1"),
    "embeddings": (ATTENTION_STEPS, STEPS.embeddings, "step by step, 1"),
    "ln_1": (BLOCK_STEPS, BLOCK.layer_norm, "block, 3"),
    "q, k, v": (BLOCK_STEPS, BLOCK.projections, "block, 1"),
    "scores": (ATTENTION_STEPS, STEPS.scores, "step by step, 3"),
    "weights": (ATTENTION_STEPS, STEPS.softmax, "step by step, 4"),
    "head outputs": (ATTENTION_STEPS, STEPS.weighted_sum, "step by step, 5"),
    "attention out": (BLOCK_STEPS, BLOCK.joined, "block, 2"),
    "MLP": (BLOCK_STEPS, BLOCK.mlp, "block, 4"),
    "+ (residual)": (BLOCK_STEPS, BLOCK.residual, "block, 5"),
    "ln_f": (EXPLORER, EXPLORER.tabs.lens, "explorer: logit lens"),
    "logits": (BLOCK_STEPS, BLOCK.residual, "block, 5"),
    "next token": (SAMPLING, None, "sampling"),
}


def pipeline(prompt) -> None:
    st.subheader("From prompt to next token")
    config = models.current_model().config
    llama = config.family == "llama"
    st.caption("Every box is one step; the shapes are this prompt's (L = number of tokens). "
               "The tokens are people at a party: in every block each one asks a question "
               f"({glossary.link('query, key, value', 'query')}), "
               "reads the others' name tags (keys) and takes home what they share (values). "
               f"The red arrows are the {glossary.link('residual stream')}: each block's attention and "
               f"{glossary.link('MLP')} add their result to it rather than replacing it. The widths are "
               f"{glossary.link('d_model')} between the blocks and {glossary.link('d_head')} inside each "
               f"{glossary.link('head')}; "
               + ("ln_1, ln_2 and ln_f are RMSNorms (no mean, no bias), positions are RoPE rotations of q and k "
                  f"(no position embedding), the MLP is SwiGLU (a SiLU gate times a value), {config.n_kv_head} "
                  f"key/value heads serve {config.n_head} query heads, and "
                  if llama else f"ln_1 and ln_f are {glossary.link('LayerNorm')}s, the MLP's activation is "
                  f"{glossary.link('GELU')}, and ")
               + f"{glossary.link('softmax')} turns the {glossary.link('logit', 'logits')} "
               "into the next token's probabilities.")
    steps = explain_pipeline.pipeline_shapes(config, len(prompt.ids))
    st.graphviz_chart(charts.pipeline_dot(steps, config.n_layer, adds_after=ADDS))
    st.markdown("**Where each box is explained** (step by step = attention step by step; block = the block "
                "step by step)")
    columns = st.columns(3)
    for index, step in enumerate([name for name, *_ in steps] + ["+ (residual)"]):
        page, tab, where = EXPLAINED_IN[step]
        columns[index % 3].page_link(page.script, label=f"{step} → {where}", query_params=tab_query(tab), help=tab)


def architecture_rows(config) -> dict:
    """The model card's rows that differ between the families (GPT-2: LayerNorm, learned
    positions, GELU MLP; llama: RMSNorm, RoPE, SwiGLU, grouped key/value heads)."""
    if config.family != "llama":
        return {"family": "gpt2", "norm": "LayerNorm", "positions": "learned (wpe)",
                "MLP": f"{config.activation} MLP"}
    return {"family": "llama", "model type": config.model_type, "key/value heads": config.n_kv_head,
            "norm": "RMSNorm" + (" (+ q/k RMSNorm per head)" if config.qk_norm else ""),
            "positions": f"RoPE, theta {config.rope_theta:g}" + (" (llama3 scaling)" if config.rope_scaling else ""),
            "MLP": "SwiGLU (SiLU gate x up)", "tied output head": "yes" if config.tied else "no"}


def model_card() -> None:
    model = models.current_model()
    config = model.config
    st.subheader("Model card")
    rows = {
        "model": models.model_label(models.model_choice()), "vocabulary": f"{config.vocab_size:,}",
        "context (positions)": f"{config.n_positions:,}", "width d_model": config.n_embd, "layers": config.n_layer,
        "heads per layer": config.n_head, "d_head": config.d_head, "MLP width": f"{config.d_mlp:,}",
        "parameters": f"{model.parameter_count:,}", "attention backend": models.backend_name(),
        **architecture_rows(config),
    }
    st.table({"": list(rows), "value": [str(value) for value in rows.values()]})


def prediction(prompt) -> None:
    st.subheader("Next token")
    top = traces.trace(prompt.ids).top_predictions(TOP)  # [(display string, probability)], most likely first
    words, probs = [word for word, _ in top], [prob for _, prob in top]
    st.markdown(f"{count(len(prompt.tokens), 'token')}: {' · '.join(code(token) for token in prompt.tokens)}")
    st.metric("Most likely next token", escaped(words[0]),  # a metric is Markdown
              f"{probs[0]:.1%}", delta_color="off", delta_arrow="off")
    figures.show_chart(charts.bars(words, probs, title=f"The {TOP} most likely next tokens", highlight=words[0],
                                   every_label=True))


def main() -> None:
    prompt = current_prompt()
    left, right = st.columns([3, 2])
    with right:
        model_card()
    if prompt is None:
        return
    with right:
        prediction(prompt)
    with left:
        pipeline(prompt)


frame.render_page(OVERVIEW, main, "A GPT-2-style model you can see through: pick a page on the left, "
                  "and a model in the sidebar.")
