"""The Langevin playground in a real browser: defaults, controls, URL, CSV, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ebmcore.exact.density import sgld_stationary_cov

from .harness import assert_no_crash, expect, figures, wait_for
from .views import find_figure, settle_playground, sidebar_slider, trace, xy

pytestmark = pytest.mark.browser

# The reference example (the defaults): N(0, S) with S = [[2, 1], [1, 2]], eps 0.3, 1000
# steps, 500 chains, noise on.  Exact: log Z = log(2 pi sqrt(det S)) = log(2 pi sqrt 3);
# E_p[log p] = -log Z - d/2 with d = 2; at the mode, log p = -log Z.
COV = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
LOG_Z = math.log(2 * math.pi * math.sqrt(3.0))
NEG_ENTROPY = -LOG_Z - 1.0
CHAINS = 500


def _eps_box(page):
    return page.get_by_role("textbox", name="ε (exact)")


def test_defaults_show_density_and_chains(new_page):
    page = new_page("/")
    figs, m = settle_playground(page, "ε = 0.3 · 500 chains")
    assert_no_crash(page)
    # the defaults reproduce the reference example, and say so in the controls and the URL
    assert _eps_box(page).input_value() == "0.3"
    assert sidebar_slider(page, "chain length (steps)") == "1,000"
    assert sidebar_slider(page, "number of chains") == str(CHAINS)
    expect(page.get_by_test_id("stSidebar").get_by_role("switch", name="noise")).to_be_checked()
    for part in ("target=gaussian", "eps=0.3", "steps=1000", "noise=1", "p.cov=2%2C+1%2C+1%2C+2"):
        assert part in page.url, page.url

    # density contours with the chains and two trajectories on top
    chains_fig = find_figure(figs, "trajectories", "chains")
    kinds = [t["type"] for t in chains_fig["traces"]]
    assert kinds[0] == "contour" and kinds.count("contour") == 1, kinds
    pts = xy(trace(chains_fig, "chains"))
    assert pts.shape == (CHAINS, 2) and np.isfinite(pts).all()
    assert len([t for t in chains_fig["traces"] if t["name"] == "trajectories"]) == 2
    # SGLD at eps = 0.3 samples the exact ULA stationary law N(0, (A - eps A^2 / 2)^-1),
    # A = S^-1 (after 1000 steps, t = 300, the slowest mode has relaxed by e^-100).
    # With n = 500 chains the sample variance has relative standard error sqrt(2 / (n - 1))
    # = 0.063; 4 sigma = 0.25 relative.  The mean has standard error sqrt(2.4 / 500) = 0.07;
    # 4 sigma = 0.28.
    want = sgld_stationary_cov(COV, 0.3).numpy()
    var = pts.var(axis=0, ddof=1)
    assert np.all(np.abs(var / np.diag(want) - 1) < 0.25), (var, want)
    assert np.all(np.abs(pts.mean(axis=0)) < 0.28), pts.mean(axis=0)
    # marginal histograms against exact marginals, and the likelihood curve with the
    # exact E_p[log p] as its reference line
    marg = find_figure(figs, "chains", "exact")
    assert [t["type"] for t in marg["traces"]].count("bar") == 2
    curves = find_figure(figs, "exact (expectation under p)")
    ref = trace(curves, "exact (expectation under p)")
    assert np.allclose(ref["y"], NEG_ENTROPY, atol=1e-4), ref["y"]  # float32 on the wire
    like = trace(curves, "chains")
    assert len(like["x"]) == 1001 and like["x"][-1] == 1000
    # the numbers: exact log Z (4 decimals shown)
    assert float(m["log Z (exact)"][0]) == pytest.approx(LOG_Z, abs=5e-5)
    assert m["diverged chains"][0] == "0"


def test_eps_and_noise_change_figures_and_numbers(new_page):
    page = new_page("/")
    figs0, m0 = settle_playground(page, "ε = 0.3 ")
    pts0 = xy(trace(find_figure(figs0, "trajectories"), "chains"))
    sidebar = page.get_by_test_id("stSidebar")

    # move the eps slider one notch down the log grid, with the keyboard: 0.3 -> 0.25
    eps_slider = sidebar.get_by_role("slider", name="step size ε")
    eps_slider.focus()
    eps_slider.press("ArrowLeft")
    figs1, m1 = settle_playground(page, "ε = 0.25 ")
    assert_no_crash(page)
    assert _eps_box(page).input_value() == "0.25"  # the exact field follows the slider
    assert "eps=0.25" in page.url
    pts1 = xy(trace(find_figure(figs1, "trajectories"), "chains"))
    assert pts1.shape == pts0.shape and not np.allclose(pts1, pts0)
    assert m1["log Z (exact)"] == m0["log Z (exact)"]  # same target
    changed = [k for k in m0 if k != "log Z (exact)" and m0[k] != m1[k]]
    assert changed, (m0, m1)

    # noise off: plain gradient descent, every chain ends on the mode (0, 0).  The slowest
    # direction contracts by (1 - eps / 3) per step: 0.917^1000 ~ 1e-38 of a start at most
    # 12 away, so the points sit at 0 to float32 precision; 1e-4 is generous.
    sidebar.get_by_text("noise", exact=True).click()
    figs2, m2 = settle_playground(page, "gradient descent (noise off) · ε = 0.25")
    assert_no_crash(page)
    expect(sidebar.get_by_role("switch", name="noise")).not_to_be_checked()
    assert "noise=0" in page.url
    pts2 = xy(trace(find_figure(figs2, "trajectories"), "chains"))
    assert np.abs(pts2).max() < 1e-4, np.abs(pts2).max()
    # all 500 points in one of 32 x 32 bins, whose exact mass is at most
    # p(0) * cell area = (2 pi sqrt 3)^-1 * (16.9 / 32)^2 = 0.026: TV >= 0.97
    assert float(m2["discrepancy (TV)"][0]) > 0.95, m2
    # the mean log-likelihood climbs to the mode's, log p(0) = -log Z, above E_p[log p]
    like = trace(find_figure(figs2, "exact (expectation under p)"), "chains")
    assert like["y"][-1] == pytest.approx(-LOG_Z, abs=1e-3)
    assert like["y"][-1] > NEG_ENTROPY + 0.9
    expect(page.get_by_text("Noise off: the chains climb to the mode")).to_be_visible()


def test_url_reopens_the_same_settings(new_page):
    page = new_page("/?seed=7&chains=200&steps=300")
    settle_playground(page, "ε = 0.3 · 200 chains")
    _eps_box(page).fill("0.15")
    _eps_box(page).press("Enter")
    figs, m = settle_playground(page, "ε = 0.15 · 200 chains")
    url = page.url
    for part in ("eps=0.15", "seed=7", "chains=200", "steps=300"):
        assert part in url, url

    other = new_page(url)  # a new user (own browser context, own session) pastes the link
    figs2, m2 = settle_playground(other, "ε = 0.15 · 200 chains")
    assert_no_crash(other)
    assert _eps_box(other).input_value() == "0.15"
    assert sidebar_slider(other, "step size ε") == "0.15"
    assert sidebar_slider(other, "chain length (steps)") == "300"
    assert sidebar_slider(other, "number of chains") == "200"
    assert other.locator('input[aria-label="seed"]').input_value() == "7"
    # the same settings and seed: the very same run, point for point, number for number
    a = xy(trace(find_figure(figs, "trajectories"), "chains"))
    b = xy(trace(find_figure(figs2, "trajectories"), "chains"))
    assert a.shape == (200, 2) and np.array_equal(a, b)
    assert {k: v[0] for k, v in m.items()} == {k: v[0] for k, v in m2.items()}


def test_csv_downloads_match_the_figures(new_page):
    page = new_page("/?seed=5&chains=300&steps=200")
    figs, _ = settle_playground(page, "300 chains")
    chains = xy(trace(find_figure(figs, "trajectories"), "chains"))
    like = trace(find_figure(figs, "exact (expectation under p)"), "chains")

    with page.expect_download() as info:
        page.get_by_role("button", name="samples CSV").click()
    dl = info.value
    assert dl.suggested_filename == "samples.csv"
    df = pd.read_csv(dl.path())
    assert list(df.columns) == ["chain", "x", "y", "alive"]
    assert len(df) == 300 and df["alive"].all() and (df["chain"] == np.arange(300)).all()
    # CSV floats carry 7 significant digits, the figure float32 (~7.2): agree to 1e-6 relative
    assert np.allclose(df[["x", "y"]].to_numpy(), chains, rtol=1e-6, atol=1e-6)

    with page.expect_download() as info:
        page.get_by_role("button", name="trace CSV").click()
    tr = pd.read_csv(info.value.path())
    assert list(tr.columns) == ["step", "mean_energy", "mean_log_p"]
    assert tr["step"].tolist() == like["x"]  # the likelihood curve, step by step
    assert np.allclose(tr["mean_log_p"], like["y"], rtol=1e-6, atol=1e-6)
    assert_no_crash(page)


def test_bad_input_shows_a_message_and_the_page_keeps_working(new_page):
    page = new_page("/?chains=200&steps=300")
    settle_playground(page, "ε = 0.3 · 200 chains")
    sidebar = page.get_by_test_id("stSidebar")

    # a typed eps that is not a number: a message beside the field, the last valid run stays
    _eps_box(page).fill("abc")
    _eps_box(page).press("Enter")
    wait_for(page, "(c) => c.text.includes(\"'abc' is not a number\")")
    expect(sidebar.get_by_text("eps: 'abc' is not a number")).to_be_visible()
    expect(page.get_by_text("Showing the last valid settings")).to_be_visible()
    figs = figures(page)
    assert "ε = 0.3 " in find_figure(figs, "trajectories")["title"]
    assert "eps=0.3" in page.url  # the URL keeps the valid settings
    assert_no_crash(page)
    # fixing it runs the new value
    _eps_box(page).fill("0.2")
    _eps_box(page).press("Enter")
    settle_playground(page, "ε = 0.2 · 200 chains")
    assert page.get_by_text("is not a number").count() == 0
    assert_no_crash(page)

    # bad values in a pasted link fall back to their defaults, with a note naming each one
    other = new_page("/?eps=abc&steps=7.5&target=nope&chains=200")
    settle_playground(other, "gaussian · SGLD · ε = 0.3 · 200 chains")
    note = other.get_by_test_id("stAlert").filter(has_text="were not valid")
    expect(note).to_be_visible()
    for bad in ("eps='abc'", "steps='7.5'", "target='nope'"):
        expect(note).to_contain_text(bad)
    assert "eps=0.3" in other.url and "steps=1000" in other.url and "chains=200" in other.url
    assert_no_crash(other)
    # the page keeps working: the next change runs and the note goes away
    _eps_box(other).fill("0.1")
    _eps_box(other).press("Enter")
    settle_playground(other, "ε = 0.1 · 200 chains")
    expect(other.get_by_text("were not valid")).to_have_count(0)
