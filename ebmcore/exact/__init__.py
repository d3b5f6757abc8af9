"""Exact ground truth in 2D: quadrature, convergence diagnostics, run summaries, eps sweeps."""
