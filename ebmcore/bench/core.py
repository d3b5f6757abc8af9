"""Speed measurements, as one table: ``python -m ebmcore bench``.

Sampler throughput is counted in *chain-steps per second* (chains x steps /
wall seconds), the median of a few timed repeats after an untimed warm-up,
each repeat sized to take a fixed wall time.  Baselines run in the same
process and the same moment: a vectorised NumPy SGLD and the reference
example's one-chain Python loop; ``vs_numpy`` is a row's rate over NumPy's.

Other modules add their own rows (training iterations/s, figure build times)
with :func:`register_bench`: the modules named in :data:`BENCH_MODULES`, and
those other installed packages declare under the ``langevin_lab.bench`` entry
point group (the dashboard does, in ``pyproject.toml``), are imported before a
run so their benches register themselves.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import math
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from ebmcore.energies import ValidationError
from ebmcore.sampling.fast import inplace_grad, sgld_loop
from ebmcore.sampling.kernels import init_state, mala_step, sgld_step
from ebmcore.targets.registry import make_target

__all__ = ["BENCHES", "BENCH_MODULES", "load_benches", "median_seconds", "register_bench",
           "run_benches", "time_rate"]

BenchFn = Callable[[bool], list[dict]]
BENCHES: dict[str, BenchFn] = {}
"""Name -> function ``(quick) -> rows``; each row a dict of plain values (see ``_row``)."""

BENCH_MODULES: tuple[str, ...] = ("ebmcore.bench.training", "ebmcore.bench.flow",
                                 "ebmcore.bench.family", "ebmcore.bench.formula")
"""ebmcore's own bench modules; :func:`load_benches` adds the entry-point plugins."""
ENTRY_POINTS = "langevin_lab.bench"  # entry-point group of bench modules in other packages

STEP_SIZES = {"gaussian": 0.3, "banana": 0.002}  # stable for every exact sample we start from
FULL = {"sizes": (100, 10_000, 1_000_000), "seconds": 0.3, "repeats": 5, "ref_steps": 2000}
NUMPY = "numpy sgld (vectorised)"
REFERENCE = "reference loop (numpy, 1 chain)"
QUICK = {"sizes": (100, 1_000), "seconds": 0.005, "repeats": 2, "ref_steps": 200}


def register_bench(name: str) -> Callable[[BenchFn], BenchFn]:
    """Decorator: add ``fn(quick: bool) -> list[dict]`` to :data:`BENCHES` under ``name``."""

    def deco(fn: BenchFn) -> BenchFn:
        BENCHES[name] = fn
        return fn

    return deco


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one untimed warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_rate(run: Callable[[int], object], work_per_step: int, seconds: float,
              repeats: int) -> tuple[float, int, float]:
    """Median throughput of ``run(steps)``, each repeat sized to last about ``seconds``.

    Returns:
        ``(rate, steps, median_seconds)`` with ``rate = work_per_step * steps / median``.
    """
    run(1)  # warm-up: allocations, lazy initialisation
    k, elapsed, per_step = 1, 0.0, math.inf
    while elapsed < seconds / 10 and k < 1 << 20:  # calibrate: double until measurable
        k *= 2
        t0 = time.perf_counter()
        run(k)
        elapsed = time.perf_counter() - t0
        per_step = min(per_step, elapsed / k)  # a preemption only ever slows a run down
    steps = max(2, round(seconds / max(per_step, 1e-9)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(steps)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return work_per_step * steps / med, steps, med


def _row(bench: str, impl: str, target: str, chains: int, rate: float, steps: int,
         seconds: float) -> dict:
    return {"bench": bench, "impl": impl, "target": target, "chains": chains, "steps": steps,
            "seconds": seconds, "rate": rate, "unit": "chain-steps/s",
            "load1": os.getloadavg()[0]}


def _numpy_grad_log_p(name: str):
    """``-grad E`` for ``(N, 2)`` float32 arrays, written as idiomatic NumPy."""
    t = make_target(name)
    if name == "mixture":
        p = t.params
        ang = 2.0 * np.pi * np.arange(p["k"]) / p["k"]
        mu = (p["radius"] * np.stack([np.cos(ang), np.sin(ang)], 1)).astype(np.float32)
        var = np.float32(p["std"] ** 2)

        def mixture(x: np.ndarray) -> np.ndarray:
            lg = -((x[:, None, :] - mu) ** 2).sum(-1) / (2 * var)
            w = np.exp(lg - lg.max(1, keepdims=True))
            return -(x - (w @ mu) / w.sum(1, keepdims=True)) / var

        return mixture
    if name == "gaussian":
        prec = np.linalg.inv(np.array(t.params["cov"], dtype=np.float64).reshape(2, 2))
        prec, mean = prec.astype(np.float32), np.array(t.params["mean"], dtype=np.float32)
        return lambda x: -(x - mean) @ prec
    p = t.params
    a2, s2 = p["x_std"] ** 2, p["y_std"] ** 2
    b = p["bend"] * p["y_std"] / a2

    def banana(x: np.ndarray) -> np.ndarray:
        u, v = x[:, 0], x[:, 1]
        r = (v - b * (u * u - a2)) / s2
        return -np.stack((u / a2 - 2.0 * b * u * r, r), axis=1)

    return banana


def _sampler_rows(name: str, n: int, cfg: dict) -> list[dict]:
    """Our SGLD (fast, autograd), our MALA and NumPy SGLD on one target at ``n`` chains."""
    t = make_target(name)
    eps, sec, rep = STEP_SIZES[name], cfg["seconds"], cfg["repeats"]
    x0 = t.sample(n, torch.Generator().manual_seed(0)).to(torch.float32)
    gen = torch.Generator().manual_seed(1)
    rows = []

    fast, x = inplace_grad(t), x0.clone()
    noise, grad = torch.empty_like(x), torch.empty_like(x)

    def run_fast(k: int) -> None:
        sgld_loop(x, fast, k, eps, 1.0, gen, noise, grad_buf=grad)

    def kernel_runner(step, grad_fn):
        def run(k: int) -> None:
            st = init_state(t.energy, x0, grad_fn)
            for _ in range(k):
                st, _ = step(t.energy, st, gen, step_size=eps, grad=grad_fn)
        return run

    def run_numpy(k: int) -> None:
        xn = x0.numpy().copy()
        rng = np.random.default_rng(0)
        scale = np.float32(math.sqrt(2.0 * eps))
        for _ in range(k):
            xn += eps * grad_log_p(xn) + scale * rng.standard_normal(xn.shape, dtype=np.float32)

    grad_log_p = _numpy_grad_log_p(name)
    cases = [("sgld fast (closed-form, in place)", run_fast),
             ("sgld_step (autograd)", kernel_runner(sgld_step, None)),
             ("mala_step (closed-form grad)", kernel_runner(mala_step, t.grad)),
             (NUMPY, run_numpy)]
    for impl, run in cases:
        rate, steps, med = time_rate(run, n, sec, rep)
        rows.append(_row("sampler", impl, name, n, rate, steps, med))
    return rows


def _reference_loop(name: str, steps: int) -> dict:
    """The reference example: one chain, one step at a time, NumPy on 2-vectors."""
    t = make_target(name)
    eps = STEP_SIZES[name]
    grad_log_p = _numpy_grad_log_p(name)
    rs = np.random.RandomState(0)

    def run(k: int) -> None:
        x = t.sample(1, torch.Generator().manual_seed(0)).numpy()[0].copy()
        for _ in range(k):
            x_grad = grad_log_p(x[None, :])[0]
            noise = rs.normal(0, 1, size=2)
            x += eps * x_grad + noise * np.sqrt(2 * eps)

    t0 = time.perf_counter()
    run(steps)
    med = time.perf_counter() - t0
    return _row("sampler", REFERENCE, name, 1, steps / med, steps, med)


@register_bench("sampler")
def sampler_bench(quick: bool) -> list[dict]:
    """Chain-steps/s of our samplers and the baselines on gaussian and banana (float32)."""
    cfg = QUICK if quick else FULL
    rows = []
    for name in ("gaussian", "banana"):
        for n in cfg["sizes"]:
            rows += _sampler_rows(name, n, cfg)
        rows.append(_reference_loop(name, cfg["ref_steps"]))
    numpy_rate = {(r["target"], r["chains"]): r["rate"] for r in rows
                  if r["impl"] == NUMPY}
    ref_rate = {r["target"]: r["rate"] for r in rows if r["impl"] == REFERENCE}
    for r in rows:
        base = numpy_rate.get((r["target"], r["chains"]))
        r["vs_numpy"] = r["rate"] / base if base else math.nan
        r["vs_reference"] = r["rate"] / ref_rate[r["target"]]
    return rows


# What users run through `python -m ebmcore sample`: (target, chains, steps, sampler).  The
# defaults (500 x 1000, SGLD) run on every registry target; eps is small enough for all of them.
SAMPLE_CASES = {"full": [("banana", 1_000_000, 201, "sgld"), ("mixture", 100_000, 1000, "sgld"),
                         ("banana", 1_000_000, 51, "mala")],
                "quick": [("banana", 2_000, 21, "sgld"), ("mixture", 1_000, 21, "sgld"),
                          ("banana", 2_000, 21, "mala")]}
SAMPLE_EPS = 0.002
BENCH_THREADS = 2  # the kernel threads of the multi-threaded rows (at most the machine's cores)
SAMPLE_IMPL = "sample() + summarize() (as the CLI runs)"


def _numpy_rate(name: str, n: int, sec: float, rep: int) -> float:
    t = make_target(name)
    x0 = t.sample(n, torch.Generator().manual_seed(0)).to(torch.float32).numpy()
    grad_log_p = _numpy_grad_log_p(name)

    def run_numpy(k: int) -> None:
        xn, rng = x0.copy(), np.random.default_rng(0)
        scale = np.float32(math.sqrt(2.0 * SAMPLE_EPS))
        for _ in range(k):
            xn += SAMPLE_EPS * grad_log_p(xn) + scale * rng.standard_normal(xn.shape,
                                                                          dtype=np.float32)

    return time_rate(run_numpy, n, sec, rep)[0]


def _randn_rate(n: int, sec: float, rep: int) -> float:
    out = torch.empty(n, 2)
    gen = torch.Generator().manual_seed(0)

    def draw(k: int) -> None:
        for _ in range(k):
            torch.randn(out.shape, generator=gen, out=out)

    return time_rate(draw, n, sec, rep)[0]


@register_bench("sample")
def sample_bench(quick: bool) -> list[dict]:
    """``sample()`` + ``summarize()`` end to end, as the CLI runs them, in chain-steps/s: the
    cases of :data:`SAMPLE_CASES`, then every registry target at 500, 1e4 and 1e6 chains.

    Beside each: the vectorised NumPy SGLD on the same target and chains (``vs_numpy``,
    where a NumPy gradient is written) and the torch.randn ceiling (``vs_randn``: drawing
    the noise alone, the most any SGLD can do here; MALA also draws one uniform per chain,
    so its ceiling is about 2/3 of it).  The first run of each case is untimed: it loads
    the compiled kernels (or compiles them, once per machine).  On a machine with several
    cores, the 1e6-chain cases run again with ``threads`` = :data:`BENCH_THREADS` (the
    ceiling stays one thread's torch.randn).
    """
    from ebmcore.exact.summary import summarize
    from ebmcore.sampling.runner import SampleConfig, sample
    from ebmcore.targets.registry import TARGETS

    cfg = QUICK if quick else FULL
    rep = 1 if quick else 3
    d = SampleConfig()
    cases = SAMPLE_CASES["quick" if quick else "full"]
    # Every registry target at the defaults' 500 chains, at 1e4 and at 1e6 (fewer steps)
    sizes = [(d.chains, d.steps)] if quick else [(d.chains, d.steps), (10_000, 1000),
                                                 (1_000_000, 51)]
    every = [(name, n, steps, "sgld") for n, steps in sizes
             for name in (["gaussian"] if quick else TARGETS)]
    threads = min(BENCH_THREADS, os.cpu_count() or 1)
    more = [(*c, threads) for c in cases + every if c[1] >= 1_000_000 and threads > 1]
    rows = []
    for name, n, steps, sampler, *th in [*cases, *every, *more]:
        eps = d.step_size if name == "gaussian" else SAMPLE_EPS
        run_cfg = SampleConfig(chains=n, steps=steps, step_size=eps, sampler=sampler,
                               threads=th[0] if th else 1)

        def end_to_end(run_cfg=run_cfg, name=name) -> None:
            target = make_target(name)
            summarize(sample(target, run_cfg), target)

        end_to_end(dataclasses.replace(run_cfg, steps=2))  # kernels loaded: not timed
        times, cpu = [], []
        for _ in range(1 if n * steps > 1e7 else rep):  # the largest runs take seconds
            t0, c0 = time.perf_counter(), time.process_time()
            end_to_end()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        med = statistics.median(times)
        row = _row("sample", SAMPLE_IMPL, name, n, n * steps / med, steps, med)
        row["sampler"], row["threads"] = sampler, run_cfg.threads
        # CPU seconds beside wall: on a shared machine wall time also counts other processes
        row["cpu_seconds"] = statistics.median(cpu)
        base = _numpy_rate(name, n, cfg["seconds"], cfg["repeats"]) if name in (
            "gaussian", "banana", "mixture") else math.nan
        row["numpy_rate"] = base
        row["vs_numpy"] = row["rate"] / base
        row["vs_randn"] = row["rate"] / _randn_rate(n, cfg["seconds"], cfg["repeats"])
        rows.append(row)
    return rows


def load_benches() -> dict[str, BenchFn]:
    """Import the bench modules (they register themselves) and return :data:`BENCHES`."""
    plugins = [ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)]
    for mod in (*BENCH_MODULES, *plugins):
        importlib.import_module(mod)
    return BENCHES


def run_benches(quick: bool = False, only: list[str] | None = None) -> pd.DataFrame:
    """Run the registered benches (all, or those named in ``only``) into one table.

    Raises:
        ValidationError: a name in ``only`` that no module registered.
    """
    benches = load_benches()
    names = list(benches) if only is None else list(only)
    unknown = [n for n in names if n not in benches]
    if unknown:
        raise ValidationError(f"unknown bench {unknown[0]!r}; known: {', '.join(benches)}")
    rows: list[dict] = []
    for name in names:
        rows += BENCHES[name](quick)
    return pd.DataFrame.from_records(rows)
