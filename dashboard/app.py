"""Glassbox dashboard: `streamlit run dashboard/app.py`.

The entry point: page config, the sidebar shared by every page (prompt, model picker, this
session's training), and the navigation between the pages, one file each in dashboard/views/.

The folder is not called pages/: Streamlit treats a pages/ folder beside the main script as a
legacy multipage app (until st.navigation has run once in the server, and in every AppTest run),
running a page file alone, without this sidebar, and with widget ids that change between runs.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so that `dashboard` and `core` import from a plain checkout
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import jobs, state  # noqa: E402

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Glassbox", page_icon=":material/visibility:", layout="wide")
navigation = st.navigation([
    st.Page(VIEWS / "overview.py", title="Overview", icon=":material/map:", default=True),
    st.Page(VIEWS / "start_here.py", title="Start here", icon=":material/flag:"),
    st.Page(VIEWS / "attention_steps.py", title="Attention step by step", icon=":material/calculate:"),
    st.Page(VIEWS / "block_steps.py", title="The block step by step", icon=":material/view_agenda:"),
    st.Page(VIEWS / "explorer.py", title="Attention explorer", icon=":material/grid_view:"),
    st.Page(VIEWS / "sampling.py", title="Next token and sampling", icon=":material/casino:"),
    st.Page(VIEWS / "practice.py", title="Practice", icon=":material/quiz:"),
    st.Page(VIEWS / "experiments.py", title="Experiments", icon=":material/science:"),
    st.Page(VIEWS / "training.py", title="Training", icon=":material/model_training:"),
    st.Page(VIEWS / "benchmark.py", title="Kernel benchmark", icon=":material/speed:"),
    st.Page(VIEWS / "glossary.py", title="Glossary", icon=":material/menu_book:"),
])
state.sidebar()
jobs.sidebar_progress()  # this session's training, on every page
navigation.run()
