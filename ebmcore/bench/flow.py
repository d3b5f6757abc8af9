"""The ``flow`` rows of ``python -m ebmcore bench``: the Fokker–Planck solver end to end.

Registered with :func:`ebmcore.bench.core.register_bench` on import (listed in
``BENCH_MODULES``).  Each row times :func:`ebmcore.exact.fokker_planck.flow_frames`
as the CLI runs it (quadrature, set-up and every step) on the default Gaussian
from the default uniform start to t = 5 with 50 frames, one torch thread; the
baseline, timed in the same run, is 10,000 fast SGLD chains carried to the same
time at eps = dt (what the particles beside the density cost).  ``vs_sgld`` is
the baseline's seconds over the row's.
"""

from __future__ import annotations

import os

import torch

from ebmcore.bench.core import median_seconds, register_bench
from ebmcore.exact.fokker_planck import FlowConfig, flow_frames
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.registry import make_target

__all__ = ["flow_bench"]

THREADS = 1  # as the tests and a shared 2-core machine run it
FULL = {"grids": (128, 256), "t_end": 5.0, "frames": 50, "repeats": 3, "chains": 10_000}
QUICK = {"grids": (32,), "t_end": 0.2, "frames": 4, "repeats": 1, "chains": 100}



@register_bench("flow")
def flow_bench(quick: bool) -> list[dict]:
    """Seconds, frames/s and time steps/s of the solver on ``gaussian`` per grid size."""
    c = QUICK if quick else FULL
    target = make_target("gaussian")
    prev = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        dt = FlowConfig().dt
        sgld_cfg = SampleConfig(step_size=dt, steps=round(c["t_end"] / dt), chains=c["chains"],
                                keep_paths=0)
        base = median_seconds(lambda: sample(target, sgld_cfg), c["repeats"])
        rows = [{"bench": "flow", "impl": f"sgld fast {c['chains']} chains (baseline)",
                 "target": "gaussian", "grid": 0, "chains": c["chains"],
                 "steps": sgld_cfg.steps, "seconds": base, "rate": sgld_cfg.steps / base,
                 "unit": "steps/s", "vs_sgld": 1.0}]
        for n in c["grids"]:
            cfg = FlowConfig(t_end=c["t_end"], frames=c["frames"], grid=n)
            box: dict = {}

            def solve(cfg: FlowConfig = cfg, box: dict = box) -> None:
                box["frames"] = flow_frames(target, cfg)

            sec = median_seconds(solve, c["repeats"])
            frames = box["frames"]
            rows.append({"bench": "flow", "impl": f"fokker-planck grid {n} to t={c['t_end']:g}",
                         "target": "gaussian", "grid": n, "chains": 0,
                         "steps": frames[-1].step, "seconds": sec,
                         "rate": (len(frames) - 1) / sec, "unit": "frames/s",
                         "seconds_per_frame": sec / (len(frames) - 1),
                         "steps_per_s": frames[-1].step / sec, "vs_sgld": base / sec})
        for r in rows:
            r["load1"], r["threads"] = os.getloadavg()[0], torch.get_num_threads()
        return rows
    finally:
        torch.set_num_threads(prev)
