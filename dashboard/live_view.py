"""The one live-fragment loop behind every live view: step slices, redraw, rerun when done.

Each live view (the playground's run, SGLD vs MAP's twin runs, the eps sweep,
training) hands :func:`live_view` what differs: how to find its job in session
state, how to step it for a time slice, when it is done, and how to draw it.
Each slice runs in a fair turn of :mod:`dashboard.scheduler`, and only while the
session is open and the job is still the session's current one.

A tick steps :data:`SHOTS` slices and can capture the job's state after each: its
live charts then play those states back :data:`FRAME_S` apart.  The browser redraws
the whole page at every fragment rerun (measured on the training page: 63 ms a rerun,
half a core at 8 reruns a second, the training beside it at 52-67% of its speed
alone); three states per rerun keep the charts moving as often for a third of the
reruns (training at 76-81% in the same probe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import scheduler

__all__ = ["FRAME_S", "SHOTS", "SLICE_BUDGET_S", "SYNC_BUDGET_S", "TICK_S", "Stop",
           "live_view"]

SYNC_BUDGET_S = 0.6  # compute done in the page run itself before going live
# a live fragment reruns every TICK_S (a tick that computes and draws longer delays the
# next one); it computes SHOTS slices of SLICE_BUDGET_S, half the period, leaving the rest
# to draw, and its charts show a captured state every FRAME_S: at most 1 / FRAME_S updates
# a second, at least 5 while a tick takes under 0.6 s
TICK_S = 0.36
SHOTS = 3
FRAME_S = TICK_S / SHOTS
SLICE_BUDGET_S = 0.06


# Streamlit dims a rerunning script's elements until each is sent again (and greys an
# expander's border); a live fragment reruns three times a second, so its charts and
# numbers faded and came back all the time (sampled every 50 ms on the training page: 15
# elements dimmed and as many transitions running in most samples, the browser repainting
# the charts for each). Inside a live view they stay as drawn.
LIVE_KEY = "live-view"  # the key of each live view's container starts with this
STEADY_CSS = (f"<style>[class*='st-key-{LIVE_KEY}-'] [data-stale='true'] "
              "{opacity: 1 !important;} "
              f"[class*='st-key-{LIVE_KEY}-'] * {{transition: none !important;}}</style>")


def _first_sight(j: Any) -> bool:
    """True the first time a tick of this session sees the finished job ``j``: the page
    reruns once for it (a tick of a lost connection's run must not rerun it again and again)."""
    seen = st.session_state.setdefault("_live_view_finished", [])
    if any(x is j for x in seen):
        return False
    seen[:] = [*seen[-15:], j]  # the last few jobs: a page has at most a couple live at once
    return True


@dataclass(frozen=True)
class Stop:
    """A stop button drawn above a running job."""

    label: str  # button text
    key: str  # widget key
    action: Callable[[Any], None]  # what pressing it does to the job
    primary: bool = True  # drawn as the page's primary button


def live_view(job: Callable[[], Any], *, step: Callable[[Any, float], Any],
              done: Callable[[Any], bool], draw: Callable[..., None],
              capture: Callable[[Any], Any] | None = None, stop: Stop | None = None,
              running: bool = True, fair: bool = True) -> None:
    """Draw ``job()`` in a fragment that steps it every :data:`TICK_S` while it runs.

    Args:
        job: the current job from session state, or None when it was replaced (then the
            fragment draws nothing: the page run that replaced it draws the new one).
        step: ``step(job, budget_s)`` computes for about ``budget_s`` seconds.
        done: true once the job needs no more steps; the whole page then reruns once to
            draw its final state (also when it became done between two ticks).
        draw: draws the job (progress, charts) inside the fragment: ``draw(job)``, or
            with ``capture``, ``draw(job, shots)``.
        capture: ``capture(job)`` copies what the live charts show, after each slice of a
            tick; ``shots``, oldest first, has at least one (taken at drawing time when
            no slice ran), for charts that play them back :data:`FRAME_S` apart.
        stop: an optional stop button shown while the job runs.
        running: tick only while true (a finished job is drawn once, without ticking).
        fair: step in a fair turn; False for a step that only waits on a worker thread
            (which steps aside for lighter sessions and charges its compute itself).
    """

    who = scheduler.owner()
    first = job()
    st.html(STEADY_CSS)  # style only: drawn in no place of the page
    # a job that a worker thread steps may finish between two ticks: the first tick that
    # sees it done still reruns the page (only a view that went live with it unfinished)
    live = running and first is not None and not done(first)

    @st.fragment(run_every=TICK_S if running else None)
    def tick() -> None:
        scheduler.pin_threads()  # a fragment's script thread may be new to torch
        j = job()
        if j is None:
            return
        shots = []
        if not done(j):
            if stop is not None and st.button(stop.label, key=stop.key, icon=":material/stop:",
                                              type="primary" if stop.primary else "secondary"):
                stop.action(j)
            else:
                for _ in range(SHOTS):  # a fair turn each: other sessions go in between
                    if not scheduler.run_slice(
                            who, j, lambda: scheduler.session_open(who) and job() is j, step,
                            SLICE_BUDGET_S, fair=fair):
                        break
                    if capture is not None:
                        shots.append(capture(j))
                    if done(j):
                        break
        if live and done(j) and _first_sight(j):
            st.rerun(scope="app")
        if capture is None:
            draw(j)
        else:
            draw(j, shots or [capture(j)])

    with st.container(key=f"{LIVE_KEY}-{draw.__module__}-{draw.__qualname__}"):
        tick()
