"""Step logic of the training page as plain functions: start, advance, pause, resume, stop.

A :class:`TrainSession` holds an ebmcore trainer (MLE ``Trainer`` or, where it
exists, ``AdversarialTrainer``) and what the page draws: the last event and the
per-iteration losses.  Trainers pause exactly between iterations when their
``run`` generator is broken off, so advancing by a time budget per tick is the
same run as an uninterrupted one.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
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
    "TrainSession",
    "advance",
    "checkpoint_bytes",
    "load_checkpoint_bytes",
    "make_trainer",
    "metrics_rows",
    "start",
]

ADVERSARIAL = "adversarial"
ALL_METHODS = (*METHODS, ADVERSARIAL)
FLOWS = ("langevin", "hmc")  # the adversarial sampler's dynamics
DEFAULT_FLOW = AdversarialConfig().flow  # the library's default, not repeated here


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
            s.last = ev
            s.losses.append((ev.iteration, ev.loss))
            s.iters_done += 1
            if ev.finished or time.perf_counter() - t0 >= budget_s:
                break
    except Exception as exc:  # never take the page down
        s.error = f"training stopped with an error: {exc}"
        s.status = "stopped"
    finally:
        s.compute_s += time.perf_counter() - t0
        s.busy.release()
    if s.status == "running" and s.trainer.finished:
        s.status = "finished"
    return s


def metrics_rows(s: TrainSession) -> list[dict]:
    """The exact-metric rows so far (one per evaluation)."""
    return list(s.trainer.history)


def checkpoint_bytes(s: TrainSession) -> bytes:
    """The trainer's resumable checkpoint as bytes."""
    fd, path = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    try:
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
