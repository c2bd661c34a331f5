"""Glassbox dashboard: the Streamlit app (app.py), its pages (views/) and the modules they share."""
# Before anything imports NumPy: core/__init__.py starts BLAS on one thread, which works only while
# NumPy is not loaded yet. Importing core first keeps it so in the server, where dashboard.figures'
# Altair import would otherwise load NumPy first and leave BLAS on every core, making training in the
# dashboard several times slower than the CLI.
import core  # noqa: F401,E402
