"""Glassbox dashboard (placeholder until the dashboard issue lands)."""
import streamlit as st

st.set_page_config(page_title="Glassbox", layout="wide")
st.title("Glassbox: a transformer you can see through")
st.info("The multipage dashboard is on its way: overview, attention step by step, "
        "attention explorer, sampling lab, training and kernel benchmark.")
