"""Overview page: the pipeline from prompt to next token with this prompt's shapes, the model card,
and the model's prediction for the next token."""
import numpy as np
import streamlit as st

from core import explain
from dashboard import charts, state

TOP = 10


def pipeline(prompt) -> None:
    st.subheader("From prompt to next token")
    st.caption("Every box is one step; the shapes are this prompt's (L = number of tokens). "
               "The tokens are people at a party: in every block each one asks a question (query), "
               "reads the others' name tags (keys) and takes home what they share (values).")
    config = state.current_model().config
    st.graphviz_chart(charts.pipeline_dot(explain.pipeline_shapes(config, len(prompt.ids)), config.n_layer))


def model_card() -> None:
    model = state.current_model()
    config = model.config
    st.subheader("Model card")
    rows = {
        "vocabulary": config.vocab_size, "context (positions)": config.n_positions,
        "width d_model": config.n_embd, "layers": config.n_layer, "heads per layer": config.n_head,
        "d_head": config.d_head, "MLP width": 4 * config.n_embd, "parameters": f"{model.parameter_count:,}",
        "attention backend": state.backend_name(),
    }
    st.table({"": list(rows), "value": [str(value) for value in rows.values()]})


def prediction(prompt) -> None:
    st.subheader("Next token")
    trace = state.trace(prompt.ids)
    probs = trace.next_token_probs
    ids = np.argsort(-probs, kind="stable")[:TOP]
    words = [state.current_model().tokenizer.token(int(i)) for i in ids]
    st.markdown(f"Tokens: {' · '.join(f'`{token}`' for token in prompt.tokens)}")
    st.metric("Most likely next token", words[0], f"{probs[ids[0]]:.1%}", delta_color="off", delta_arrow="off")
    state.show_chart(charts.bars(words, probs[ids], title=f"The {TOP} most likely next tokens", highlight=words[0]))


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


state.render_page("Overview", main, "A small GPT-2-style model you can see through: pick a page on the left.")
