"""Glassbox dashboard: the Streamlit app (app.py), its pages, chart builders and session state."""
