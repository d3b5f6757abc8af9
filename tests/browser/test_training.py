"""Training an EBM in a real browser: live curves, pause, resume, stop, metrics CSV."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from .harness import assert_no_crash, expect, figures, wait_for
from .views import find_figure, progress_text, trace

pytestmark = pytest.mark.browser

TOTAL = 50_000
PROGRESS = re.compile(r"iteration ([\d,]+) of ([\d,]+) · .* · (\w+)")

# The progress bar says `status` and the test-NLL curve has more than `n` points; returns
# [points, iteration].
CURVE_AT_LEAST = """
(c, a) => {
  const bar = document.querySelector('[data-testid="stProgress"]');
  if (!bar || !bar.innerText.includes(a.status)) return false;
  const m = bar.innerText.match(/iteration ([\\d,]+) of/);
  const it = m ? Number(m[1].replace(/,/g, '')) : -1;
  if (it <= a.after) return false;
  const f = c.figs().find((x) => x.traces.some((t) => t.name === 'test NLL'));
  const t = f && f.traces.find((t) => t.name === 'test NLL');
  return t && t.x.length > a.n ? [t.x.length, it] : false;
}
"""


def _progress(page) -> tuple[int, int, str]:
    m = PROGRESS.search(progress_text(page))
    assert m, progress_text(page)
    return int(m[1].replace(",", "")), int(m[2].replace(",", "")), m[3]


def _button(page, name):
    return page.get_by_test_id("stMain").get_by_role("button", name=name, exact=True)


def test_training_live_pause_resume_stop_and_csv(new_page):
    # A small, fast model (600 it/s at best on this machine, alone) asked for 50,000
    # iterations: it cannot finish before the test presses stop (~250 iterations in).  The
    # exact metrics come every 50 iterations.
    page = new_page(f"/train?iters={TOTAL}&width=16&depth=1&K=5&seed=1")
    expect(page.get_by_text("Press start")).to_be_visible()
    wait_for(page, "(c) => c.figs().some((f) => f.traces.some((t) => t.name === 'data'))")
    start = _button(page, "start")
    start.click()

    # live: the likelihood curve grows while the run is running, without a page action
    n1, _ = wait_for(page, CURVE_AT_LEAST, {"status": "running", "n": 0, "after": 0},
                     idle=False, timeout_s=120)
    n2, _ = wait_for(page, CURVE_AT_LEAST, {"status": "running", "n": n1, "after": 0},
                     idle=False, timeout_s=120)
    assert n2 > n1 >= 1
    expect(start).to_be_disabled()

    _button(page, "pause").click()
    wait_for(page, "(c) => c.text.includes('· paused')", timeout_s=60)
    it_paused, total, status = _progress(page)
    assert status == "paused" and total == TOTAL and 0 < it_paused < total
    expect(_button(page, "resume")).to_be_enabled()
    expect(_button(page, "pause")).to_be_disabled()
    # paused means paused: nothing moves during an observation window of 1.5 s (at the
    # measured >= 5 it/s the run would advance several iterations in it)
    page.wait_for_timeout(1500)
    assert _progress(page) == (it_paused, total, "paused")

    _button(page, "resume").click()
    wait_for(page, CURVE_AT_LEAST, {"status": "running", "n": 0, "after": it_paused},
             idle=False, timeout_s=120)
    _button(page, "stop").click()
    wait_for(page, "(c) => c.text.includes('· stopped')", timeout_s=60)
    it_stopped, _, _ = _progress(page)
    assert it_paused < it_stopped < total
    expect(_button(page, "resume")).to_be_disabled()
    expect(_button(page, "start")).to_be_enabled()
    assert_no_crash(page)

    # the exact metrics drawn are those of the metrics CSV, row for row
    curves = find_figure(figures(page), "test NLL", "train NLL")
    test_nll = trace(curves, "test NLL")
    assert test_nll["x"] == sorted(test_nll["x"]) and test_nll["x"][0] == 50
    with page.expect_download() as info:
        page.get_by_role("button", name="metrics CSV").click()
    df = pd.read_csv(info.value.path())
    for col in ("iteration", "nll_train", "nll_test", "kl", "log_z"):
        assert col in df.columns, df.columns
    assert df["iteration"].tolist() == test_nll["x"]
    assert np.allclose(df["nll_test"], test_nll["y"], rtol=1e-6, atol=1e-6)
    assert (df["iteration"] <= it_stopped).all()
    # the learned density is drawn with the data and the current negatives
    model = find_figure(figures(page), "p_θ", "data", "negatives")
    # titled with the iteration of the density it draws: the last evaluation's
    assert model["title"] == f"p_θ at iteration {int(df['iteration'].iloc[-1]):,} (last evaluation)"


# The live scrubber's chart (in a live-chart iframe): its frame count, the frame shown
# (its title), whether the training is still running, and the newest frame's title (with
# ``not``: once it is another than that one).
SCRUBBER = """
(c, a) => {
  for (const f of document.querySelectorAll('iframe')) {
    let g = null;
    try { g = f.contentDocument.getElementById('chart'); } catch (e) { g = null; }
    const frames = g && g._transitionData ? g._transitionData._frames.length : 0;
    if (frames >= a.frames) {
      const bar = document.querySelector('[data-testid="stProgress"]');
      const last = Number(g._transitionData._frames[frames - 1].name).toLocaleString('en-US');
      const newest = `p_θ at iteration ${last}`;
      if (a.not && newest === a.not) continue;  // waiting for a newer snapshot
      return [frames, g.layout.title.text, !!bar && bar.innerText.includes('running'), newest];
    }
  }
  return false;
}
"""


def test_the_scrubber_plays_the_snapshots_while_the_run_goes_on(new_page):
    # a small fast model, many iterations: it runs through the whole test
    page = new_page(f"/train?iters={TOTAL}&width=16&depth=1&K=5&seed=2")
    expect(page.get_by_text("Press start")).to_be_visible()
    _button(page, "start").click()
    page.get_by_text("how the model evolved").click()  # shown once 2 evaluations exist
    _, title, running, newest = wait_for(page, SCRUBBER, {"frames": 3}, idle=False,
                                              timeout_s=120)
    assert running and title == newest  # a live scrubber opens on the newest snapshot
    chart = next(f for f in page.frames if f.evaluate(
        "() => { const g = document.getElementById('chart');"
        " return !!(g && g._transitionData && g._transitionData._frames.length); }"))
    chart.locator(".updatemenu-button").first.click()  # play, from the first snapshot
    seen = set()
    for _ in range(200):  # each frame shows 400 ms: a played frame is seen within 0.1 s
        seen.add(chart.evaluate("() => document.getElementById('chart').layout.title.text"))
        if len(seen) >= 3:
            break
        page.wait_for_timeout(100)  # a sampling period, not a wait for a state
    assert len(seen) >= 3, seen  # the animation steps on although the run is live
    # A newer snapshot, not one more: the scrubber keeps the last MAX_FRAMES of them
    more = wait_for(page, SCRUBBER, {"frames": 1, "not": newest}, idle=False, timeout_s=120)
    assert more[2], "the run finished before a new snapshot arrived"  # added while live
    assert_no_crash(page)
