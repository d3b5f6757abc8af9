"""One module per page; each runs top to bottom when Streamlit executes it."""
