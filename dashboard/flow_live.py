"""Step logic of the density-flow view, as plain functions (AppTest does not tick fragments).

A :class:`FlowJob` runs in three phases, each a generator pulled for a time budget:
the SGLD chains (:func:`ebmcore.sampling.runner.run`), the comparison of every
recorded step with the exact law of its time (:func:`ebmcore.exact.flow_compare.compare_run`),
and the exact densities at the animation's frames (:func:`ebmcore.exact.fokker_planck.evolve`)
binned beside the chains' histograms (:func:`ebmcore.exact.flow_compare.side_by_side`).
A phase that raises keeps what was done and records the message.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ebmcore.energies import Target
from ebmcore.exact.flow_compare import compare_run, flow_config_for, side_by_side
from ebmcore.exact.fokker_planck import evolve
from ebmcore.sampling.runner import SampleConfig, run

__all__ = ["FlowJob", "advance", "frame_indices", "start", "stop"]

MAX_FRAMES = 30  # animation frames sent to the browser (two bins x bins images each)


def frame_indices(n: int, cap: int = MAX_FRAMES) -> list[int]:
    """At most ``cap`` of ``n`` recorded steps, evenly spread, first and last kept."""
    if n <= cap:
        return list(range(n))
    return sorted({int(v) for v in np.rint(np.linspace(0, n - 1, cap))})


@dataclass
class FlowJob:
    """The chains, their comparison with the exact law, and the animation frames."""

    key: Hashable  # what it was started with: a new key means a new job
    target: Target
    config: SampleConfig  # the SGLD run
    grid: int  # solver cells per side
    bins: int  # histogram bins per side (divides grid)
    phase: str = "chains"  # chains, compare, frames, done
    events: Iterator[Any] | None = None  # the current phase's generator
    trace: Any = None  # the SGLD trace once run
    step: int = 0  # SGLD steps done
    curve: list = field(default_factory=list)  # ParticleFrames, one per recorded step
    frames: list = field(default_factory=list)  # SideBySide per animation frame
    frame_idx: list = field(default_factory=list)  # recorded-step indices of the frames
    error: str | None = None
    stopped: bool = False
    seconds: float = 0.0  # compute time so far
    memo: dict = field(default_factory=dict)  # figures built from the finished job
    busy: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.phase == "done"

    @property
    def fraction(self) -> float:
        """Progress over the three phases (the chains are the cheapest third)."""
        total = self.config.steps
        if self.phase == "chains":
            return 0.2 * self.step / max(total, 1)
        n = len(self.trace.steps) if self.trace is not None else 1
        if self.phase == "compare":
            return 0.2 + 0.6 * len(self.curve) / max(n, 1)
        if self.phase == "frames":
            return 0.8 + 0.2 * len(self.frames) / max(len(self.frame_idx), 1)
        return 1.0

    @property
    def label(self) -> str:
        if self.phase == "chains":
            return f"SGLD step {self.step:,} of {self.config.steps:,}"
        if self.phase == "compare":
            n = len(self.trace.steps)
            return f"Fokker–Planck law at recorded step {len(self.curve):,} of {n:,}"
        if self.phase == "frames":
            return f"animation frame {len(self.frames)} of {len(self.frame_idx)}"
        return "done"


def start(key: Hashable, target: Target, config: SampleConfig, *, grid: int = 128,
          bins: int = 32) -> FlowJob:
    """A new job (nothing computed yet); ``config`` must be SGLD with noise."""
    flow_config_for(config, grid)  # raises ValidationError for anything but noisy SGLD
    return FlowJob(key, target, config, grid, bins, events=run(target, config))


def _panels(job: FlowJob) -> Iterator[Any]:
    tr, eps = job.trace, job.config.step_size
    times = tuple(float(tr.steps[i]) * eps for i in job.frame_idx)
    cfg = dataclasses.replace(flow_config_for(job.config, job.grid), times=times)
    requested = (f for f in evolve(job.target, cfg) if f.requested)
    for i, frame in zip(job.frame_idx, requested, strict=True):
        yield side_by_side(frame.rho, tr.positions[i], job.target.box, job.bins)


def _next_phase(job: FlowJob) -> None:
    if job.phase == "chains":
        job.phase = "compare"
        job.events = compare_run(job.target, job.trace, grid=job.grid, bins=job.bins)
    elif job.phase == "compare":
        job.phase = "frames"
        job.frame_idx = frame_indices(len(job.trace.steps))
        job.events = _panels(job)
    else:
        job.phase, job.events = "done", None


def advance(job: FlowJob, budget_s: float) -> FlowJob:
    """Compute for about ``budget_s`` seconds (at least one event), or to the end."""
    if job.finished or not job.busy.acquire(blocking=False):
        return job
    t0 = time.perf_counter()
    try:
        while not job.finished:
            try:
                ev = next(job.events)
            except StopIteration:
                _next_phase(job)
                continue
            if job.phase == "chains":
                job.trace, job.step = ev.trace, ev.step
            elif job.phase == "compare":
                job.curve.append(ev)
            else:
                job.frames.append(ev)
            if time.perf_counter() - t0 >= budget_s:
                break
    except Exception as exc:  # never take the page down: report, keep what was done
        job.error = f"the density flow stopped with an error: {exc}"
        job.phase, job.events = "done", None
    finally:
        job.seconds += time.perf_counter() - t0
        job.busy.release()
    return job


def stop(job: FlowJob) -> FlowJob:
    """Stop the job; what was computed stays."""
    with job.busy:
        close = getattr(job.events, "close", None)
        if close is not None:
            close()
        job.phase, job.events, job.stopped = "done", None, True
    return job
