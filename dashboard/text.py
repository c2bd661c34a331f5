"""Strings a visitor or a model file supplies (prompts, token strings, file names, model names, the
names of the lab's settings) made safe to show on a page: `escaped` before anything reaches
Markdown, `public` before a message built from an exception reaches a visitor.

Every st.markdown, st.caption, st.info, st.warning, st.error and st.success renders Markdown (and
Streamlit's own extensions: colours, icons, LaTeX between dollars), so a token string holding
``![x](http://...)`` would make every visitor's browser fetch that image. Charts (Vega-Lite) and
dataframes are not Markdown: their labels need nothing.
"""
from __future__ import annotations

import re

MARKDOWN_SPECIALS = "\\`*_{}[]()#+-.!|<>~$:="  # backslash first: the others' escapes are not escaped again
_SPECIAL = re.compile("([" + re.escape(MARKDOWN_SPECIALS) + "])")
_PATH = re.compile(r"(?<![\w.~/\\])(?:[A-Za-z]:)?(?:[\\/][^\\/\s'\"`,;:()]+)+[\\/]?")  # an absolute POSIX or Windows path


def escaped(text) -> str:
    """`text` as Markdown that shows exactly its characters on one line: every Markdown, HTML and
    Streamlit special character backslash-escaped, line breaks as spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def public(message) -> str:
    """A message for a visitor: every absolute path in it replaced by its last component, so that
    no message names a place on the server (core's errors name files by their full path)."""
    return _PATH.sub(lambda match: match.group(0).rstrip("\\/").replace("\\", "/").rsplit("/", 1)[-1],
                     str(message))


def shown(message) -> str:
    """An exception's message as a visitor reads it: no server path, and escaped for Markdown."""
    return escaped(public(message))
