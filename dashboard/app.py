"""Glassbox dashboard: `streamlit run dashboard/app.py`.

The entry point: page config, the sidebar shared by every page (prompt, model in use),
and the navigation between the six pages in dashboard/pages/.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so that `dashboard` and `core` import from a plain checkout
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import state  # noqa: E402

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="Glassbox", page_icon="🔍", layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "overview.py", title="Overview", icon="🗺️", default=True),
    st.Page(PAGES / "attention_steps.py", title="Attention step by step", icon="🔢"),
    st.Page(PAGES / "explorer.py", title="Attention explorer", icon="🔭"),
    st.Page(PAGES / "sampling.py", title="Next token and sampling", icon="🎲"),
    st.Page(PAGES / "training.py", title="Training", icon="🏋️"),
    st.Page(PAGES / "benchmark.py", title="Kernel benchmark", icon="⏱️"),
])
state.sidebar()
navigation.run()
