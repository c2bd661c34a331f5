"""The dashboard's pages, one script each, run by st.navigation (dashboard/app.py) on every visit."""
