"""Figure builders: pure functions from data (densities, traces, records) to Plotly figures."""
