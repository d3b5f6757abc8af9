"""Exact ground truth in 2D: quadrature, diagnostics, run summaries, eps sweeps, and the
Fokker–Planck law of the chains over time."""
