"""Bench rows for typed formulas: ``python -m ebmcore bench --only formula``.

SGLD on formula targets with the gradient compiled from the formula's tree
(:mod:`ebmcore.targets.formula_grad`) beside the same target through autograd, in
chain-steps/s; ``vs_autograd`` is a row's rate over the autograd row of the same kind,
formula and size in the same run.  Two kinds of rows:

- ``formula loop``: the inner loop alone (the fused in-place SGLD loop with the compiled
  gradient; ``sgld_step`` with autograd, as a target without a gradient runs);
- ``formula run``: what users run, :func:`ebmcore.sampling.runner.sample` end to end
  (the median of a few runs, the two kinds alternating).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time

import torch

from ebmcore.bench.core import _row, register_bench, time_rate
from ebmcore.sampling.fast import inplace_grad, sgld_loop
from ebmcore.sampling.kernels import init_state, sgld_step
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.formula import formula_target

__all__ = ["FORMULAS", "formula_bench"]

FORMULAS = {  # label -> (formula, a stable step size)
    "two wells (dashboard default)": (
        "-logsumexp(-((x - 2)**2 + y**2) / 2, -((x + 2)**2 + y**2) / 2)", 0.05),
    "ring": ("(x**2 + y**2 - 4)**2 / 0.5 + 0.1*x", 0.002),
    "polar flower": ("(r - 2)**2 / 0.2 + 0.5*cos(5*theta) + 0.1*abs(y)", 0.005),
}
FULL = {"sizes": (500, 100_000), "seconds": 0.3, "repeats": 3, "run_steps": 200}
QUICK = {"sizes": (200,), "seconds": 0.005, "repeats": 2, "run_steps": 10}
COMPILED, AUTOGRAD = "compiled gradient", "autograd"


def _loop_rows(label: str, expr: str, eps: float, n: int, cfg: dict) -> list[dict]:
    t = formula_target(expr)
    gen = torch.Generator().manual_seed(1)
    x0 = (torch.rand(n, 2, generator=torch.Generator().manual_seed(0)) * 6 - 3)
    fast, x = inplace_grad(t), x0.clone()
    noise, g = torch.empty_like(x0), torch.empty_like(x0)

    def compiled(k: int) -> None:
        sgld_loop(x, fast, k, eps, 1.0, gen, noise, grad_buf=g)

    def autograd(k: int) -> None:
        st = init_state(t.energy, x0)
        for _ in range(k):
            st, _ = sgld_step(t.energy, st, gen, step_size=eps)

    return [_row("formula loop", impl, label, n, *time_rate(run, n, cfg["seconds"],
                                                            cfg["repeats"]))
            for impl, run in ((COMPILED, compiled), (AUTOGRAD, autograd))]


def _run_rows(label: str, expr: str, eps: float, n: int, cfg: dict) -> list[dict]:
    t, steps = formula_target(expr), cfg["run_steps"]
    sc = SampleConfig(step_size=eps, steps=steps, chains=n, seed=0,
                      max_points=max(1000, 20 * n))
    targets = {COMPILED: t, AUTOGRAD: dataclasses.replace(t, grad=None)}
    times: dict[str, list[float]] = {impl: [] for impl in targets}
    for target in targets.values():
        sample(target, dataclasses.replace(sc, steps=2, chains=8))  # warm-up
    for _ in range(cfg["repeats"]):  # alternating, so that a burst of load hits both
        for impl, target in targets.items():
            t0 = time.perf_counter()
            sample(target, sc)
            times[impl].append(time.perf_counter() - t0)
    return [_row("formula run", impl, label, n, n * steps / sec, steps, sec)
            for impl, sec in ((i, statistics.median(ts)) for i, ts in times.items())]


@register_bench("formula")
def formula_bench(quick: bool) -> list[dict]:
    """Chain-steps/s of SGLD on formula targets, compiled gradient vs autograd (float32)."""
    cfg = QUICK if quick else FULL
    rows: list[dict] = []
    for label, (expr, eps) in FORMULAS.items():
        for n in cfg["sizes"]:
            rows += _loop_rows(label, expr, eps, n, cfg) + _run_rows(label, expr, eps, n, cfg)
    base = {(r["bench"], r["target"], r["chains"]): r["rate"] for r in rows
            if r["impl"] == AUTOGRAD}
    for r in rows:
        b = base.get((r["bench"], r["target"], r["chains"]))
        r["vs_autograd"] = r["rate"] / b if b else math.nan
    return rows
