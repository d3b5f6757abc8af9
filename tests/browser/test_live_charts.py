"""Live views in a real browser: one persistent chart, updated in place, never blank.

During a live run the page's DOM is sampled every 100 ms for 10 s, inside the browser:
each sample must show the live chart with its traces, none of the live view's elements
dimmed (Streamlit fades a rerunning fragment's), and the chart's own update counter
(incremented by each in-place redraw) must only grow, which it cannot do across a remount.
The chart must also keep being redrawn while the run is live; the update rate over the
samples is reported (a rate is a benchmark figure, not a timed assertion).
"""

from __future__ import annotations

import itertools
import os
import time

import pytest

from dashboard.live_view import FRAME_S, SHOTS, TICK_S

from .harness import assert_no_crash, wait_for

pytestmark = pytest.mark.browser

SAMPLES, PERIOD_MS = 100, 100  # 10 s of samples
# The design: a tick every TICK_S (0.36 s), computing SHOTS slices and capturing the run after
# each, which the chart draws FRAME_S apart (8.3 updates/s at most), for at least
# DESIGN_RATE updates/s where the server and the browser each have a core; reported beside
# the measured rate.
DESIGN_RATE = 5.0
WINDOW_S = 8.0  # seconds over which a training rate is measured
WARM_ITERS = 30  # iterations the page has trained before its rate is measured
WARMUP_UPDATES = 3  # the chart has drawn this often before sampling starts (a steady state)

# Samples every `period` ms, `n` times: per sample the time, the live chart's trace count
# and update counter (null when no live chart is drawn), whether a run is in progress, its
# progress line, and how many elements of the live view are drawn dimmed.
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
        best = {traces: g.data.length, updates: Number(g.dataset.updates || 0),
                resends: Number(g.dataset.resends || 0)};
        break;
      }
    }
    const bar = document.querySelector('[data-testid="stProgress"]');
    // elements of the live view drawn dimmed (Streamlit fades a rerunning fragment's)
    const dim = [...document.querySelectorAll(
      '[class*="st-key-live-view-"] [data-testid="stElementContainer"]')]
      .filter((e) => getComputedStyle(e).opacity !== '1').length;
    out.push({t: performance.now(), chart: best, running: !!bar,
              progress: bar ? bar.innerText : "", dim: dim});
    if (out.length >= n) done(out); else setTimeout(look, period);
  };
  look();
})
"""

# every live chart has drawn at least `n` times (so sampling starts in the steady state)
DRAWN = """(c, n) => { let k = 0; for (const f of document.querySelectorAll('iframe')) {
  let d = null; try { d = f.contentDocument; } catch (e) {}
  const div = d && d.getElementById('chart');  // a live chart's page, drawn or not yet
  if (!div) continue;
  if (Number(div.dataset.updates || 0) < n) return false;
  k += 1; }
  return k > 0; }"""


def _watch(page, report, what: str) -> None:
    wait_for(page, DRAWN, WARMUP_UPDATES, idle=False, timeout_s=120)
    samples = page.evaluate(_SAMPLE_JS, [SAMPLES, PERIOD_MS])
    live = [s for s in samples if s["running"]]
    assert len(live) == len(samples), "the run ended while sampling: make it longer"
    blank = [i for i, s in enumerate(live) if s["chart"] is None or s["chart"]["traces"] == 0]
    counts = [s["chart"]["updates"] for s in live if s["chart"]]
    span_s = (live[-1]["t"] - live[0]["t"]) / 1000
    rate = (counts[-1] - counts[0]) / span_s if counts and span_s > 0 else 0.0
    resends = max((s["chart"]["resends"] for s in live if s["chart"]), default=0)
    # page reruns seen: each draws a new progress line (its step count moved on)
    ticks = sum(a["progress"] != b["progress"] for a, b in itertools.pairwise(live))
    report(f"{what}: {len(blank)} blank of {len(live)} samples, {resends} full resends, "
           f"{rate:.1f} updates/s over "
           f"{span_s:.1f} s from {ticks / span_s:.1f} page reruns/s (design: "
           f"{1 / FRAME_S:.1f}/s at most from {SHOTS} states a rerun every {TICK_S} s, at "
           f"least {DESIGN_RATE:g}/s "
           f"with a core each for server and browser; load {os.getloadavg()[0]:.1f} on "
           f"{os.cpu_count()} cores)")
    assert not blank, f"no live chart (or no traces) in samples {blank}"
    dimmed = [i for i, s in enumerate(live) if s["dim"]]
    assert not dimmed, f"the live view was drawn dimmed in samples {dimmed}"
    assert counts == sorted(counts), f"the chart was remounted: counters {counts}"
    assert counts[-1] > counts[0], f"the chart was not redrawn while the run was live: {counts}"
    # only what changed travels: a page that missed a render asks for everything once (how
    # often depends on how loaded the machine is: reported above), never on every update
    assert resends < counts[-1] - counts[0], (resends, counts)
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


KL_GOAL = 0.05
# [KL, iteration] once the KL tile shows at most `goal`, or the run is no longer running
KL_REACHED = r"""(c, goal) => {
  const kl = (c.metrics()["KL(p_data ‖ p_θ)"] || [null])[0];
  const v = kl === null ? NaN : Number(kl);
  const p = document.querySelector('[data-testid="stProgress"]');
  const m = p && p.innerText.replace(/,/g, '').match(/iteration (\d+) of/);
  const done = p && !/running/.test(p.innerText);
  return (v <= goal || done) && m ? [kl, Number(m[1])] : false;
}"""


def _library_rate(url: str, seconds: float) -> float:
    """Iterations per second of the page's own settings (read from its URL) trained by the
    library in this process, one thread, as the CLI trains them."""
    from urllib.parse import parse_qsl, urlsplit

    import torch

    from dashboard import url_build

    values = dict(parse_qsl(urlsplit(url).query))
    values.setdefault("flow", "langevin")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = url_build.build_trainer(values)
        for _ in range(3):  # first iterations: allocation, the first evaluation
            trainer.step()
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:  # a measuring window, not a wait
            trainer.step()
            n += 1
        return n / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)


def test_training_in_the_browser_keeps_the_library_speed(new_page, report):
    # Benchmark figure (reported, not asserted): the page's iterations per second while it
    # draws live, against the library alone on the same settings, in the same test. The
    # goal is 90%; here the browser's own rendering shares the machine's cores with the
    # server, which a user's browser on their own machine does not.
    page = new_page("/train")  # the defaults: what users run
    wait_for(page, "(c) => c.text.includes('Press')", timeout_s=120)
    alone = _library_rate(page.url, WINDOW_S)
    page.get_by_test_id("stMain").get_by_role("button", name="start", exact=True).click()
    pressed = time.perf_counter()
    wait_for(page, "(c, n) => (" + _ITERATION_JS + ")() >= n", WARM_ITERS, idle=False,
             timeout_s=120)
    i0, t0 = page.evaluate(_ITERATION_JS), time.perf_counter()
    time.sleep(WINDOW_S)  # the measuring window itself, not a wait for a state
    i1, t1 = page.evaluate(_ITERATION_JS), time.perf_counter()
    rate = (i1 - i0) / (t1 - t0)
    # the default run's exact KL reaching 0.05 (issue goal: within 30 s of pressing start),
    # or the run ending first
    kl, it = wait_for(page, KL_REACHED, KL_GOAL, idle=False, timeout_s=240)
    to_goal = time.perf_counter() - pressed
    report(f"training in the browser: {rate:.1f} it/s while drawing live, the library alone "
           f"{alone:.1f} it/s on the same settings: {rate / alone:.0%} (goal 90%; load "
           f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, the browser's rendering "
           f"included); the default run's KL {kl} at iteration {it:,}, "
           f"{to_goal:.0f} s after start (goal: KL <= {KL_GOAL} within 30 s)")
    assert i1 > i0, "the live training did not advance"
    page.get_by_role("button", name="stop").click()
    assert_no_crash(page)
