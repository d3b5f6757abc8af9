"""Langevin Lab's Streamlit dashboard: pages in ``app_pages``, pure figures in ``plots``."""
