"""Live views in a real browser: one persistent chart, updated in place, never blank.

During a live run the page's DOM is sampled every 100 ms for 10 s, inside the browser:
each sample must show the live chart with its traces, and the chart's own update counter
(incremented by each in-place redraw) must only grow, which it cannot do across a remount.
The number of distinct updates is reported, and a minimum is asserted as a count.
"""

from __future__ import annotations

import pytest

from .harness import assert_no_crash, wait_for

pytestmark = pytest.mark.browser

SAMPLES, PERIOD_MS = 100, 100  # 10 s of samples
MIN_UPDATES = 3  # distinct in-place redraws in those samples: the chart is live, not frozen

# Samples every `period` ms, `n` times: per sample the live chart's trace count and update
# counter (null when no live chart is drawn), and whether a run is still in progress.
_SAMPLE_JS = r"""
([n, period]) => new Promise((done) => {
  const out = [];
  const look = () => {
    // the first live chart (a page may have several; each has its own counter)
    let best = null;
    for (const f of document.querySelectorAll('iframe')) {
      let d = null;
      try { d = f.contentDocument; } catch (e) { d = null; }
      const g = d && d.querySelector('.js-plotly-plot');
      if (g && g.data) {
        best = {traces: g.data.length, updates: Number(g.dataset.updates || 0)};
        break;
      }
    }
    const running = !!document.querySelector('[data-testid="stProgress"]');
    out.push({chart: best, running});
    if (out.length >= n) done(out); else setTimeout(look, period);
  };
  look();
})
"""

FIRST_DRAW = """(c) => { let n = 0; for (const f of document.querySelectorAll('iframe')) {
  let d = null; try { d = f.contentDocument; } catch (e) {}
  const div = d && d.getElementById('chart');  // a live chart's page, drawn or not yet
  if (!div) continue;
  if (Number(div.dataset.updates || 0) === 0) return false;  // every live chart has drawn
  n += 1; }
  return n > 0; }"""


def _watch(page, report, what: str) -> None:
    wait_for(page, FIRST_DRAW, idle=False, timeout_s=120)
    samples = page.evaluate(_SAMPLE_JS, [SAMPLES, PERIOD_MS])
    live = [s for s in samples if s["running"]]
    assert len(live) == len(samples), "the run ended while sampling: make it longer"
    blank = [i for i, s in enumerate(live) if s["chart"] is None or s["chart"]["traces"] == 0]
    counts = [s["chart"]["updates"] for s in live if s["chart"]]
    distinct = len(set(counts))
    report(f"{what}: {len(blank)} blank of {len(live)} samples, {distinct} distinct updates "
           f"in {SAMPLES * PERIOD_MS / 1000:g} s of samples")
    assert not blank, f"no live chart (or no traces) in samples {blank}"
    assert counts == sorted(counts), f"the chart was remounted: counters {counts}"
    assert distinct >= MIN_UPDATES, counts
    assert_no_crash(page)


def test_playground_live_run_updates_one_chart_in_place(new_page, report):
    page = new_page("/?chains=2000&steps=1000000&seed=4")
    _watch(page, report, "playground")
    page.get_by_role("button", name="stop").click()


def test_training_live_run_updates_its_charts_in_place(new_page, report):
    page = new_page("/train?data=mixture&method=persistent&width=32&iters=20000")
    wait_for(page, "(c) => c.text.includes('Press')", timeout_s=120)
    page.get_by_role("button", name="start").click()
    _watch(page, report, "training")
    page.get_by_role("button", name="stop").click()


# The progress line's iteration count, read in the page at two moments of a live run.
_ITERATION_JS = r"""() => {
  const p = document.querySelector('[data-testid="stProgress"]');
  const m = p && p.innerText.replace(/,/g, '').match(/iteration (\d+) of/);
  return m ? Number(m[1]) : null;
}"""
