"""Glossary: every term the pages use, two or three plain sentences each, each with an anchor
(glossary#entropy) that other pages link to through `dashboard.glossary.link`."""
import streamlit as st

from core.text.markdown import escaped
from dashboard import frame, glossary
from dashboard.navigation import GLOSSARY


def main() -> None:
    st.markdown(" · ".join(f"[{escaped(term)}](#{glossary.anchor(term)})" for term in glossary.TERMS))
    for term, meaning in glossary.TERMS.items():
        st.subheader(escaped(term), anchor=glossary.anchor(term))
        st.markdown(meaning)


frame.render_page(GLOSSARY, main, "The words the pages use, in plain language.")
