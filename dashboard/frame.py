"""The frame around every page: the sidebar every page shares (model picker, prompt, example
prompts, the model's vocabulary) and `render_page`, which draws a page's title and turns an
unexpected exception into a short `st.error`, so that a learner never sees a traceback."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.text.markdown import code, escaped
from dashboard import figures, models, navigation, prompt
from dashboard.text import safe_message
from dashboard.wording import count

MAX_TOKENS_LISTED = 300  # tokens the vocabulary search lists at once


def sidebar() -> None:
    """The sidebar every page shares: the model picker, the prompt, example prompts and the
    model's vocabulary."""
    # Written on every run, so that every run sends the prompt to the browser: the browser draws a
    # widget only once its code has loaded, and a field first drawn from a run that did not send
    # the value would show, and send back, an empty prompt.
    st.session_state["prompt"] = st.session_state.get("prompt", prompt.DEFAULT_PROMPT)
    model = model_picker()
    st.sidebar.text_input("Prompt", key="prompt", max_chars=prompt.MAX_PROMPT_CHARS,
                          help=f"Shared by every page; at most {prompt.MAX_PROMPT_CHARS:,} characters, and the "
                               f"dashboard follows the last {prompt.MAX_PROMPT_TOKENS} tokens. Try 'the dog can'.")
    example_prompts(model)
    known_tokens(model)
    st.sidebar.caption(f"Model: {escaped(models.model_label(models.model_choice()))} · attention backend: "
                       f"{models.backend_name()}")


def model_picker():
    """The model picker (only names from `models.model_options`, never a path); returns the model in use."""
    options = models.model_options()
    if st.session_state.get("model_choice", models.BUNDLED) not in options:  # deleted from the folder meanwhile
        st.session_state["model_choice"] = models.BUNDLED
    model = models.current_model()  # falls back to the bundled model if the picked one cannot be read now
    st.session_state["model_picker"] = models.model_choice()
    st.sidebar.selectbox("Model", options, key="model_picker", format_func=models.picker_label,
                         on_change=models.pick_model,
                         help="The bundled toy model, every checkpoint in this server's models folder, and the "
                              "model you trained in this session. The prompt stays when you switch.")
    if "model_error" in st.session_state:
        st.sidebar.warning(st.session_state.pop("model_error"))
    return model


def example_prompts(model) -> None:
    """One-click prompts where the model is unsure, so that temperature and top-p visibly matter."""
    examples = prompt.WORD_EXAMPLES if tokenizer_kind(model) == "word" else prompt.BPE_EXAMPLES
    st.sidebar.caption("Examples where the model hesitates between several next words:")
    for index, text in enumerate(examples):
        st.sidebar.button(text, key=f"example-{index}", on_click=prompt.use_prompt, args=(text,), type="tertiary")


def tokenizer_kind(model) -> str:
    return getattr(model.tokenizer, "kind", "word")


def known_tokens(model) -> None:
    """A searchable list of the tokens the model knows (its vocabulary)."""
    tokens = model.tokenizer.tokens
    with st.sidebar.expander(f"The {count(len(tokens), 'token')} the model knows"):
        query = st.text_input("Search", key="vocab_search", max_chars=40, placeholder="e.g. sky")
        found = [token for token in tokens if query.strip().lower() in token.lower()]
        shown = found[:MAX_TOKENS_LISTED]
        st.caption(f"{count(len(found), 'match', 'matches')}" + (f", the first {MAX_TOKENS_LISTED} shown" if len(found) > len(shown)
                                                         else "") + (":" if shown else "."))
        st.markdown(" ".join(code(token) for token in shown))


def render_page(page: navigation.Page, body: Callable[[], None], intro: str = "") -> None:
    """Draw `page`: its title, an intro, then `body`; an unexpected error becomes a short message."""
    figures.restart_chart_count()
    st.title(page.title)
    if intro:
        st.caption(intro)
    try:
        body()
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        st.error(safe_message(error))
    except Exception as error:  # noqa: BLE001 - never a traceback in front of a learner
        st.error(f"Something went wrong on this page ({type(error).__name__}: {safe_message(error)}). "
                 "Try another prompt or setting; the other pages still work.")
