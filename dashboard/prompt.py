"""The session's prompt: the sidebar widget `prompt` (dashboard.frame draws it on every run), shared
by every page, at most MAX_PROMPT_CHARS characters, of which the dashboard follows the last
MAX_PROMPT_TOKENS tokens; read by the model in use through core's Model.encode_prompt."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.text.markdown import code, escaped
from dashboard import models
from dashboard.text import safe_message
from dashboard.wording import count

DEFAULT_PROMPT = "the sky is"
MAX_PROMPT_CHARS = 1000  # the prompt box's limit
MAX_PROMPT_TOKENS = 128  # tokens the dashboard follows (the toy model's context is 32)
MAX_UNKNOWN_SHOWN, MAX_WORD_SHOWN = 8, 24  # unknown words listed in the notice, characters of each
# Prompts the bundled model is unsure about (next-token entropy 2-5.5 bits; tests/dashboard/test_dashboard_steps.py
# checks it), so that temperature and top-p visibly change the choice:
WORD_EXAMPLES = ("the frog", "the horse", "what is the", "the opposite of")
BPE_EXAMPLES = ("The capital of France is", "Once upon a time, there was a", "My favourite colour is",
                "The best way to learn is")


@dataclass(frozen=True)
class Prompt:
    """The prompt as the model sees it: ids and tokens (after truncation) and notices for the learner."""

    text: str
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    notices: tuple[str, ...] = ()


def prepare_prompt(model, text: str) -> Prompt:
    """`text` as `model` reads it (core.model.model's Model.encode_prompt), within the dashboard's
    limits: at most MAX_PROMPT_CHARS characters and MAX_PROMPT_TOKENS tokens (the last ones are kept,
    as when a prompt is longer than the context), each cut with a notice; ValueError when nothing is usable."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the prompt is empty: type a few words in the sidebar, for example 'the sky is'")
    notices = []
    if len(text) > MAX_PROMPT_CHARS:
        text = text[:MAX_PROMPT_CHARS]
        notices.append(f"the prompt is cut to its first {MAX_PROMPT_CHARS:,} characters")
    ids, tokens, model_notices = model.encode_prompt(text)
    unknown = model.tokenizer.unknown_words(text)
    notices += [escaped(notice) for notice in model_notices if not (unknown and notice.startswith("unknown words"))]
    if unknown:
        notices.append(unknown_words_notice(unknown))
    if len(ids) > MAX_PROMPT_TOKENS:
        notices.append(f"the prompt has {len(ids)} tokens; the dashboard follows at most {MAX_PROMPT_TOKENS}: "
                       f"only the last {MAX_PROMPT_TOKENS} are used")
        ids, tokens = ids[-MAX_PROMPT_TOKENS:], tokens[-MAX_PROMPT_TOKENS:]
    return Prompt(text=text, ids=tuple(int(i) for i in ids), tokens=tuple(tokens), notices=tuple(notices))


def unknown_words_notice(words: list[str]) -> str:
    """"unknown words shown as <unk>: `a`, `b`": each word quoted as code and cut to a readable
    length, at most MAX_UNKNOWN_SHOWN of them."""
    shown = [word if len(word) <= MAX_WORD_SHOWN else word[:MAX_WORD_SHOWN] + "…" for word in words[:MAX_UNKNOWN_SHOWN]]
    more = f" and {count(len(words) - MAX_UNKNOWN_SHOWN, 'more word')}" if len(words) > MAX_UNKNOWN_SHOWN else ""
    return f"not in the model's vocabulary, shown as `<unk>`: {', '.join(code(word) for word in shown)}{more}"


def current_prompt() -> Prompt | None:
    """The session's prompt prepared for the current model, its notices (unknown words, truncation)
    shown; None, after a warning, when there is nothing the model can read."""
    try:
        prompt = prepare_prompt(models.current_model(), st.session_state.get("prompt", DEFAULT_PROMPT))
    except ValueError as error:
        message = safe_message(error)
        st.warning(f"{message[:1].upper()}{message[1:]}. The parts of this page that need a prompt wait "
                   "until it is fixed.")
        return None
    for notice in prompt.notices:
        st.info(notice[:1].upper() + notice[1:] + ("" if notice.endswith((".", "…")) else "."))
    return prompt


def use_prompt(text: str) -> None:
    """Make `text` the session's prompt (an example button's callback)."""
    st.session_state["prompt"] = text
