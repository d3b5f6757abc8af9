"""Step logic of live runs, as plain functions (AppTest does not tick fragments).

A :class:`LiveRun` wraps the event generator of :func:`ebmcore.sampling.runner.run` (or
any iterator of events with ``.trace`` / ``.step`` / ``.total``).  The page
advances it by a time budget per tick (:func:`advance`), draws the latest
trace, and stops it on request (:func:`stop`).  A run that raises keeps the
trace it had and records the message; nothing propagates to the page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dashboard import scheduler
from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import GridDensity
from ebmcore.sampling.adapt import Adapting, auto_events
from ebmcore.sampling.runner import SampleConfig, Trace, run

__all__ = ["LiveRun", "SweepRun", "advance", "advance_all", "advance_sweep", "start", "start_auto",
           "stop", "stop_sweep"]


@dataclass
class LiveRun:
    """A run in progress (or done), as kept in session state."""

    key: Hashable  # what it was started with: a new key means a new run
    events: Iterator[Any] | None  # the generator; None once finished or stopped
    trace: Trace | None = None  # latest recorded trace
    step: int = 0  # steps done
    total: int = 0  # steps requested
    error: str | None = None  # message if the run raised
    stopped: bool = False  # the user pressed stop
    started: float = 0.0  # perf_counter at start
    compute_s: float = 0.0  # seconds spent computing
    memo: dict = field(default_factory=dict)  # page-level results derived from the final trace
    adapting: bool = False  # an automatic eps is still being chosen (no trace yet)
    step_size: float | None = None  # the automatic eps, once chosen
    explanation: str | None = None  # how it was chosen
    # held while advancing: two script runs of one session (a reconnect starts a new run while
    # the old one still computes) must not step the same generator at once
    busy: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """No more events will come (done, stopped, diverged entirely, or failed)."""
        return self.events is None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0

    @property
    def rate(self) -> float:
        """Steps per second of compute so far."""
        return self.step / self.compute_s if self.compute_s > 0 else 0.0


def start(key: Hashable, target: Target, config: SampleConfig, x0: Any = None) -> LiveRun:
    """A new run of ``config`` on ``target`` (nothing computed yet; a request over the
    dashboard's budget ends at the first advance with its one-line refusal as the error)."""
    threads = scheduler.kernel_threads(scheduler.owner(), config)  # short, on an idle server
    return LiveRun(key, run(target, replace(config, threads=threads), x0,
                            budget=scheduler.SESSION_BUDGET),
                   total=config.steps, started=time.perf_counter())


def start_auto(key: Hashable, target: Target, config: SampleConfig, gd: GridDensity) -> LiveRun:
    """A new run whose eps is chosen as it goes (:func:`ebmcore.sampling.adapt.auto_events`):
    MALA and HMC adapt during the burn-in in the run's own slices, so the page stays live and
    the stop button works while eps is tuned."""
    return LiveRun(key, auto_events(target, config, gd, budget=scheduler.SESSION_BUDGET),
                   total=config.steps, started=time.perf_counter(), adapting=True)


def advance(r: LiveRun, budget_s: float) -> LiveRun:
    """Pull events until ``budget_s`` seconds are spent (at least one), or the end, in a fair
    turn of the session (:mod:`dashboard.scheduler`)."""
    if r.events is None or r.busy.locked():  # another run of the session is computing it
        return r
    with scheduler.TURNS.turn(scheduler.owner()):
        return _advance(r, budget_s)


def _advance(r: LiveRun, budget_s: float) -> LiveRun:
    if r.events is None or not r.busy.acquire(blocking=False):
        return r
    t0 = time.perf_counter()
    try:
        while r.events is not None:
            ev = next(r.events, None)
            if ev is None:
                r.events = None
                break
            if isinstance(ev, Adapting):
                r.step, r.total = ev.step, ev.total
                if ev.done:
                    r.adapting, r.step_size, r.explanation = False, ev.step_size, ev.explanation
            else:
                r.trace, r.step, r.total = ev.trace, ev.step, ev.total
            if getattr(ev, "finished", False):
                r.events = None
                break
            if time.perf_counter() - t0 >= budget_s:
                break
    except ValidationError as exc:  # refused (over the budget, bad settings): its one line
        r.error = str(exc)
        r.events = None
    except Exception as exc:  # a run must never take the page down: report and keep the trace
        r.error = f"the run stopped with an error: {exc}"
        r.events = None
    finally:
        r.compute_s += time.perf_counter() - t0
        r.busy.release()
    return r


def advance_all(runs: Sequence[LiveRun], budget_s: float) -> Sequence[LiveRun]:
    """Advance several runs in lockstep: each gets one event per round until the budget."""
    t0 = time.perf_counter()
    while any(not r.finished for r in runs):
        for r in runs:
            advance(r, 0.0)
        if time.perf_counter() - t0 >= budget_s:
            break
    return runs


def stop(r: LiveRun) -> LiveRun:
    """Stop a run; its last trace stays."""
    with r.busy:  # waits for a slice another run of the session is computing
        if r.events is not None:
            close = getattr(r.events, "close", None)
            if close is not None:
                close()
            r.events = None
            r.stopped = True
    return r


@dataclass
class SweepRun:
    """An eps sweep (:func:`ebmcore.exact.sweep.sweep`) in progress or done."""

    key: Hashable  # what it was started with
    config: Any  # the SweepConfig
    events: Iterator[Any] | None  # the generator; None when done or stopped
    points: list = field(default_factory=list)  # SweepPoints so far
    error: str | None = None  # message if the sweep raised
    busy: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def total(self) -> int:
        return len(self.config.eps) * len(self.config.samplers)


def advance_sweep(sw: SweepRun, budget_s: float) -> SweepRun:
    """Compute sweep points until ``budget_s`` is spent (at least one), or the end, in a
    fair turn of the session."""
    if sw.busy.locked():  # another run of the session is computing it
        return sw
    with scheduler.TURNS.turn(scheduler.owner()):
        return _advance_sweep(sw, budget_s)


def _advance_sweep(sw: SweepRun, budget_s: float) -> SweepRun:
    if not sw.busy.acquire(blocking=False):  # another run of the session is computing it
        return sw
    t0 = time.perf_counter()
    try:
        while sw.events is not None:
            try:
                sw.points.append(next(sw.events))
            except StopIteration:
                sw.events = None
            except Exception as exc:  # never take the page down
                sw.error, sw.events = f"the sweep stopped: {exc}", None
            if time.perf_counter() - t0 >= budget_s:
                break
    finally:
        sw.busy.release()
    return sw


def stop_sweep(sw: SweepRun) -> SweepRun:
    """Stop a sweep; the points computed so far stay."""
    with sw.busy:
        sw.events = None
    return sw
