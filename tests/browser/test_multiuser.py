"""Several users at once: four browser contexts train different models at the same time."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ebmcore.ebm.data import make_dataset

from .harness import assert_no_crash, expect, figures, memory_kib, wait_for
from .views import find_figure, progress_text, trace

pytestmark = pytest.mark.browser

# Four users with different data, seeds, model widths and lengths (small, fast models).
# Long enough that four started within about a second overlap: one alone runs these small
# models at up to about 250 it/s (measured), so the shortest takes more than 2 s.
USERS = [
    {"data": "moons", "seed": 1, "iters": 600, "width": 16},
    {"data": "circles", "seed": 2, "iters": 750, "width": 32},
    {"data": "8gaussians", "seed": 3, "iters": 900, "width": 16},
    {"data": "mixture", "seed": 4, "iters": 1050, "width": 32},
]
MIB = 1024  # KiB per MiB (/proc reports KiB)
GROWTH_FLOOR_MIB = 20  # a session may legitimately hold a few MiB; never assume less than this
MARGIN_MIB = 150  # allocator fragmentation, per-thread arenas, Streamlit's message cache

# the progress line writes counts with thousands separators (1,050)
FINISHED = ("(c, total) => { const n = total.toLocaleString('en-US'); "
            "return c.text.includes(`iteration ${n} of ${n}`) && c.text.includes('· finished'); }")

# "running at <iteration>" or "finished at <iteration>", from the progress bar
RUNNING_OR_DONE = """
() => {
  const b = document.querySelector('[data-testid="stProgress"]');
  const m = b && b.innerText.match(/iteration ([\\d,]+) of .* · (running|finished)/);
  return m ? m[2] + ' at ' + m[1] : false;
}
"""


def _path(u: dict) -> str:
    return (f"/train?data={u['data']}&seed={u['seed']}&iters={u['iters']}"
            f"&width={u['width']}&depth=1&K=5")


def _ready(page) -> None:
    expect(page.get_by_text("Press start")).to_be_visible()
    wait_for(page, "(c) => c.figs().some((f) => f.traces.some((t) => t.name === 'data'))")


def _start(page) -> None:
    page.get_by_test_id("stMain").get_by_role("button", name="start", exact=True).click()


class PeakRss:
    """Samples a process's VmRSS every 50 ms in a thread (reading /proc only)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, memory_kib(self.pid)["VmRSS"])
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_four_users_train_at_once(new_page, server, report):
    # one user alone first, twice: the first run warms the server up (imports, caches: the
    # server starts the app lazily), the second measures what one more session adds
    for k in range(2):
        rss0 = memory_kib(server.pid)["VmRSS"]
        alone = new_page(_path(USERS[0]))
        _ready(alone)
        _start(alone)
        wait_for(alone, FINISHED, USERS[0]["iters"], timeout_s=180)
        rss1 = memory_kib(server.pid)["VmRSS"]
        if k == 0:
            first_rss = rss1
    single_growth = max(rss1 - rss0, GROWTH_FLOOR_MIB * MIB)
    hwm_before = memory_kib(server.pid)["VmHWM"]

    # four users at the same time, each with its own settings
    with PeakRss(server.pid) as sampler:
        pages = [new_page(_path(u)) for u in USERS]  # the four pages load side by side
        for page in pages:
            _ready(page)
        for page in pages:  # four clicks in a row: the runs overlap
            _start(page)
        seen = [wait_for(p, RUNNING_OR_DONE, idle=False, timeout_s=60) for p in pages]
        # Proof of overlap: the runs were started within about a second; one alone takes
        # > 2 s (see USERS) and four share the CPU.
        assert sum(s.startswith("running") for s in seen) >= 2, seen
        for page, u in zip(pages, USERS, strict=True):
            wait_for(page, FINISHED, u["iters"], timeout_s=240)
    mem = memory_kib(server.pid)
    # VmHWM is the process's lifetime peak: if it rose, it is this phase's true peak;
    # otherwise the sampled peak (50 ms resolution) is the best lower bound we have
    peak = mem["VmHWM"] if mem["VmHWM"] > hwm_before else sampler.peak
    # Bound: each session holds its own trainer, data and figures, nothing shared grows with
    # the number of users, so 4 concurrent sessions may add at most 4x what one added alone
    # (never counted as less than 20 MiB each), plus a fixed 150 MiB margin.
    bound = rss1 + 4 * single_growth + MARGIN_MIB * MIB
    summary = (f"server RSS: {first_rss / MIB:.0f} MiB after a warm-up user, "
               f"{rss1 / MIB:.0f} MiB after one more user "
               f"(+{(rss1 - rss0) / MIB:.1f} MiB), peak {peak / MIB:.0f} MiB with four users "
               f"(sampled {sampler.peak / MIB:.0f}), bound {bound / MIB:.0f} MiB")
    report(summary)
    report(f"status of each run once all four had started: {seen}")
    assert peak <= bound, summary

    # each user sees only their own run: own data, own length, own settings in the URL
    for page, u in zip(pages, USERS, strict=True):
        assert_no_crash(page)
        text = progress_text(page)
        assert f"iteration {u['iters']:,} of {u['iters']:,}" in text and "finished" in text, text
        assert f"data={u['data']}&" in page.url and f"iters={u['iters']}&" in page.url
        figs = figures(page)
        model = find_figure(figs, "p_θ", "data")
        # the density's own iteration: the last evaluation, at the end of the run
        assert model["title"] == f"p_θ at iteration {u['iters']:,} (last evaluation)"
        own = make_dataset(u["data"], n_train=2000, n_test=1000, seed=u["seed"]).train
        drawn = np.column_stack([trace(model, "data")["x"], trace(model, "data")["y"]])
        assert drawn.shape == tuple(own.shape)
        assert np.allclose(drawn, own.numpy(), rtol=1e-6, atol=1e-6), u  # float32 on the wire
        nll = trace(find_figure(figs, "test NLL"), "test NLL")
        assert nll["x"][-1] == u["iters"]
        expect(page.get_by_role("combobox", name="data set")).to_have_value(u["data"])

    # and a newcomer starts clean: no run, default settings
    fresh = new_page("/train")
    expect(fresh.get_by_text("Press start")).to_be_visible()
    expect(fresh.get_by_role("combobox", name="data set")).to_have_value("mixture")
    assert fresh.get_by_test_id("stProgress").count() == 0
