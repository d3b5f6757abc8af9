"""The training page's background worker: the same run as in the foreground, stops on its own."""

from __future__ import annotations

import time

import pytest
import torch

from dashboard import scheduler, train_live
from ebmcore.ebm.data import make_dataset
from ebmcore.ebm.models import ModelConfig


@pytest.fixture(scope="module")
def data():
    return make_dataset("mixture", 500, 200, seed=0)


def _session(data, iters: int, method: str = "replay") -> train_live.TrainSession:
    tr = train_live.make_trainer(data, method, ModelConfig(width=16), eps=0.01, steps=3,
                                 noise=True, lr=1e-3, iters=iters, seed=0)
    return train_live.start(("k", method, iters), tr)


@pytest.mark.parametrize("method", ["short-run", "persistent", "replay", "exact",
                                    "adversarial"])
def test_pumped_run_is_the_foreground_run(data, method):
    # pumped: a worker process trains a copy and hands its final state back
    fg = _session(data, 40, method)
    train_live.advance(fg, 600.0)
    bg = _session(data, 40, method)
    snaps = []
    while bg.status == "running":
        train_live.pump(bg, 0.01)
        snaps.append(train_live.snapshot(bg))  # drawing while the worker trains
    assert bg.status == "finished" and fg.status == "finished"
    assert [x for _, x in bg.losses] == [x for _, x in fg.losses]  # bit for bit
    for a, b in zip(fg.trainer.model.parameters(), bg.trainer.model.parameters(),
                    strict=True):
        assert torch.equal(a, b)  # the worker's final state is back in this process
    def untimed(rows):
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]

    assert untimed(bg.trainer.history) == untimed(fg.trainer.history)
    assert torch.equal(bg.trainer.generator.get_state(), fg.trainer.generator.get_state())
    for snap in snaps:  # each copy is one moment: its numbers agree with each other
        assert len(snap.losses) == snap.iteration
        assert snap.last is None or snap.last.iteration == snap.iteration


def test_worker_stops_when_paused_and_when_no_page_pumps(data):
    # persistent chains: these settings train 20000 iterations without diverging (replay
    # diverges at iteration 6250, which a fast machine reaches within the lease)
    s = _session(data, 1_000_000, "persistent")
    train_live.pump(s, 0.0)
    s.status = "paused"
    s.worker.join(60)  # a paused run stops between two iterations
    assert not s.worker.is_alive()
    done = s.trainer.iteration
    train_live.pump(s, 0.0)  # paused: pumping does not train
    assert s.trainer.iteration == done
    s.status = "running"
    train_live.pump(s, 0.0)
    s.worker.join(60 + train_live.LEASE_S)  # no more pumps: the lease runs out
    assert not s.worker.is_alive() and s.status == "running"
    assert done < s.trainer.iteration < 1_000_000


def test_checkpoint_while_the_worker_trains(data):
    s = _session(data, 1_000_000, "persistent")
    train_live.pump(s, 0.05)
    back = train_live.load_checkpoint_bytes(train_live.checkpoint_bytes(s))
    s.status = "stopped"
    s.worker.join(60)
    assert 0 < back.iteration <= s.trainer.iteration


def test_frames_one_per_evaluation_thinned_to_span_the_run(data):
    # the scrubber's frames: one per evaluation, each the model's density at that
    # evaluation (its exact log Z is the row's), thinned past MAX_FRAMES keeping both ends
    from ebmcore.ebm.training import TrainConfig, Trainer

    evals = 2 * train_live.MAX_FRAMES + 5
    tr = Trainer(data, TrainConfig(method="persistent", iters=2 * evals, eval_every=2,
                                   steps=2, seed=0), ModelConfig(width=16))
    s = train_live.start(("k",), tr)
    train_live.advance(s, 600.0)
    rows = tr.history
    assert s.status == "finished" and len(rows) >= evals
    its = [f.iteration for f in s.frames]
    assert 2 <= len(its) <= train_live.MAX_FRAMES and its == sorted(set(its))
    assert its[0] == rows[0]["iteration"] and its[-1] == rows[-1]["iteration"]
    by_it = {r["iteration"]: r for r in rows}
    for f in s.frames:
        assert f.density.log_z == pytest.approx(by_it[f.iteration]["log_z"], rel=1e-6)
        assert f.negatives is not None and f.negatives.shape[1] == 2



def _until(predicate, wait_s: float = 60.0) -> None:
    """Wait for ``predicate()`` (a state), failing only if it never comes."""
    deadline = time.monotonic() + wait_s
    while not predicate():
        assert time.monotonic() < deadline, "the state never came"
        time.sleep(0.001)


def test_the_worker_charges_its_session_and_steps_aside_for_a_lighter_page(data, monkeypatch):
    turns = scheduler.FairTurns(slots=1, half_life_s=1e9, max_defer_s=1e9)  # no timing
    monkeypatch.setattr(scheduler, "TURNS", turns)
    s = _session(data, 1_000_000, "persistent")
    train_live.pump(s, 0.0)  # outside a server the owner is "-"
    s.pumped = 1e18  # the lease never runs out within the test
    _until(lambda: turns.usage(s.owner) > 0)  # its compute counts as its session's
    with turns.foreground("light"):  # lighter: it never computed
        # the iteration in flight ends, then the worker stays aside while the page runs
        # (a window to observe that nothing moves, not a wait for a state)
        s.worker.join(0.5)
        held = s.trainer.iteration
        for _ in range(20):
            s.worker.join(0.01)
            assert s.trainer.iteration == held
    _until(lambda: s.trainer.iteration > held)  # the page ended: training goes on
    s.status = "stopped"
    s.worker.join(60)


def test_the_worker_stops_once_its_browser_session_closed(data, monkeypatch):
    s = _session(data, 1_000_000, "persistent")
    closed = set()
    monkeypatch.setattr(scheduler, "session_open", lambda sid: sid not in closed)
    train_live.pump(s, 0.0)
    _until(lambda: s.trainer.iteration > 0)
    closed.add(s.owner)  # the tab closed: no pause, no lease end
    s.worker.join(60)
    assert not s.worker.is_alive() and s.status == "running"  # resumable if it comes back
    assert s.trainer.iteration < 1_000_000
