"""Glassbox dashboard: `streamlit run dashboard/app.py`.

The entry point: page config, the sidebar shared by every page (prompt, model picker, this
session's training), and the navigation between the pages, one file each in dashboard/views/,
in the sections dashboard.navigation names. `dashboard` is an installed package (pip install -e .),
so this script imports it like any other.

The folder is not called pages/: Streamlit treats a pages/ folder beside the main script as a
legacy multipage app (until st.navigation has run once in the server, and in every AppTest run),
running a page file alone, without this sidebar, and with widget ids that change between runs.
"""
from pathlib import Path

import streamlit as st

from dashboard import frame, jobs, navigation, widgets

HERE = Path(__file__).parent  # navigation's scripts are relative to this file

st.set_page_config(page_title="Glassbox", page_icon=":material/visibility:", layout="wide")
widgets.drop_unknown_widget_states()  # before any widget: a forged widget id must not break the run
chosen = st.navigation({
    section: [st.Page(HERE / page.script, title=page.title, icon=page.icon, url_path=page.url_path,
                      default=page is navigation.DEFAULT) for page in pages]
    for section, pages in navigation.SECTIONS.items()
})
frame.sidebar()
jobs.sidebar_progress()  # this session's training, on every page
chosen.run()
