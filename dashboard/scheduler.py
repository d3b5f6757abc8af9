"""Fair sharing of the server's cores between sessions, and the dashboard's work budget.

Every slice of live work (a slice of a live view's tick, the first compute of a page run) runs in
a *turn* (:meth:`FairTurns.turn`): at most :data:`SLOTS` turns compute at once, and when
several sessions wait, the one that computed least lately goes first. A heavy session
therefore gets what is left once light ones are served, and a light session waits at most
one slice (about :data:`dashboard.live_view.SLICE_BUDGET_S`) of each busy slot. Work
outside turns (a training worker) steps aside between its iterations while a lighter
session runs its page (:meth:`FairTurns.step_aside`), and is charged to its owner.

:func:`run_slice` also skips the slice when it is no longer wanted: its session was
closed, or its job was replaced by a new run. Work runs in slices bounded in time, so a
closed tab or a replaced run stops within one slice and the CPU goes back to idle.

:data:`SESSION_BUDGET` is the one work budget of a dashboard request, smaller than the
library's; :data:`ITER_WORK` bounds one training iteration, the slice a trainer cannot
break.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from ebmcore.budget import GIB, Budget, Cost, check, training_cost
from ebmcore.energies import ValidationError

__all__ = ["BURST_WORK", "ITER_WORK", "SESSION_BUDGET", "SLOTS", "TURNS", "FairTurns",
           "check_iteration", "kernel_threads", "owner", "pin_threads", "price_training",
           "run_slice", "session_open"]

# A request of one browser session: a large playground run (1e5 chains x 5000 steps is
# 1e10) or the default trainings (about 1e12) fit; the server serves several sessions.
SESSION_BUDGET = Budget(work=2e12, memory=1 * GIB)
# One training iteration runs unbroken: at about 3e9-1e10 operations per second of one
# core for an MLP, this keeps a stop (pause, a closed tab) within about a second.
ITER_WORK = 3e9
# Turns computing at once: torch releases the interpreter lock inside its kernels, so one
# turn per two cores keeps the rest free to draw pages.
SLOTS = max(1, (os.cpu_count() or 2) // 2)
HALF_LIFE_S = 10.0  # how fast a session's past compute is forgiven when ranking waiters
# A heavier session's slice waits while a lighter session runs its page (drawing holds the
# interpreter lock too, so free cores are not enough), but never longer than this at once.
MAX_DEFER_S = 2.0


# A run this small (chain-steps x gradient evaluations; about 0.3 s of both cores here) may
# use two kernel threads when no other session is busy: a slider change on u4's defaults
# (2.5e7) answers sooner, and no long run ever takes the core kept for drawing pages.
BURST_WORK = 3e7
IDLE_USAGE_S = 0.05  # another session's decayed compute seconds below this: it is idle


def kernel_threads(who: Hashable, cfg: Any, turns: FairTurns | None = None) -> int:
    """Kernel threads for a new run of ``cfg`` (a SampleConfig) by ``who``: 2 for a short run
    on an idle server with 2 cores or more, else 1 (the numbers do not depend on it)."""
    turns = TURNS if turns is None else turns
    cores = os.cpu_count() or 1
    work = cfg.chains * cfg.steps * cfg.grads_per_step
    return 2 if cores >= 2 and work <= BURST_WORK and turns.alone(who) else 1


class FairTurns:
    """At most ``slots`` turns at once; a free slot goes to the least-used waiting owner."""

    def __init__(self, slots: int = SLOTS, half_life_s: float = HALF_LIFE_S,
                 max_defer_s: float = MAX_DEFER_S) -> None:
        self.slots, self.half_life_s, self.max_defer_s = slots, half_life_s, max_defer_s
        self._cv = threading.Condition()
        self._busy = 0
        self._waiting: dict[int, Hashable] = {}  # ticket -> owner, tickets in arrival order
        self._used: dict[Hashable, tuple[float, float]] = {}  # owner -> (seconds, as of)
        self._tickets = itertools.count()
        self._local = threading.local()
        self._foreground: dict[Hashable, int] = {}  # owner -> page runs in progress

    def usage(self, who: Hashable, now: float | None = None) -> float:
        """``who``'s compute seconds, decayed with half-life ``half_life_s``."""
        now = time.perf_counter() if now is None else now
        v, t = self._used.get(who, (0.0, now))
        return v * 0.5 ** ((now - t) / self.half_life_s)

    def alone(self, who: Hashable, now: float | None = None) -> bool:
        """No session but ``who`` computes, waits for a turn, runs its page, or computed in
        the last few seconds (a training worker charges each iteration)."""
        now = time.perf_counter() if now is None else now
        with self._cv:
            return (not self._busy and not self._waiting
                    and all(f == who for f in self._foreground)
                    and all(self.usage(o, now) < IDLE_USAGE_S
                            for o in self._used if o != who))

    def waiting(self) -> list[Hashable]:
        """Owners waiting for a turn, in arrival order (for tests and diagnostics)."""
        with self._cv:
            return list(self._waiting.values())

    def _next(self, now: float) -> int:
        return min(self._waiting, key=lambda k: (self.usage(self._waiting[k], now), k))

    def _deferred(self, who: Hashable, now: float) -> bool:
        """A lighter session is running its page: ``who`` should let it draw first."""
        mine = self.usage(who, now)
        return any(f != who and self.usage(f, now) < mine for f in self._foreground)

    @contextmanager
    def foreground(self, who: Hashable) -> Iterator[None]:
        """Mark a page run of ``who`` (not a live tick): heavier sessions' slices wait for it
        (at most MAX_DEFER_S each)."""
        with self._cv:
            self._foreground[who] = self._foreground.get(who, 0) + 1
        try:
            yield
        finally:
            with self._cv:
                self._foreground[who] -= 1
                if not self._foreground[who]:
                    del self._foreground[who]
                self._cv.notify_all()

    def step_aside(self, who: Hashable) -> float:
        """For work outside turns (a training worker between two iterations): wait while a
        lighter session runs its page, at most ``max_defer_s``.

        Returns the seconds waited.
        """
        t0 = time.perf_counter()
        with self._cv:
            while True:
                now = time.perf_counter()
                if now - t0 >= self.max_defer_s or not self._deferred(who, now):
                    return now - t0
                self._cv.wait(timeout=0.05)

    def charge(self, who: Hashable, seconds: float) -> None:
        """Count ``seconds`` of compute done outside turns as ``who``'s usage."""
        with self._cv:
            self._add_usage(who, seconds, time.perf_counter())

    def _add_usage(self, who: Hashable, seconds: float, now: float) -> None:
        """Add ``seconds`` to ``who``'s decayed usage (the caller holds the condition)."""
        self._used[who] = (self.usage(who, now) + seconds, now)
        if len(self._used) > 1000:  # forget owners idle long enough to rank last
            self._used = {k: v for k, v in self._used.items() if self.usage(k, now) > 1e-3}

    @contextmanager
    def turn(self, who: Hashable) -> Iterator[None]:
        """Hold a slot for the body; re-entrant within one thread (a nested turn is free)."""
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._cv:
            ticket = next(self._tickets)
            self._waiting[ticket] = who
            since = time.perf_counter()
            while True:
                now = time.perf_counter()
                if (self._busy < self.slots and self._next(now) == ticket
                        and (now - since >= self.max_defer_s or not self._deferred(who, now))):
                    break
                self._cv.wait(timeout=0.1)
            del self._waiting[ticket]
            self._busy += 1
        self._local.depth = 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._local.depth = 0
            now = time.perf_counter()
            with self._cv:
                self._busy -= 1
                self._add_usage(who, now - t0, now)
                self._cv.notify_all()


TURNS = FairTurns()


def pin_threads() -> None:
    """Give the calling thread the process's torch thread count.

    OpenMP keeps the team size per thread, and a thread torch has not configured (a
    training worker, a fragment's script thread) starts with one thread per core for the
    math libraries' kernels: on a shared machine that oversubscribes the cores, and the
    results differ in the last bits from the same run in a configured thread (measured:
    a worker's losses differed from the foreground's at iteration 10).
    """
    import torch

    torch.set_num_threads(torch.get_num_threads())


def owner() -> Hashable:
    """The current browser session's id (one id for code run outside a session)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx(suppress_warning=True)
    except Exception:  # outside Streamlit there is no session
        return "-"
    return "-" if ctx is None else ctx.session_id


def session_open(sid: Hashable) -> bool:
    """False once the browser session ``sid`` has closed (True outside a Streamlit server)."""
    try:
        from streamlit import runtime

        if not runtime.exists():
            return True
        return bool(runtime.get_instance().is_active_session(sid))
    except Exception:  # no runtime: nothing to close
        return True


def run_slice(who: Hashable, job: Any, wanted: Callable[[], bool],
              step: Callable[[Any, float], Any], budget_s: float,
              turns: FairTurns = TURNS, fair: bool = True) -> bool:
    """``step(job, budget_s)`` in a fair turn of ``who``, unless no longer ``wanted()``
    (checked once the turn comes: waiting may have outlived the session or the job).

    ``fair=False`` steps without a turn: for a step that only waits on work done
    elsewhere (a training worker, which steps aside and charges its compute itself).

    Returns whether it stepped.
    """
    with turns.turn(who) if fair else nullcontext():
        if not wanted():
            return False
        step(job, budget_s)
        return True


def check_iteration(*, points: int, steps: int, params: int, width: int, depth: int,
                    grid: int = 0) -> None:
    """Refuse a training whose single iteration exceeds :data:`ITER_WORK` (it could not
    be paused or stopped promptly); one line naming what to lower."""
    one = training_cost(iters=1, points=points, steps=steps, params=params, width=width,
                        depth=depth, grid=grid)
    try:
        check(Cost(one.work, 0.0, "Langevin steps K, the batch or the model size"),
              Budget(work=ITER_WORK, memory=math.inf))
    except ValidationError as err:
        raise ValidationError(f"one training iteration: {err}") from None


def price_training(config: Any, model: Any) -> None:
    """Refuse a training config (MLE or adversarial) for ``model`` above
    :data:`SESSION_BUDGET`, or whose one iteration is above :data:`ITER_WORK`."""
    c = config.validate(SESSION_BUDGET, model=model)
    size = {"params": model.num_parameters, "width": model.width, "depth": model.depth}
    method = getattr(c, "method", "adversarial")
    if method == "adversarial":
        check_iteration(points=c.batch_size, steps=max(1, c.flow_steps) * (1 + c.phi_steps),
                        **size)
    elif method == "exact":
        check_iteration(points=0, steps=0, grid=c.grid, **size)
    else:
        check_iteration(points=c.chains if method == "persistent" else c.batch_size,
                        steps=c.steps, **size)
