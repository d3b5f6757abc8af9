"""dashboard.scheduler: fair turns, slices skipped for replaced jobs and closed sessions, budgets.

Every wait here waits for a state (an event set, a thread queued), never for a time.
"""

from __future__ import annotations

import threading
import time

import pytest

from dashboard import live, scheduler
from dashboard.scheduler import FairTurns, run_slice
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.training import TrainConfig
from ebmcore.energies import ValidationError
from ebmcore.sampling.runner import SampleConfig
from ebmcore.targets.registry import make_target

WAIT_S = 30.0  # generous bound on waiting for a state; a healthy run needs milliseconds


def _until(predicate) -> None:
    """Wait for ``predicate()`` (a state), failing only if it never comes."""
    tick, deadline = threading.Event(), time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, "the state never came"
        tick.wait(0.001)


def _queued(turns: FairTurns, who: str, log: list[str], gate: threading.Event) -> threading.Thread:
    def body() -> None:
        with turns.turn(who):
            log.append(who)
            gate.wait(WAIT_S)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t


def test_a_free_slot_goes_to_the_least_used_waiter_not_the_first():
    turns = FairTurns(slots=1, half_life_s=1e9)  # no forgetting within the test
    for _ in range(3):  # "heavy" has computed before; "light" never
        with turns.turn("heavy"):
            pass
    turns._used["heavy"] = (10.0, turns._used["heavy"][1])
    hold = threading.Event()
    log: list[str] = []
    holder = _queued(turns, "holder", log, hold)
    _until(lambda: log == ["holder"])
    go = threading.Event()
    heavy = _queued(turns, "heavy", log, go)
    _until(lambda: turns.waiting() == ["heavy"])
    light = _queued(turns, "light", log, go)
    _until(lambda: turns.waiting() == ["heavy", "light"])
    hold.set()  # the slot frees: light (less used) goes before heavy (first in line)
    _until(lambda: len(log) >= 2)
    assert log[1] == "light"
    go.set()
    for t in (holder, heavy, light):
        t.join(WAIT_S)
    assert log == ["holder", "light", "heavy"]


def test_turns_are_reentrant_within_a_thread():
    turns = FairTurns(slots=1)
    with turns.turn("a"), turns.turn("a"), turns.turn("b"):  # would deadlock if not
        pass
    assert turns.waiting() == []


def test_a_replaced_or_closed_job_is_not_stepped():
    steps: list[str] = []
    current = {"job": "A"}
    open_sessions = {"s1"}

    def wanted(job: str) -> bool:
        return "s1" in open_sessions and current["job"] == job

    def step(job: str, budget_s: float) -> None:
        steps.append(job)

    assert run_slice("s1", "A", lambda: wanted("A"), step, 0.1, FairTurns())
    current["job"] = "B"  # a new run replaced A
    assert not run_slice("s1", "A", lambda: wanted("A"), step, 0.1, FairTurns())
    assert run_slice("s1", "B", lambda: wanted("B"), step, 0.1, FairTurns())
    open_sessions.clear()  # the tab closed
    assert not run_slice("s1", "B", lambda: wanted("B"), step, 0.1, FairTurns())
    assert steps == ["A", "B"]


def test_a_live_run_advances_in_chunks_and_stops_between_them():
    # 1e5 chains x 2000 steps is a long run; each advance returns after one chunk
    cfg = SampleConfig(chains=100_000, steps=2000, step_size=0.1, report_every=2000)
    r = live.start("k", make_target("gaussian"), cfg)
    live.advance(r, 0.0)
    assert not r.finished and 0 < r.step < cfg.steps  # an event came before the end
    first = r.step
    live.stop(r)
    live.advance(r, 0.0)  # a stopped run is never stepped again
    assert r.finished and r.stopped and r.step == first


def test_a_run_over_the_session_budget_is_refused_in_one_line():
    cfg = SampleConfig(chains=2_000_000, steps=1_000_000)  # 4e13 operations
    r = live.advance(live.start("k", make_target("gaussian"), cfg), 0.1)
    assert r.finished and r.trace is None
    assert r.error.startswith("this request needs about") and "\n" not in r.error
    assert "lower chains, steps" in r.error


def test_trainings_are_priced_for_the_session_and_per_iteration():
    scheduler.price_training(TrainConfig(method="persistent"), ModelConfig())  # the default
    with pytest.raises(ValidationError, match=r"over the budget of 2\.0e12"):
        scheduler.price_training(TrainConfig(method="short-run", steps=10_000, iters=10),
                                 ModelConfig(width=1024, depth=8))
    with pytest.raises(ValidationError, match=r"^one training iteration: .*lower Langevin"):
        scheduler.price_training(TrainConfig(method="short-run", steps=20, iters=2),
                                 ModelConfig(width=1024, depth=8))


def test_a_heavier_session_waits_while_a_lighter_one_runs_its_page():
    turns = FairTurns(slots=1, half_life_s=1e9, max_defer_s=1e9)  # no timing in the test
    turns._used["heavy"] = (10.0, time.perf_counter())
    log: list[str] = []
    done = threading.Event()
    with turns.foreground("light"):
        heavy = _queued(turns, "heavy", log, done)
        _until(lambda: turns.waiting() == ["heavy"])  # deferred although the slot is free
        with turns.turn("light"):  # the light page computes meanwhile
            log.append("light")
    _until(lambda: log == ["light", "heavy"])  # the page run ended: heavy goes on
    done.set()
    heavy.join(WAIT_S)


def test_work_outside_turns_steps_aside_while_a_lighter_session_runs_its_page():
    turns = FairTurns(slots=1, half_life_s=1e9, max_defer_s=1e9)  # no timing in the test
    turns.charge("heavy", 10.0)
    assert turns.usage("heavy") == pytest.approx(10.0)
    assert turns.step_aside("heavy") < WAIT_S  # nobody lighter runs a page: no wait
    stepped = threading.Event()
    page = threading.Event()

    def worker() -> None:
        turns.step_aside("heavy")
        stepped.set()

    with turns.foreground("light"):
        t = threading.Thread(target=worker, daemon=True)
        t.start()
        page.set()
        # the worker waits as long as the light page runs (it polls; no timing asserted:
        # the page below only ends once we saw it still waiting after a full poll period)
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            assert not stepped.is_set(), "the worker went on while a lighter page ran"
            stepped.wait(0.01)
    _until(stepped.is_set)  # the page run ended: the worker goes on
    t.join(WAIT_S)


def test_work_outside_turns_does_not_wait_for_its_own_or_heavier_pages():
    turns = FairTurns(slots=1, half_life_s=1e9, max_defer_s=1e9)
    turns.charge("light", 1.0)
    turns.charge("heavy", 10.0)
    done = threading.Event()

    def worker() -> None:
        turns.step_aside("light")  # its own page and a heavier one run: no reason to wait
        done.set()

    with turns.foreground("light"), turns.foreground("heavy"):
        threading.Thread(target=worker, daemon=True).start()
        _until(done.is_set)


def test_short_runs_get_two_kernel_threads_only_on_an_idle_server(monkeypatch):
    monkeypatch.setattr(scheduler.os, "cpu_count", lambda: 2)
    turns = FairTurns(slots=1)
    # 500 chains x 60,000 steps is BURST_WORK exactly; HMC's leapfrog steps count too
    small = SampleConfig(chains=500, steps=int(scheduler.BURST_WORK) // 500)
    large = SampleConfig(sampler="hmc", chains=500, steps=small.steps // 10 + 1)
    assert scheduler.kernel_threads("a", small, turns) == 2
    assert scheduler.kernel_threads("a", large, turns) == 1  # a long run: one core stays free
    with turns.foreground("a"):  # its own page run does not count as another session
        assert scheduler.kernel_threads("a", small, turns) == 2
    with turns.foreground("b"):  # another session drawing its page
        assert scheduler.kernel_threads("a", small, turns) == 1
    gate = threading.Event()
    t = _queued(turns, "b", [], gate)  # another session computing
    _until(lambda: turns._busy == 1)
    assert scheduler.kernel_threads("a", small, turns) == 1
    gate.set()
    t.join(WAIT_S)
    turns.charge("b", 1.0)  # "b" computed a second (a training worker's iterations, say):
    assert scheduler.kernel_threads("a", small, turns) == 1  # busy until that is forgotten
    later = time.perf_counter() + 20 * turns.half_life_s
    assert turns.alone("a", now=later)
    monkeypatch.setattr(scheduler.os, "cpu_count", lambda: 1)
    assert scheduler.kernel_threads("a", small, FairTurns(slots=1)) == 1  # one core: one thread


def test_a_live_run_takes_its_kernel_threads_at_start(monkeypatch):
    seen = []
    monkeypatch.setattr(scheduler, "kernel_threads",
                        lambda who, cfg: seen.append(cfg.chains * cfg.steps * cfg.grads_per_step)
                        or 2)
    cfg = SampleConfig(sampler="hmc", chains=600, steps=50, n_leapfrog=4)
    r = live.start("k", make_target("banana"), cfg)
    live.advance(r, 10.0)
    assert seen == [600 * 50 * 4]
    assert r.finished and r.trace.config.threads == 2 and r.key == "k"
