"""Step logic of the training page as plain functions: start, advance, pause, resume, stop.

A :class:`TrainSession` holds an ebmcore trainer (MLE ``Trainer`` or, where it
exists, ``AdversarialTrainer``) and what the page draws: the last event and the
per-iteration losses.  Trainers pause exactly between iterations when their
``run`` generator is broken off, so advancing by a time budget per tick is the
same run as an uninterrupted one.

:func:`advance` trains in the caller's thread.  The live page uses :func:`pump`
instead: a worker thread trains while the page draws, so drawing never holds training
up; it stops between two iterations when the session is no longer running or when no
page has pumped it for :data:`LEASE_S`, or once its browser session closed; between two
iterations it steps aside while a lighter session runs its page (fair sharing, see
:mod:`dashboard.scheduler`), and its compute counts as its session's.  Both take
the session's lock per iteration, so they never step the trainer at once, and
:func:`snapshot` copies what a drawing reads under the same lock.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from dashboard import scheduler
from ebmcore.ebm.adversarial import AdversarialConfig, AdversarialTrainer
from ebmcore.ebm.data import Dataset
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.training import METHODS, TrainConfig, Trainer

__all__ = [
    "ADVERSARIAL",
    "ALL_METHODS",
    "DEFAULT_FLOW",
    "FLOWS",
    "LEASE_S",
    "MAX_FRAMES",
    "Frame",
    "Snapshot",
    "TrainSession",
    "advance",
    "checkpoint_bytes",
    "load_checkpoint_bytes",
    "make_trainer",
    "metrics_rows",
    "pump",
    "set_status",
    "snapshot",
    "start",
]

LEASE_S = 10.0  # the worker trains on this long after the last pump, then waits for one
# The worker's many small torch ops each give the GIL up and take it back; at Python's
# default 5 ms switch interval the page's drawing holds it for whole slices meanwhile
# (measured: training at 59-75% of its foreground speed while drawing, 91% at 0.5 ms).
SWITCH_INTERVAL_S = 0.0005

MAX_FRAMES = 20  # evaluation snapshots a session keeps (evenly thinned, the last one kept)

ADVERSARIAL = "adversarial"
ALL_METHODS = (*METHODS, ADVERSARIAL)
FLOWS = ("langevin", "hmc")  # the adversarial sampler's dynamics
DEFAULT_FLOW = AdversarialConfig().flow  # the library's default, not repeated here


@dataclass(frozen=True)
class Frame:
    """What the model looked like at one evaluation: the scrubber's frames."""

    iteration: int  # the evaluation's iteration
    density: Any  # the model's GridDensity then
    negatives: Any  # the negatives of that iteration (a copy), or None


@dataclass
class TrainSession:
    """A training run as the page keeps it."""

    key: tuple  # the settings it was started with
    trainer: Any  # Trainer or AdversarialTrainer
    status: str = "paused"  # running, paused, finished, stopped
    last: Any = None  # last TrainEvent
    losses: list = field(default_factory=list)  # (iteration, loss) per iteration
    error: str | None = None  # message if a step raised
    compute_s: float = 0.0  # seconds spent training (this session)
    iters_done: int = 0  # iterations run in this session (for the rate)
    # held while training: two script runs of one session must not step the trainer at once
    busy: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    pumped: float = 0.0  # perf_counter of the last pump (the worker's lease)
    worker: threading.Thread | None = field(default=None, repr=False, compare=False)
    view: Any = None  # the Snapshot published after the last iteration
    waiting: int = 0  # threads waiting for `busy`: the worker lets them in (locks are unfair)
    frames: list = field(default_factory=list)  # a Frame per evaluation (at most MAX_FRAMES)
    framed: int = 0  # evaluation rows already turned into frames
    owner: Any = "-"  # the browser session the worker trains for (its fair-share account)

    @property
    def rate(self) -> float:
        """Iterations per second so far."""
        return self.iters_done / self.compute_s if self.compute_s > 0 else 0.0

    @property
    def adversarial(self) -> bool:
        return isinstance(self.trainer, AdversarialTrainer)


def make_trainer(dataset: Dataset, method: str, model: ModelConfig, *, eps: float | None,
                 steps: int | None, noise: bool, lr: float | None, iters: int | None,
                 seed: int, flow: str = DEFAULT_FLOW, flow_steps: int | None = None) -> Any:
    """A fresh trainer; ValidationError on bad settings or over the dashboard's budget."""
    if method == ADVERSARIAL:
        cfg = AdversarialConfig(flow=flow, flow_steps=flow_steps, flow_step_size=eps, lr=lr,
                                iters=iters, seed=seed)
        scheduler.price_training(cfg, model)  # reliability: the session's budget
        return AdversarialTrainer(dataset, cfg, model)
    cfg = TrainConfig(method=method, iters=iters, lr=lr, step_size=eps,
                      steps=None if method == "exact" else steps,
                      noise=None if noise else 0.0, seed=seed)
    scheduler.price_training(cfg, model)  # reliability: the session's budget
    return Trainer(dataset, cfg, model)


def start(key: tuple, trainer: Any) -> TrainSession:
    """A session around ``trainer``, running."""
    return TrainSession(key, trainer, status="running")


def advance(s: TrainSession, budget_s: float) -> TrainSession:
    """Train until ``budget_s`` seconds are spent (at least one iteration) or the run ends."""
    if s.status != "running" or not s.busy.acquire(blocking=False):
        return s
    t0 = time.perf_counter()
    try:
        for ev in s.trainer.run():
            _record(s, ev)
            if ev.finished or time.perf_counter() - t0 >= budget_s:
                break
    except Exception as exc:  # never take the page down
        _failed(s, exc)
    finally:
        s.compute_s += time.perf_counter() - t0
        s.busy.release()
    if s.status == "running" and s.trainer.finished:
        s.status = "finished"
    return s


def _failed(s: TrainSession, exc: Exception) -> None:
    """Stop ``s`` with a message for the page; the traceback goes to the server's log."""
    logging.getLogger("langevin_lab").exception("training stopped with an error")
    s.error = f"training stopped with an error: {exc}"
    s.status = "stopped"


def _record(s: TrainSession, ev: Any) -> None:
    s.last = ev
    s.losses.append((ev.iteration, ev.loss))
    s.iters_done += 1
    _keep_frame(s, ev)
    s.view = _copy(s)  # published between two iterations: drawing never waits for the lock


def _keep_frame(s: TrainSession, ev: Any) -> None:
    """A Frame for each new evaluation row; past MAX_FRAMES every other one goes (the
    first and the last stay), so the frames keep spanning the whole run."""
    tr = s.trainer
    if len(tr.history) <= s.framed or tr.last_metrics is None:
        return
    s.framed = len(tr.history)
    frames = [*s.frames, Frame(int(tr.history[-1]["iteration"]), tr.last_metrics.density,
                               ev.negatives)]
    s.frames = [*frames[:-1:2], frames[-1]] if len(frames) > MAX_FRAMES else frames


def _work(s: TrainSession) -> None:
    """The worker: one iteration at a time, under the lock, while running and leased, and
    while its browser session is open (a closed tab stops it within one iteration)."""
    scheduler.pin_threads()  # the same kernels (and bits) as a run in the foreground
    while (s.status == "running" and time.perf_counter() - s.pumped < LEASE_S
           and scheduler.session_open(s.owner)):
        scheduler.TURNS.step_aside(s.owner)  # a lighter session's page goes first
        with s.busy:
            if s.status != "running" or s.trainer.finished:
                break
            t0 = time.perf_counter()
            try:
                ev = s.trainer.step()
            except Exception as exc:  # never take the page down
                _failed(s, exc)
                break
            finally:
                dt = time.perf_counter() - t0
                s.compute_s += dt
                scheduler.TURNS.charge(s.owner, dt)
            _record(s, ev)
        while s.waiting and s.status == "running":  # let a checkpoint in between iterations
            time.sleep(0.001)
    if s.status == "running" and s.trainer.finished:
        s.status = "finished"


def set_status(s: TrainSession, status: str) -> TrainSession:
    """Pause, resume or stop ``s`` between two iterations: the worker's step in flight ends
    first, so the iteration shown when the button is answered is the one that stays."""
    with _turn(s):
        s.status = status
    return s


def pump(s: TrainSession, budget_s: float) -> TrainSession:
    """Keep a worker training ``s`` and wait up to ``budget_s`` (less if the run stops)."""
    if s.status != "running":
        return s
    s.pumped = time.perf_counter()
    s.owner = scheduler.owner()
    if s.worker is None or not s.worker.is_alive():
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        s.worker = threading.Thread(target=_work, args=(s,), daemon=True,
                                    name="langevin-lab-training")
        s.worker.start()
    s.worker.join(budget_s)
    return s


@dataclass(frozen=True)
class Snapshot:
    """What the live page draws, copied between two iterations."""

    iteration: int  # iterations done
    last: Any  # the last TrainEvent (its negatives are already a copy)
    rows: Any  # exact-metric rows so far (their count, in a published copy)
    losses: Any  # (iteration, loss) per iteration (their count, in a published copy)
    density: Any  # the last evaluation's density grid, or None
    buffer: Any  # a copy of the replay buffer, or None
    buffer_age: Any  # a copy of its entries' ages (Langevin runs since noise), or None
    rate: float  # iterations per second of training


def _copy(s: TrainSession) -> Snapshot:
    tr = s.trainer
    sampler = getattr(tr, "sampler", None)
    buffer, age = getattr(sampler, "buffer", None), getattr(sampler, "age", None)
    # history and losses only ever grow: the reader slices them to this moment (cheap)
    return Snapshot(tr.iteration, s.last, len(tr.history), len(s.losses),
                    tr.last_metrics.density if tr.last_metrics is not None else None,
                    None if buffer is None else buffer.clone(),
                    None if age is None else age.clone(), s.rate)


def snapshot(s: TrainSession) -> Snapshot:
    """What the page draws: the copy published after the last iteration (or one taken now)."""
    view = s.view
    if view is None or view.iteration != s.trainer.iteration:
        with _turn(s):
            view = _copy(s)
    return replace(view, rows=s.trainer.history[:view.rows], losses=s.losses[:view.losses])


class _turn:
    """``with _turn(s):`` holds ``s.busy``, the worker stepping aside between iterations."""

    def __init__(self, s: TrainSession) -> None:
        self.s = s

    def __enter__(self) -> None:
        self.s.waiting += 1
        self.s.busy.acquire()

    def __exit__(self, *exc: object) -> None:
        self.s.busy.release()
        self.s.waiting -= 1


def metrics_rows(s: TrainSession) -> list[dict]:
    """The exact-metric rows so far (one per evaluation)."""
    return list(s.trainer.history)


def checkpoint_bytes(s: TrainSession) -> bytes:
    """The trainer's resumable checkpoint as bytes (taken between two iterations)."""
    fd, path = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    try:
        with _turn(s):
            s.trainer.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def load_checkpoint_bytes(data: bytes) -> Any:
    """A paused trainer resumed from checkpoint bytes; CheckpointError/ValidationError if bad."""
    # reliability: read from memory, so that no message names a server path
    from ebmcore.ebm.checkpoint import load_checkpoint

    ck = load_checkpoint(data, name="the uploaded file")
    return (AdversarialTrainer if ck.method == ADVERSARIAL else Trainer).resume(ck)
