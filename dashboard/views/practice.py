"""Practice: predict, then reveal (questions made from this prompt's tensors, a score for the
session) and compute it yourself (one score, one softmax entry, one LayerNorm output, typed in and
checked against the model's own value, with hints one partial result at a time)."""
import zlib

import streamlit as st

from core.explain import block, exercises
from core.explain import questions as explain_questions
from core.text.markdown import escaped
from dashboard import ablation, charts, frame, glossary, models, traces, widgets
from dashboard.navigation import PRACTICE
from dashboard.prompt import current_prompt

SCORE = "practice_score"  # session_state: {question key: whether the first answer was right}
HINTS = "practice_hints"  # session_state: {exercise key: hints shown}


def session_tag(ids) -> str:
    """Names this model and prompt in question keys, so that a new prompt asks new questions."""
    return f"{models.model_id()}-{zlib.crc32(repr(tuple(ids)).encode()):08x}"


def ask(question) -> None:
    """One question: the options without a preselected answer; the first answer counts for the
    score; after answering, the real numbers."""
    st.markdown(question.text)
    if question.given:
        st.caption(question.given)
    choice = st.radio("Your answer", question.options, index=None, key=f"answer-{question.key}",
                      label_visibility="collapsed")
    if choice is None:
        return
    right = question.is_right(choice)
    st.session_state.setdefault(SCORE, {}).setdefault(question.key, right)
    if right:
        st.success(f"Right: {question.options[question.answer]}.", icon=":material/check:")
    else:
        st.warning(f"Not this time: the answer is {question.options[question.answer]}.")
    st.markdown(question.reveal)


def questions(model, trace, layer: int, head: int, tag: str) -> list:
    """This prompt's questions; None where the numbers tie (no single right answer)."""
    token_id = block.predicted_token(trace)
    effects = ablation.layer_effects(model, trace, token_id, layer)
    return [
        ("Where will this query look?", explain_questions.attention_question(trace, layer, head, tag)),
        ("Which word comes next?", explain_questions.next_token_question(trace, trace.vocabulary, tag=tag)),
        ("How many tokens does top-p keep?", explain_questions.top_p_question(trace, trace.vocabulary, tag=tag)),
        ("What does the 1/√d_head scale do?", explain_questions.scale_question(trace, layer, head, tag)),
        ("Which head matters most?", explain_questions.head_question(effects, layer, trace.vocabulary[token_id], tag)),
    ]


def predict(model, trace, layer: int, head: int, tag: str) -> None:
    st.info("Answer first, then see the real numbers. Every question is made from your prompt's own tensors and "
            "has exactly one right answer; your first answer to each counts for the score. See the "
            f"{glossary.link('entropy')} and {glossary.link('ablation')} entries if a word is new.",
            icon=":material/psychology:")
    score = st.empty()
    for title, question in questions(model, trace, layer, head, tag):
        st.markdown(f"#### {title}")
        if question is None:
            st.caption("No question here for this prompt: the numbers tie, so there is no single right answer. "
                       "Try another prompt, layer or head.")
        else:
            ask(question)
    answers = st.session_state.get(SCORE, {})
    score.metric("Your score this session", f"{sum(answers.values())} / {len(answers)}")


def exercise(item) -> None:
    """One number to compute by hand: the inputs, the hints shown so far, a box to type into."""
    st.markdown(item.task)
    st.markdown(item.given)
    shown = st.session_state.setdefault(HINTS, {}).get(item.key, 0)
    for hint in item.hints[:shown]:
        st.markdown(f"- {hint}")
    typed = st.text_input("Your number", key=f"typed-{item.key}", placeholder="for example 0.25")
    if shown < len(item.hints):
        st.button("Show a hint", key=f"hint-{item.key}", on_click=show_hint, args=(item.key,))
    if not typed.strip():
        return
    value = exercises.parse_number(typed)
    if value is None:
        st.warning(f"'{escaped(typed[:40])}' is not a number: type digits such as 0.25 or -1.5.")
    elif item.accepts(value):
        st.success(f"Right: the model's own value is {item.answer:.6f}; yours is within {item.tolerance:.3g} of it.",
                   icon=":material/check:")
    else:
        st.warning(f"Not yet: {value:g} is more than {item.tolerance:.3g} away from the model's value. "
                   "A hint shows the next partial result.")


def show_hint(key: str) -> None:
    hints = st.session_state.setdefault(HINTS, {})
    hints[key] = hints.get(key, 0) + 1


def compute(model, trace, layer: int, head: int, tag: str) -> None:
    st.info("Work one number out by hand (or with a calculator) from the inputs shown. It is checked against the "
            "model's own value; each hint gives away one more partial result.", icon=":material/calculate:")
    labels = charts.token_labels(trace.tokens)
    query = len(labels) - 1
    key = widgets.choose_token(labels, "practice_key", label="Key token for the score and the softmax entry", default=0)
    st.markdown("#### One cell of the scores")
    exercise(exercises.score_exercise(trace, layer, head, query, key, tag))
    st.markdown("#### One softmax entry")
    exercise(exercises.softmax_exercise(trace, layer, head, query, key, tag))
    st.markdown(f"#### One {block.norm_name(model.config)} output")
    exercise(exercises.layer_norm_exercise(model.params, model.config, trace, layer, query, 0, tag))


def main() -> None:
    prompt = current_prompt()
    if prompt is None:
        return
    model = models.current_model()
    layer, head = widgets.choose_head(model.config, "practice")
    trace = traces.trace(prompt.ids)
    tag = session_tag(prompt.ids)
    widgets.lazy_tabs(PRACTICE, {
        PRACTICE.tabs.predict: lambda: predict(model, trace, layer, head, tag),
        PRACTICE.tabs.compute: lambda: compute(model, trace, layer, head, tag),
    })


frame.render_page(PRACTICE, main, "Predict, then reveal; compute it yourself. The numbers are your prompt's.")
