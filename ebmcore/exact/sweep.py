"""Discrepancy to the exact density as a function of the step size: the bias of ULA, made visible.

For each sampler and each eps of a grid, run many independent chains for a
fixed integration time ``eps * steps`` from uniform starts over the box, and
compare the final positions (iid across chains) with the exact density by
:func:`ebmcore.exact.density.discrepancy`.  Unadjusted Langevin (SGLD) converges to a
biased law whose distance to ``p`` grows with eps; MALA is exact at any eps
(until it stops moving, when its acceptance collapses).  The sampling floor of
the discrepancy says what exact iid samples would score.

:func:`sweep` is a generator of :class:`SweepPoint` s, so a front end can draw
the curve as it fills in and stop at any time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ebmcore.budget import DEFAULT_BUDGET, Budget, check, sampling_cost
from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import GridDensity, discrepancy
from ebmcore.sampling.kernels import SAMPLERS
from ebmcore.sampling.runner import MAX_CHAINS, SampleConfig, sample

__all__ = ["SweepConfig", "SweepPoint", "eps_grid", "sweep"]


def eps_grid(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """``n`` log-spaced step sizes from ``lo`` to ``hi``, rounded to 3 significant digits."""
    if not (0 < lo < hi and math.isfinite(hi)) or not 2 <= n <= 100:
        raise ValidationError(f"eps grid needs 0 < lo < hi and 2 <= n <= 100, got {lo}, {hi}, {n}")
    a, b = math.log10(lo), math.log10(hi)
    return tuple(float(f"{10 ** (a + (b - a) * i / (n - 1)):.3g}") for i in range(n))


@dataclass(frozen=True)
class SweepConfig:
    """Settings of an eps sweep."""

    samplers: tuple[str, ...] = ("sgld", "mala")  # keys of SAMPLERS
    eps: tuple[float, ...] = eps_grid(0.02, 1.5, 10)  # step sizes
    chains: int = 20_000  # independent chains per run (their final positions are iid)
    time: float = 20.0  # integration time eps * steps of every run
    min_steps: int = 100  # at least this many steps per run
    max_steps: int = 5_000  # at most this many (small eps is cut short: reported in .steps)
    temperature: float = 1.0  # T of every run
    bins: int = 16  # histogram bins per side of the discrepancy (must divide the grid size)
    seed: int = 0  # same seed -> same initial points for every run

    def validate(self, budget: Budget = DEFAULT_BUDGET, *, flag: str = "") -> SweepConfig:
        """Return self, or raise ValidationError; the whole sweep (every run) is priced
        against ``budget`` (``flag`` names how the caller can raise it)."""
        if not self.samplers or any(s not in SAMPLERS for s in self.samplers):
            raise ValidationError(f"samplers must be among {', '.join(SAMPLERS)}")
        if not self.eps or any(not (math.isfinite(e) and e > 0) for e in self.eps):
            raise ValidationError("every eps must be a finite number > 0")
        if not 1 <= self.chains <= MAX_CHAINS:
            raise ValidationError(f"chains must be in [1, {MAX_CHAINS:,}]")
        if not (math.isfinite(self.time) and self.time > 0):
            raise ValidationError("integration time must be > 0")
        if not 1 <= self.min_steps <= self.max_steps <= 1_000_000:
            raise ValidationError("need 1 <= min_steps <= max_steps <= 1,000,000")
        total = len(self.samplers) * sum(self.steps_for(e) for e in self.eps)
        check(sampling_cost(chains=self.chains, steps=total, keep_paths=0,
                            max_points=max(1000, 4 * self.chains)), budget, flag=flag)
        return self

    def steps_for(self, eps: float) -> int:
        """Steps of the run at ``eps``: ``time / eps`` clipped to [min_steps, max_steps]."""
        return int(min(self.max_steps, max(self.min_steps, math.ceil(self.time / eps))))


@dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep."""

    sampler: str  # which kernel
    eps: float  # its step size
    steps: int  # steps run
    tv: float  # discrepancy of the final positions (diverged chains count as outside)
    floor: float  # expected discrepancy of as many exact iid samples
    n_diverged: int  # chains that diverged
    acceptance: float | None  # mean acceptance (None for SGLD)
    seconds: float  # wall time of the run


def _finals(trace, box) -> torch.Tensor:
    """Final positions ``(N, 2)``, diverged chains moved far outside the box."""
    x = trace.x.to(torch.float64).clone()
    if trace.n_diverged:
        x0, x1, y0, y1 = box
        far = torch.tensor([x1 + 10 * (x1 - x0), y1 + 10 * (y1 - y0)], dtype=torch.float64)
        x[~trace.alive] = far
    return x


def sweep(target: Target, gd: GridDensity, config: SweepConfig | None = None, *,
          budget: Budget = DEFAULT_BUDGET) -> Iterator[SweepPoint]:
    """Yield one :class:`SweepPoint` per (eps, sampler), eps in increasing order.

    Args:
        target: the energy to sample.
        gd: its exact density on ``target.box`` (``gd.n`` a multiple of ``config.bins``).
        config: the sweep's settings.
        budget: the work the whole sweep may take (checked before the first run).
    """
    cfg = (config or SweepConfig()).validate(budget)
    if gd.n % cfg.bins:
        raise ValidationError(f"grid size {gd.n} is not a multiple of {cfg.bins} bins")
    for eps in sorted(cfg.eps):
        steps = cfg.steps_for(eps)
        for name in cfg.samplers:
            run_cfg = SampleConfig(sampler=name, step_size=eps, steps=steps, chains=cfg.chains,
                                   temperature=cfg.temperature, seed=cfg.seed, keep_paths=0,
                                   max_points=max(1000, 4 * cfg.chains), report_every=steps)
            t0 = time.perf_counter()
            trace = sample(target, run_cfg, budget=budget)
            d = discrepancy(_finals(trace, target.box), gd, cfg.bins)
            yield SweepPoint(name, eps, steps, d.tv, d.floor, trace.n_diverged,
                             trace.acceptance, time.perf_counter() - t0)
