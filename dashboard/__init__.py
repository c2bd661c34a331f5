"""Glassbox dashboard: the Streamlit app (app.py), its pages, chart builders and session state."""
# Before anything imports NumPy: core/__init__.py starts BLAS on one thread, which only works while
# NumPy is not loaded yet (in the server, dashboard.state's altair import loaded it first, so BLAS
# ran on 2 threads and training in the dashboard was several times slower than the CLI).
import core  # noqa: F401,E402
