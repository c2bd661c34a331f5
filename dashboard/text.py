"""Strings a visitor or a model file supplies (prompts, token strings, file names, model names, the
names of the lab's settings) made safe to show on a page: `escaped` (core.text.markdown) before anything reaches
Markdown, `public` before a message built from an exception reaches a visitor.

Every st.markdown, st.caption, st.info, st.warning, st.error and st.success renders Markdown (and
Streamlit's own extensions: colours, icons, LaTeX between dollars), so a token string holding
``![x](http://...)`` would make every visitor's browser fetch that image. Charts (Vega-Lite) and
dataframes are not Markdown: their labels need nothing.
"""
from __future__ import annotations

import re

from core.text.markdown import escaped

_PATH = re.compile(r"(?<![\w.~/\\])(?:[A-Za-z]:)?(?:[\\/][^\\/\s'\"`,;:()]+)+[\\/]?")  # an absolute POSIX or Windows path


def public(message) -> str:
    """A message for a visitor: every absolute path in it replaced by its last component, so that
    no message names a place on the server (core's errors name files by their full path)."""
    return _PATH.sub(lambda match: match.group(0).rstrip("\\/").replace("\\", "/").rsplit("/", 1)[-1],
                     str(message))


def safe_message(message) -> str:
    """An exception's message as a visitor reads it: no server path, and escaped for Markdown."""
    return escaped(public(message))

