"""What a visitor or a model file supplies never reaches a page as Markdown, a server path or an
uncaught error (issue 30): a hostile prompt on every page and tab, a crafted vocabulary in the
sidebar, an unreadable file under .benchmarks/, odd widget state, and the comparison lab's table
held to its bound."""
from __future__ import annotations

import json
import re

import pytest
import streamlit as st
from helpers.dashboard import TIMEOUT, assert_clean, open_page, open_tab, set_prompt
from helpers.gpt2 import write_gpt2_checkpoint
from markdown_it import MarkdownIt

from core.text.markdown import code, escaped
from dashboard import models, navigation
from dashboard.navigation import SAMPLING
from dashboard.text import public

HOSTILE = ("the sky is **very** `hot` [x](http://127.0.0.1:9/x.png) ![i](http://127.0.0.1:9/i.png) "
           "<img src=x> $x$")
CRAFTED = "a`![x](http://127.0.0.1:9/v.png)"  # a vocabulary entry of the crafted checkpoint
EVIL = "crafted-vocab"  # that checkpoint's name in the models folder
MARKDOWN_KINDS = ("markdown", "caption", "info", "warning", "error", "success", "title", "header", "subheader",
                  "toast")


@pytest.fixture
def models_folder(tmp_path, monkeypatch):
    """A models folder holding a tiny GPT-2-family checkpoint whose vocabulary has a crafted entry:
    the last merge's token renamed CRAFTED (and that merge dropped, so the file stays valid)."""
    folder = tmp_path / "models"
    checkpoint = write_gpt2_checkpoint(folder / EVIL, n_layer=1, n_head=2, n_embd=16, n_positions=64,
                                       vocab="corpus")
    merges = (checkpoint / "merges.txt").read_text(encoding="utf-8").splitlines()
    last = "".join(merges[-1].split(" "))
    vocab = json.loads((checkpoint / "vocab.json").read_text(encoding="utf-8"))
    vocab[CRAFTED] = vocab.pop(last)
    (checkpoint / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (checkpoint / "merges.txt").write_text("\n".join(merges[:-1]) + "\n", encoding="utf-8")
    monkeypatch.setenv("GLASSBOX_MODELS", str(folder))
    return folder


@pytest.fixture
def app_timeout():
    return 180


# --- reading what a page renders as Markdown --------------------------------------------------------

def bodies(at) -> list[str]:
    """The Markdown source of every element Streamlit renders as Markdown (sidebar included)."""
    found = []
    for kind in MARKDOWN_KINDS:
        found += [str(element.value) for element in at.get(kind)]
    found += [str(element.label) for element in at.get("expander")]
    found += [str(part) for element in at.get("metric") for part in (element.label, element.value)]  # Markdown too
    return found


def _tokens(tokens):
    for token in tokens:
        yield token
        yield from _tokens(token.children or [])


def hostile_markup(body: str) -> list[str]:
    """What `body` would render from the hostile strings: images, raw HTML, links to 127.0.0.1, and
    LaTeX between unescaped dollars outside code spans."""
    tokens = list(_tokens(MarkdownIt("commonmark").parse(body)))
    found = [f"{token.type}: {body!r}" for token in tokens if token.type in ("image", "html_inline", "html_block")]
    found += [f"link to {token.attrGet('href')}: {body!r}" for token in tokens
              if token.type == "link_open" and "127.0.0.1" in str(token.attrGet("href"))]
    in_code = sum(token.content.count("$x$") for token in tokens if token.type in ("code_inline", "code_block", "fence"))
    if len(re.findall(r"(?<!\\)\$x\$", body)) > in_code:
        found.append(f"math: {body!r}")
    return found


def page_problems(at, where: str) -> list[str]:
    assert_clean(at)
    return [f"{where}: {problem}" for body in bodies(at) for problem in hostile_markup(body)]


def visit_everything(at) -> tuple[list[str], list[str]]:
    """Every page of navigation.PAGES and every tab of each: the hostile markup found on any, and
    every Markdown body seen."""
    problems, seen = [], []
    for page in navigation.PAGES:
        open_page(at, page.url_path)
        problems += page_problems(at, page.title)
        seen += bodies(at)
        for tab in page.tabs:
            open_tab(at, page.tabs_key, tab)
            problems += page_problems(at, f"{page.title} / {tab}")
            seen += bodies(at)
    return problems, seen


# --- 1. escaping ----------------------------------------------------------------------------------------

def test_the_helpers_neutralise_markdown_and_paths():
    assert escaped("**a** [x](y)\n<b>") == r"\*\*a\*\* \[x\]\(y\) \<b\>"
    assert code("a`b") == "`` a`b ``" and code("sky") == "`sky`"
    assert hostile_markup(escaped(HOSTILE)) == [] and hostile_markup(code(HOSTILE)) == []
    assert hostile_markup(HOSTILE)  # the checker sees the raw prompt's markup
    assert public("/srv/glassbox/.benchmarks/Linux/0001.json: Expecting value") == "0001.json: Expecting value"
    assert public("3/4 of a/b") == "3/4 of a/b"


@pytest.mark.parametrize("model", ["bundled", EVIL])
def test_a_hostile_prompt_renders_as_text_on_every_page_and_tab(app, model):
    if model == EVIL:
        app.selectbox(key="model_picker").set_value(EVIL).run()
        assert_clean(app)
    set_prompt(app, HOSTILE)
    assert_clean(app)
    problems, seen = visit_everything(app)
    assert not problems, problems
    assert any("sky" in body or "img" in body for body in seen)  # the prompt is on the pages, as text


def test_a_crafted_vocabulary_shows_as_text_in_the_sidebar(app):
    app.selectbox(key="model_picker").set_value(EVIL).run()
    assert_clean(app)
    app.text_input(key="vocab_search").set_value("png").run()
    assert_clean(app)
    listed = [body for body in bodies(app) if "v.png" in body]
    assert listed, bodies(app)
    problems = [problem for body in listed for problem in hostile_markup(body)]
    assert not problems, problems


# --- 2. no server paths -----------------------------------------------------------------------------------

def test_an_unreadable_saved_benchmark_file_is_named_without_the_server_path(app, tmp_path, monkeypatch):
    saved = tmp_path / "benchmarks"
    (saved / "Linux-CPython").mkdir(parents=True)
    (saved / "Linux-CPython" / "0001_broken.json").write_text("{not json", encoding="utf-8")
    monkeypatch.setenv("GLASSBOX_BENCHMARKS", str(saved))
    app.switch_page(navigation.BENCHMARK.script).run()
    assert not app.exception
    errors = [element.value for element in app.error]
    assert errors and all("Could not read that file" in error for error in errors), errors
    assert not any(str(tmp_path) in error or "/" + "benchmarks" in error for error in errors), errors
    assert any("0001\\_broken\\.json" in error or "0001_broken.json" in error for error in errors), errors


# --- 3. odd widget state ------------------------------------------------------------------------------------

def send_raw_selectbox(at, key: str, monkeypatch, raw: str | None) -> None:
    """Run `at` with the browser's message for selectbox `key` holding the string `raw` (None: a
    widget state with no value), as a hand-written websocket message may: AppTest itself only sends
    the options it drew."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from streamlit.testing.v1.element_tree import Selectbox

    node = at.selectbox(key=key)
    sent = WidgetState(id=node.id) if raw is None else WidgetState(id=node.id, string_value=raw)
    drawn = Selectbox._widget_state.fget
    monkeypatch.setattr(Selectbox, "_widget_state", property(lambda self: sent if self.id == node.id else drawn(self)))
    at.run()
    monkeypatch.setattr(Selectbox, "_widget_state", property(drawn))


@pytest.mark.parametrize("raw", ["", None, "no-such-model", "../../etc", "your trained model", models.TRAINED,
                                 "default toy model (bundled)", EVIL + "x"])
def test_any_model_picker_message_falls_back_to_a_model(app, raw, monkeypatch):
    send_raw_selectbox(app, "model_picker", monkeypatch, raw)
    assert_clean(app)
    assert app.selectbox(key="model_picker").value in (models.BUNDLED, EVIL)
    open_page(app, "sampling")
    assert_clean(app)


@pytest.mark.parametrize("widget_id", ["", "no-such-widget", "model_choice", "$$ID-0123456789abcdef-"])
def test_a_message_naming_an_unknown_widget_breaks_nothing(app, monkeypatch, widget_id):
    """A websocket message may name any widget id: one with an empty or unknown id made every keyed
    widget of the run (the model picker first) raise KeyError inside Streamlit."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from streamlit.testing.v1 import element_tree

    drawn = element_tree.ElementTree.get_widget_states

    def with_forged(self):
        states = drawn(self)
        states.widgets.append(WidgetState(id=widget_id, string_value="zzz"))
        return states

    monkeypatch.setattr(element_tree.ElementTree, "get_widget_states", with_forged)
    app.run()
    assert_clean(app)
    assert app.selectbox(key="model_picker").value == models.BUNDLED
    open_page(app, "sampling")
    open_page(app, "training")


@pytest.mark.parametrize("key, value", [("model_choice", "no-such-model"), ("model_choice", models.TRAINED),
                                        ("model_choice", None), ("model_choice", 3)])
def test_odd_model_state_falls_back_to_the_bundled_model(app, key, value):
    app.session_state[key] = value
    app.run()
    assert_clean(app)
    assert app.selectbox(key="model_picker").value == models.BUNDLED
    open_page(app, "sampling")


def test_odd_tab_and_picker_state_never_raises(app):
    for page in navigation.PAGES:
        open_page(app, page.url_path)
        if page.tabs_key:
            app.session_state[page.tabs_key] = "no such tab"
            app.run()
            assert_clean(app)


# --- 4. the comparison lab's bound ------------------------------------------------------------------------

def lab_state(rows: list[dict], deleted: list[int] | None = None) -> dict:
    """The data editor's state as the browser sends it: `rows` added, the rows `deleted` removed."""
    return {"edited_rows": {}, "added_rows": rows, "deleted_rows": deleted or []}


def test_the_lab_runs_at_most_its_cap_of_settings(app):
    from dashboard.views.sampling import MAX_LAB_SETTINGS

    open_page(app, "sampling")
    open_tab(app, SAMPLING.tabs_key, SAMPLING.tabs.lab)
    rows = [{"name": f"row {n}", "temperature": 1.0, "top_k": 0, "top_p": 1.0} for n in range(5000)]
    st.cache_data.clear()
    app.session_state["lab_settings"] = lab_state(rows)
    app.run(timeout=TIMEOUT)
    assert not app.exception
    summary = next(frame for frame in app.dataframe if "setting" in frame.value.columns).value
    assert len(summary) <= MAX_LAB_SETTINGS
    dropped = 5 + 5000 - MAX_LAB_SETTINGS  # the five default rows stay
    assert any(f"at most {MAX_LAB_SETTINGS}" in element.value and f"{dropped:,} more rows dropped" in element.value
               for element in app.warning), [element.value for element in app.warning]
    # cut before Streamlit builds the table from them: the session keeps only the rows that fit
    assert len(app.session_state["lab_settings"]["added_rows"]) == MAX_LAB_SETTINGS - 5


def test_the_lab_skips_rows_out_of_range_with_a_notice(app):
    open_page(app, "sampling")
    open_tab(app, SAMPLING.tabs_key, SAMPLING.tabs.lab)
    bad = [{"name": "hot", "temperature": 1e9, "top_k": 0, "top_p": 1.0},
           {"name": "negative k", "temperature": 1.0, "top_k": -3, "top_p": 1.0},
           {"name": "p two", "temperature": 1.0, "top_k": 0, "top_p": 2.0},
           {"name": "nan", "temperature": float("nan"), "top_k": 0, "top_p": 1.0},
           {"name": "[x](http://127.0.0.1:9/n.png)", "temperature": 1.0, "top_k": 0, "top_p": 0.5}]
    app.session_state["lab_settings"] = lab_state(bad, deleted=[0, 1, 2, 3, 4])  # the five default rows
    app.run()
    assert not app.exception
    summary = next(frame for frame in app.dataframe if "setting" in frame.value.columns).value
    names = list(summary["setting"])
    assert not {"hot", "negative k", "p two", "nan"} & set(names), names
    assert "[x](http://127.0.0.1:9/n.png)" in names  # a valid row, its name shown as text
    warnings = "\n".join(element.value for element in app.warning)
    for name in ("hot", "negative k", "p two", "nan"):
        assert f"'{escaped(name)}' skipped" in warnings, warnings
    problems = [problem for body in bodies(app) for problem in hostile_markup(body.replace("n.png", "x.png"))]
    assert not problems, problems
