"""The density flow and the sampler zoo in a real browser: each view drawn, and the
browser-side animations play (Plotly frames, no server round trip per frame)."""

from __future__ import annotations

import pytest

from dashboard.url_views import zoo_defaults

from .harness import assert_no_crash, wait_for

pytestmark = pytest.mark.browser

# A chart in the page whose frames are loaded: its title, slider position, and per trace the
# type, name and the sum of its z (heatmaps) or the number of its points.
_CHART = """
(c, want) => {
  for (const g of document.querySelectorAll('.js-plotly-plot')) {
    if (!g._fullLayout || !(g.data || []).some((t) => (t.name || '').includes(want))) continue;
    const sum = (z) => z ? Array.from(z, (r) => Array.from(r).reduce((a, b) => a + b, 0))
                             .reduce((a, b) => a + b, 0) : null;
    const t = g._fullLayout.title;
    return {title: (t && t.text) || '', frames: (g._transitionData._frames || []).length,
            active: g._fullLayout.sliders.length ? g._fullLayout.sliders[0].active : null,
            traces: g._fullData.map((d) => ({type: d.type, name: d.name,
                                              zsum: d.type === 'heatmap' ? sum(d.z) : null,
                                              n: d.x ? d.x.length : 0}))};
  }
  return false;
}
"""


def chart(page, want: str, timeout_s: float = 180.0) -> dict:
    return wait_for(page, _CHART, want, timeout_s=timeout_s)


def play_to_end(page, want: str, last: int) -> dict:
    """Press the chart's play button and wait until the slider reaches frame ``last``."""
    page.locator(".updatemenu-button", has_text="play").first.click()
    return wait_for(page, f"(c, want) => {{ const r = ({_CHART})(c, want); "
                          f"return r && r.active === {last} ? r : false; }}", want,
                    idle=False, timeout_s=60)


def test_density_flow_frames_play_with_both_panels_drawn(new_page):
    page = new_page("/flow?chains=2000&t=2&eps=0.2&grid=64&bins=16")
    start = chart(page, "KL(ρ_t ‖ p), exact")
    assert_no_crash(page)
    assert start["frames"] == 11 and start["active"] == 0  # t = 0, 0.2, ..., 2
    assert start["title"].startswith("t = 0:")
    heat = [t for t in start["traces"] if t["type"] == "heatmap"]
    # both panels hold a probability density over the box: uniform start, mass 1 each
    assert len(heat) == 2 and all(h["zsum"] > 0 for h in heat)
    end = play_to_end(page, "KL(ρ_t ‖ p), exact", 10)
    assert end["title"].startswith("t = 2:") and "k = 10 steps" in end["title"]
    moved = [t for t in end["traces"] if t["type"] == "heatmap"]
    # the law concentrated on the Gaussian: the exact panel's peak grew, its sum changed
    assert all(m["zsum"] != h["zsum"] for m, h in zip(moved, heat, strict=True))
    assert_no_crash(page)


def test_zoo_stepwise_animation_plays(new_page):
    page = new_page("/samplers?view=stepwise&target=gaussian&sb_sampler=mala&sb_steps=6"
                    "&sb_chains=4&sb_eps=0.5")
    start = chart(page, "accepted proposal")
    assert_no_crash(page)
    assert start["frames"] == 6 and start["title"].startswith("step 1 of 6")
    end = play_to_end(page, "accepted proposal", 5)
    assert end["title"].startswith("step 6 of 6") and "running acceptance" in end["title"]
    assert_no_crash(page)


@pytest.mark.parametrize("query,want", [
    ("view=phase&target=banana", "±2√T (Maxwellian)"),
    # the race's steps are the mixture's own (the zoo scales them to the target)
    ("view=race&target=mixture&rc_chains=1000&rc_steps=100",
     f"underdamped (BAOAB), ε = {zoo_defaults('mixture')['rc_ud']:g}"),
    ("view=annealed&target=mixture&an_chains=1000&an_steps=100", "annealed Langevin"),
])
def test_zoo_views_draw(new_page, query, want):
    page = new_page(f"/samplers?{query}")
    got = chart(page, want)
    assert_no_crash(page)
    assert len(got["traces"]) >= 3
    assert all(t["n"] > 0 for t in got["traces"] if t["type"] in ("scatter", "bar"))
