"""Overview page: the pipeline from prompt to next token with this prompt's shapes (the residual
connections drawn, every box linked to the page and tab that explains it), the model card, and
the model's prediction for the next token."""
import streamlit as st

from core.explain import pipeline as explain_pipeline
from dashboard import charts, glossary, state

TOP = 10
ADDS = ("attention out", "MLP")  # the block's steps whose output is added to the residual stream
STEPS_PAGE, BLOCK_PAGE = "views/attention_steps.py", "views/block_steps.py"
EXPLORER_PAGE, SAMPLING_PAGE = "views/explorer.py", "views/sampling.py"
EXPLAINED_IN = {  # pipeline step: (page, its tab or None, where the link goes, in short)
    "tokens": (STEPS_PAGE, "1. Embeddings", "step by step, 1"),
    "embeddings": (STEPS_PAGE, "1. Embeddings", "step by step, 1"),
    "ln_1": (BLOCK_PAGE, "3. LayerNorm", "block, 3"),
    "q, k, v": (BLOCK_PAGE, "1. Q, K, V projections", "block, 1"),
    "scores": (STEPS_PAGE, "3. Scores", "step by step, 3"),
    "weights": (STEPS_PAGE, "4. Softmax", "step by step, 4"),
    "head outputs": (STEPS_PAGE, "5. Weighted sum", "step by step, 5"),
    "attention out": (BLOCK_PAGE, "2. Heads joined, c_proj", "block, 2"),
    "MLP": (BLOCK_PAGE, "4. MLP", "block, 4"),
    "+ (residual)": (BLOCK_PAGE, "5. Residual stream and logit", "block, 5"),
    "ln_f": (EXPLORER_PAGE, "Residual stream and logit lens", "explorer: logit lens"),
    "logits": (BLOCK_PAGE, "5. Residual stream and logit", "block, 5"),
    "next token": (SAMPLING_PAGE, None, "sampling"),
}


def pipeline(prompt) -> None:
    st.subheader("From prompt to next token")
    st.caption("Every box is one step; the shapes are this prompt's (L = number of tokens). "
               "The tokens are people at a party: in every block each one asks a question "
               f"({glossary.link('query, key, value', 'query')}), "
               "reads the others' name tags (keys) and takes home what they share (values). "
               f"The red arrows are the {glossary.link('residual stream')}: each block's attention and "
               f"{glossary.link('MLP')} add their result to it rather than replacing it. The widths are "
               f"{glossary.link('d_model')} between the blocks and {glossary.link('d_head')} inside each "
               f"{glossary.link('head')}; ln_1 and ln_f are {glossary.link('LayerNorm')}s, the MLP's activation is "
               f"{glossary.link('GELU')}, and {glossary.link('softmax')} turns the {glossary.link('logit', 'logits')} "
               "into the next token's probabilities.")
    config = state.current_model().config
    steps = explain_pipeline.pipeline_shapes(config, len(prompt.ids))
    st.graphviz_chart(charts.pipeline_dot(steps, config.n_layer, adds_after=ADDS))
    st.markdown("**Where each box is explained** (step by step = attention step by step; block = the block "
                "step by step)")
    columns = st.columns(3)
    for index, step in enumerate([name for name, *_ in steps] + ["+ (residual)"]):
        page, tab, where = EXPLAINED_IN[step]
        columns[index % 3].page_link(page, label=f"{step} → {where}",
                                     query_params={state.TAB_PARAMETER: tab} if tab else None, help=tab)


def model_card() -> None:
    model = state.current_model()
    config = model.config
    st.subheader("Model card")
    rows = {
        "model": state.model_label(state.model_choice()), "vocabulary": f"{config.vocab_size:,}",
        "context (positions)": f"{config.n_positions:,}", "width d_model": config.n_embd, "layers": config.n_layer,
        "heads per layer": config.n_head, "d_head": config.d_head, "MLP width": f"{4 * config.n_embd:,}",
        "parameters": f"{model.parameter_count:,}", "attention backend": state.backend_name(),
    }
    st.table({"": list(rows), "value": [str(value) for value in rows.values()]})


def prediction(prompt) -> None:
    st.subheader("Next token")
    top = state.trace(prompt.ids).top_predictions(TOP)  # [(display string, probability)], most likely first
    words, probs = [word for word, _ in top], [prob for _, prob in top]
    st.markdown(f"{state.count(len(prompt.tokens), 'token')}: {' · '.join(f'`{token}`' for token in prompt.tokens)}")
    st.metric("Most likely next token", words[0], f"{probs[0]:.1%}", delta_color="off", delta_arrow="off")
    state.show_chart(charts.bars(words, probs, title=f"The {TOP} most likely next tokens", highlight=words[0],
                                 every_label=True))


def main() -> None:
    prompt = state.current_prompt()
    left, right = st.columns([3, 2])
    with right:
        model_card()
    if prompt is None:
        return
    with right:
        prediction(prompt)
    with left:
        pipeline(prompt)


state.render_page("Overview", main, "A GPT-2-style model you can see through: pick a page on the left, "
                  "and a model in the sidebar.")
