"""Start here: a guided path through the pages in the order the model works (tokens, embeddings,
Q/K/V, scores, softmax, weighted sum, MLP, residual and LayerNorm, logits, sampling). Each stop
says what to look at, links to the page, and asks one question; progress is kept in the session."""
import streamlit as st

from core.explain import questions as explain_questions
from dashboard import frame, glossary, models
from dashboard.navigation import ATTENTION_STEPS, BLOCK_STEPS, GLOSSARY, OVERVIEW, SAMPLING, START_HERE, Page, tab_query
from dashboard.prompt import current_prompt

DONE = "path_done"  # session_state: the keys of the stops answered right
STEPS, BLOCK = ATTENTION_STEPS.tabs, BLOCK_STEPS.tabs

# (title, what to look at, page, tab to open there, glossary term)
STOPS = [
    ("Tokens", "The prompt is cut into tokens and each becomes an id. Look at the token list under the "
     "prediction.", OVERVIEW, None, "token"),
    ("Embeddings", "Each token id picks one row of the embedding table, and its position picks another; the two "
     "are added. Look at the two heatmaps: one row per token.", ATTENTION_STEPS, STEPS.embeddings, "embedding"),
    ("Queries, keys and values", "Three projections of every row: the question a token asks, the name tag it "
     "wears, what it will share. See the multiplications with the real weights.", BLOCK_STEPS, BLOCK.projections,
     "query, key, value"),
    ("Scores", "Every query is compared with every key by a dot product, scaled by 1/√d_head; the future is "
     "masked. Look at the three score heatmaps.", ATTENTION_STEPS, STEPS.scores, "head"),
    ("Softmax", "Each row of scores becomes weights that add up to 1, the stable way: subtract the max, exp, "
     "divide. Then break it on purpose in the Experiments page.", ATTENTION_STEPS, STEPS.softmax, "softmax"),
    ("Weighted sum", "Each token takes home a mix of the values, in proportion to its weights; the heads are "
     "joined and projected back to d_model.", BLOCK_STEPS, BLOCK.joined, "d_head"),
    ("MLP", "Each token alone goes through a wide layer of detectors and GELU. Look at where this token's "
     "pre-activations fall on the GELU curve.", BLOCK_STEPS, BLOCK.mlp, "GELU"),
    ("Residual stream and LayerNorm", "Every sub-layer adds its output to a running sum; LayerNorm rescales "
     "each token's row before it is read. Look at the mean and variance of one token.", BLOCK_STEPS,
     BLOCK.layer_norm, "residual stream"),
    ("Logits", "The final vector is compared with every word's row of lm_head: one logit per word. See which "
     "parts of the residual stream pushed the winner.", BLOCK_STEPS, BLOCK.residual, "logit"),
    ("Sampling", "Temperature, top-k and top-p reshape the distribution before a token is drawn. Move the "
     "sliders and watch the bars.", SAMPLING, None, "top-k and top-p"),
]

LLAMA_LOOKS = {  # the llama family's words at the stops where its architecture differs: title -> (title, look)
    "Embeddings": ("Embeddings", "Each token id picks one row of the embedding table. There is no position "
                   "embedding: RoPE turns each query and key by its position inside attention (tab 9 of attention "
                   "step by step). Look at the heatmap: one row per token."),
    "MLP": ("MLP", "Each token alone goes through SwiGLU: a gate through SiLU times a value, a wide layer of "
            "detectors. Look at where this token's gate pre-activations fall on the SiLU curve."),
    "Residual stream and LayerNorm": ("Residual stream and RMSNorm", "Every sub-layer adds its output to a running "
                                      "sum; RMSNorm rescales each token's row before it is read (no mean subtracted, "
                                      "no bias). Look at the root mean square of one token."),
}


def stops_for(config) -> list:
    """STOPS in the words of the model's family."""
    if config.family != "llama":
        return STOPS
    return [(*LLAMA_LOOKS[title], page, tab, "MLP" if term == "GELU" else term) if title in LLAMA_LOOKS
            else (title, look, page, tab, term) for title, look, page, tab, term in STOPS]


def stop(number: int, question, title: str, look: str, page: Page, tab: str | None, term: str) -> None:
    done = st.session_state.setdefault(DONE, set())
    mark = " ✓" if question.key in done else ""
    with st.expander(f"{number}. {title}{mark}", expanded=not mark):
        st.markdown(f"{look} ({glossary.link(term)})")
        st.page_link(page.script, label=page.title + (f": tab \"{tab}\"" if tab else ""),
                     icon=":material/arrow_forward:", query_params=tab_query(tab))
        st.markdown(question.text)
        choice = st.radio("Your answer", question.options, index=None, key=f"path-{question.key}",
                          label_visibility="collapsed")
        if choice is None:
            return
        if question.is_right(choice):
            done.add(question.key)
            st.success(question.reveal, icon=":material/check:")
        else:
            st.warning("Not quite. Look at the page again, then try another answer.")


def main() -> None:
    prompt = current_prompt()
    if prompt is None:
        return
    config = models.current_model().config
    questions = explain_questions.path_questions(config, prompt.tokens)
    progress = st.empty()
    st.markdown("Ten stops, in the order the model works. At each: what to look at, a link to the page, and one "
                f"question. The words are explained in the [glossary]({GLOSSARY.url_path}).")
    for number, (question, details) in enumerate(zip(questions, stops_for(config)), 1):
        stop(number, question, *details)
    done = st.session_state.get(DONE, set()) & {question.key for question in questions}
    progress.progress(len(done) / len(questions), text=f"{len(done)} of {len(questions)} stops done")


frame.render_page(START_HERE, main, "A guided path from the prompt to the next token.")
