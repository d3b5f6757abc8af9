"""SGLD vs MAP in a real browser: both panels drawn, MAP collapsed on the mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebmcore.exact.density import sgld_stationary_cov

from .harness import assert_no_crash
from .views import find_figure, settle_versus, trace, xy

pytestmark = pytest.mark.browser

COV = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # the reference Gaussian
LOG_Z = math.log(2 * math.pi * math.sqrt(3.0))  # log(2 pi sqrt(det COV))


def test_sgld_and_map_panels_side_by_side(new_page):
    page = new_page("/sgld-vs-map")
    figs, m = settle_versus(page, "ε = 0.3")
    assert_no_crash(page)
    twin = find_figure(figs, "SGLD", "MAP")
    assert [t["type"] for t in twin["traces"]].count("contour") == 2  # a density per panel
    # the two panels share one box: identical fixed axis ranges
    r = twin["ranges"]
    assert r["xaxis"] == r["xaxis2"] and r["yaxis"] == r["yaxis2"], r
    sgld, map_ = xy(trace(twin, "SGLD")), xy(trace(twin, "MAP"))
    assert sgld.shape == map_.shape == (500, 2)

    # MAP: gradient descent from the same starts; the slowest direction contracts by
    # (1 - 0.3 / 3) = 0.9 per step, 0.9^1000 ~ 1e-46: every point is on the mode (0, 0) to
    # float32 precision (1e-4 is generous).  Its spread is zero.
    assert np.abs(map_).max() < 1e-4, np.abs(map_).max()
    assert map_.std(axis=0).max() < 1e-4
    # SGLD keeps spreading over the density: the exact ULA stationary covariance at this eps.
    # Sample variance of n = 500: relative standard error sqrt(2 / 499) = 0.063; 4 sigma 0.25.
    want = np.diag(sgld_stationary_cov(COV, 0.3).numpy())
    assert np.all(np.abs(sgld.var(axis=0, ddof=1) / want - 1) < 0.25)

    # the numbers: MAP's mean log p is the mode's, log p(0) = -log Z (4 significant digits
    # shown), one nat above E_p[log p] = -log Z - 1, which SGLD's note quotes
    map_like = float(m["MAP: mean log p(x)"][0])
    assert map_like == pytest.approx(-LOG_Z, abs=1e-3)
    assert f"{-LOG_Z - 1:.4g}" in m["SGLD: mean log p(x)"][1]
    assert map_like > float(m["SGLD: mean log p(x)"][0]) + 0.5
    assert float(m["MAP discrepancy"][0]) > 0.95 > float(m["SGLD discrepancy"][0])
    # the likelihood curves of both runs are drawn with the exact reference
    curves = find_figure(figs, "noise off (MAP)", "exact (expectation under p)")
    assert trace(curves, "noise off (MAP)")["y"][-1] == pytest.approx(-LOG_Z, abs=1e-3)
