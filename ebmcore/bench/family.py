"""Bench rows for the wider Langevin family beside SGLD: ``python -m ebmcore bench --only family``.

Two kinds of rows, each with ``vs_sgld``, its rate over the SGLD row of the same kind,
target and size in the same run:

- ``family loop``: the inner loops alone (fused in-place SGLD and BAOAB, the pure
  ``underdamped_step`` and ``annealed_step`` kernels), in chain-steps/s;
- ``family run``: what users run end to end, :func:`ebmcore.sampling.runner.sample`
  (recording, divergence checks, and for ``annealed`` building its smoothed targets: the
  rows time a first run, though reruns on the same ladder reuse it).
"""

from __future__ import annotations

import math
import time

import torch

from ebmcore.bench.core import _row, register_bench, time_rate
from ebmcore.sampling.annealed import _LADDERS, annealed_init, annealed_step, annealing
from ebmcore.sampling.fast import inplace_grad, sgld_loop
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.sampling.underdamped import underdamped_init, underdamped_loop, underdamped_step
from ebmcore.targets.registry import make_target

__all__ = ["family_bench"]

TARGETS = {"gaussian": 0.3, "mixture": 0.01}  # name -> a stable step size
FULL = {"sizes": (1_000, 10_000), "seconds": 0.3, "repeats": 3, "run_steps": 200}
QUICK = {"sizes": (200,), "seconds": 0.005, "repeats": 2, "run_steps": 20}


def _loop_rows(name: str, eps: float, n: int, cfg: dict) -> list[dict]:
    t = make_target(name)
    gen = torch.Generator().manual_seed(1)
    x0 = t.sample(n, torch.Generator().manual_seed(0)).to(torch.float32)
    fast = inplace_grad(t)
    x, noise, g = x0.clone(), torch.empty_like(x0), torch.empty_like(x0)
    kin = underdamped_init(t.energy, x0.clone(), gen, grad=t.grad)
    xv, vv, gv = kin.x.clone(), kin.v.clone(), kin.grad.clone()
    sched = annealing(t, 2, 0.5, 1 << 30)  # stays on its smoothed level while timed

    def sgld(k: int) -> None:
        sgld_loop(x, fast, k, eps, 1.0, gen, noise, grad_buf=g)

    def baoab(k: int) -> None:
        underdamped_loop(xv, vv, gv, fast, k, eps, 1.0, 1.0, gen, noise_buf=noise)

    def kinetic(k: int) -> None:
        st = kin
        for _ in range(k):
            st, _ = underdamped_step(t.energy, st, gen, step_size=eps, grad=t.grad)

    def annealed(k: int) -> None:
        st = annealed_init(t.energy, x0, sched, t.grad)
        for _ in range(k):
            st, _ = annealed_step(t.energy, st, gen, step_size=eps, schedule=sched,
                                  grad=t.grad)

    cases = [("sgld fast (in place)", sgld), ("underdamped fast (in place)", baoab),
             ("underdamped_step", kinetic), ("annealed_step (smoothed level)", annealed)]
    return [_row("family loop", impl, name, n, *time_rate(run, n, cfg["seconds"],
                                                          cfg["repeats"]))
            for impl, run in cases]


def _run_rows(name: str, eps: float, n: int, cfg: dict) -> list[dict]:
    t, steps = make_target(name), cfg["run_steps"]
    rows = []
    for sampler in ("sgld", "underdamped", "annealed"):
        sc = SampleConfig(sampler=sampler, step_size=eps, steps=steps, chains=n, seed=0,
                          keep_paths=0, max_points=max(1000, 20 * n))
        sample(t, SampleConfig(sampler=sampler, step_size=eps, steps=5, chains=8))  # warm-up
        _LADDERS.clear()  # time a first run: annealed builds its smoothed ladder inside
        t0 = time.perf_counter()
        sample(t, sc)
        sec = time.perf_counter() - t0
        rows.append(_row("family run", sampler, name, n, n * steps / sec, steps, sec))
    return rows


@register_bench("family")
def family_bench(quick: bool) -> list[dict]:
    """Chain-steps/s of underdamped and annealed Langevin beside SGLD (float32)."""
    cfg = QUICK if quick else FULL
    rows: list[dict] = []
    for name, eps in TARGETS.items():
        for n in cfg["sizes"]:
            rows += _loop_rows(name, eps, n, cfg) + _run_rows(name, eps, n, cfg)
    base = {(r["bench"], r["target"], r["chains"]): r["rate"] for r in rows
            if r["impl"] in ("sgld", "sgld fast (in place)")}
    for r in rows:
        b = base.get((r["bench"], r["target"], r["chains"]))
        r["vs_sgld"] = r["rate"] / b if b else math.nan
    return rows
