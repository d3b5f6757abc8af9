"""Switching the target in a real browser: its settings load, and the figure frames it."""

from __future__ import annotations

import numpy as np
import pytest

from ebmcore.exact.density import quadrature
from ebmcore.exact.view import view_box
from ebmcore.targets.registry import make_target
from ebmcore.targets.settings import settings_for

from .harness import assert_no_crash, expect
from .views import find_figure, settle_playground, trace, xy

pytestmark = pytest.mark.browser


def test_switching_the_target_loads_its_settings_and_frames_its_density(new_page):
    page = new_page("/")
    settle_playground(page, "ε = 0.3 · 500 chains")
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("HMC", exact=True).click()  # HMC: banana's run is short (1000 steps)
    settle_playground(page, "gaussian · HMC")
    sidebar.get_by_role("combobox", name="target").click()
    page.get_by_role("option", name="banana", exact=True).click()

    want = settings_for("banana", "hmc")
    figs, m = settle_playground(page, f"banana · HMC · ε = {want.step_size:g}")
    assert_no_crash(page)
    expect(sidebar.get_by_text(f"banana's HMC settings loaded: ε = {want.step_size:g}")
           ).to_be_visible()
    expect(sidebar.get_by_role("textbox", name="ε (exact)")).to_have_value(
        f"{want.step_size:g}")
    assert f"eps={want.step_size:g}" in page.url and "target=banana" in page.url

    # the chains figure's axes are the 99.5% view box, not banana's 42-unit-tall box
    t = make_target("banana")
    gd = quadrature(t.energy, t.box, 256)
    x0, x1, y0, y1 = view_box(gd)
    chains = find_figure(figs, "trajectories", "chains")
    np.testing.assert_allclose(chains["ranges"]["xaxis"], [x0, x1], atol=1e-4)
    np.testing.assert_allclose(chains["ranges"]["yaxis"], [y0, y1], atol=1e-4)
    assert y1 - y0 < 0.5 * (t.box[3] - t.box[2])
    # and it holds the chains: with 500 chains near the exact law, the share outside a box
    # of 99.5% mass is about 0.005 (sd 0.003); 3% outside would mean a framing bug
    pts = xy(trace(chains, "chains"))
    inside = ((pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1))
    assert inside.mean() > 0.97, inside.mean()
    # the exact numbers still integrate over the full box
    assert float(m["log Z (exact)"][0]) == pytest.approx(gd.log_z, abs=5e-4)
