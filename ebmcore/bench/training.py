"""The ``training`` rows of ``python -m ebmcore bench``: training iterations per second.

Registered with :func:`ebmcore.bench.core.register_bench` on import; list this module
in ``ebmcore.bench.core.BENCH_MODULES`` to have the rows in every bench run.  Each
row times whole training iterations (data batch, negatives, loss, backward,
Adam step) of a :class:`~ebmcore.ebm.training.Trainer` on ``mixture``; exact
metrics are off (``eval_every=0``) so that only iterations are timed, and torch
runs one thread, as ``python -m ebmcore train`` does by default.  ``rate`` is per
second of wall time; ``cpu_rate`` per second of this process's CPU time, the same
iterations seen without the waits for a core that other processes hold.
"""

from __future__ import annotations

import math
import os
import statistics
import time

import torch
from torch import nn

from ebmcore.bench.core import register_bench, time_rate
from ebmcore.budget import Budget
from ebmcore.ebm.data import make_dataset
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.training import TrainConfig, Trainer

__all__ = ["CASES", "training_bench"]

THREADS = 1  # as `train` runs by default (two threads thrash on a shared 2-core machine)
CASES: tuple[tuple[str, dict], ...] = (
    # the reference setup: default MLP, batch 256, 60 SGLD steps from noise
    ("short-run K=60 batch 256 sgld", {"method": "short-run", "steps": 60, "batch_size": 256,
                                       "kernel": "sgld"}),
    ("short-run K=60 batch 256 mala", {"method": "short-run", "steps": 60, "batch_size": 256,
                                       "kernel": "mala"}),
    # the baseline of the two above: the same MALA chains through autograd
    ("short-run K=60 batch 256 mala, autograd chains",
     {"method": "short-run", "steps": 60, "batch_size": 256, "kernel": "mala", "autograd": True}),
    ("persistent (defaults)", {"method": "persistent"}),
    ("replay (defaults)", {"method": "replay"}),
    ("exact (defaults)", {"method": "exact"}),
)


class _ViaAutograd(nn.Module):
    """An MLP behind a wrapper: chains find no closed form and take autograd's input gradient."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@register_bench("training")
def training_bench(quick: bool) -> list[dict]:
    """Iterations/s of each case with the default MLP (a width-16 one when ``quick``)."""
    data = make_dataset("mixture", 2000, 500, seed=0)
    model = ModelConfig(width=16) if quick else ModelConfig()
    seconds, repeats = (0.01, 1) if quick else (1.0, 3)
    prev = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _rows(data, model, seconds, repeats, quick)
    finally:
        torch.set_num_threads(prev)


UNTIMED = Budget(work=float("inf"))  # iterations are counted by time_rate, not by iters


def _rows(data, model: ModelConfig, seconds: float, repeats: int, quick: bool) -> list[dict]:
    rows = []
    for impl, case in CASES:
        kw = {k: v for k, v in case.items() if k != "autograd"}
        cfg = TrainConfig(**{**kw, "iters": 10_000_000, "eval_every": 0})
        if quick:
            cfg = TrainConfig(**{**kw, "iters": 10_000_000, "eval_every": 0, "steps": 3,
                                 "grid": 16, "eval_grid": 32, "batch_size": 32})
        # an open-ended run, timed for a fixed wall time: no budget applies to it
        trainer = Trainer(data, cfg, model, budget=UNTIMED)
        if case.get("autograd"):
            trainer = Trainer(data, cfg, model=_ViaAutograd(trainer.model), budget=UNTIMED)

        calls: list[tuple[int, float]] = []  # (iterations, CPU seconds) of each call

        def run(k: int, trainer: Trainer = trainer, calls: list = calls) -> None:
            t0 = time.process_time()
            for _ in trainer.run(k):
                pass
            calls.append((k, time.process_time() - t0))

        rate, steps, med = time_rate(run, 1, seconds, repeats)
        c = trainer.config
        cpu = statistics.median(t for k, t in calls[-repeats:])
        rows.append({"bench": "training", "impl": impl, "target": "mixture",
                     "chains": c.batch_size, "steps": steps, "seconds": med, "rate": rate,
                     "unit": "iterations/s", "cpu_rate": steps / cpu if cpu > 0 else math.inf,
                     "load1": os.getloadavg()[0],
                     "threads": torch.get_num_threads(),
                     "sgld_steps": c.steps if c.method != "exact" else 0})
    return rows
