"""Text the explanations write as Markdown (questions, exercises) and the dashboard shows: a string
from a prompt or a model file (a token, a word) goes into it through `escaped` or `code`, so that
nothing in it renders as a link, an image, HTML or a formula. The dashboard imports these too
(dashboard/text.py adds `public`, for messages built from exceptions)."""
from __future__ import annotations

import re

MARKDOWN_SPECIALS = "\\`*_{}[]()#+-.!|<>~$:="  # CommonMark's, HTML's and Streamlit's (colours, icons, LaTeX)
_SPECIAL = re.compile("([" + re.escape(MARKDOWN_SPECIALS) + "])")


def escaped(text) -> str:
    """`text` as Markdown that shows exactly its characters on one line: every Markdown, HTML and
    Streamlit special character backslash-escaped, line breaks as spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def code(text) -> str:
    """`text` as an inline code span that nothing in it can close (CommonMark: a fence of one more
    backtick than its longest run of backticks), on one line; inside, Markdown and HTML are plain text."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if "`" in text else f"{fence}{text}{fence}"
