"""Glassbox core: a small GPT-2-style transformer whose every intermediate can be shown.

No Streamlit here: the dashboard calls this package and draws.
"""
