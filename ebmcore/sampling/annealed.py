"""Annealed Langevin: SGLD through a ladder of Gaussian-smoothed targets, ending on the target.

Levels ``sigma_1 > ... > sigma_{L-1} > sigma_L = 0`` (halving from ``sigma_max``); the
run's steps are split evenly between them.  At level ``l`` the chains run unadjusted
Langevin on ``p_sigma_l = p * N(0, sigma_l^2 I)``, tabulated exactly on a grid
(:mod:`ebmcore.exact.smoothing`); the last level is the target's own energy.  Wide
smoothing merges the modes, so chains spread over all of them in proportion to their
mass before the barriers rise: the mode weights come out right even from a start that
plain Langevin never forgets.

Each smoothed level has curvature at most ``1 / sigma^2`` (``-grad^2 log p_sigma =
I / sigma^2 - Cov(x0 | x) / sigma^4``), so there the step is ``max(eps, sigma^2 / 4)``:
stable, and much faster to mix than ``eps``; the final level runs at ``eps``.  At a
temperature ``T != 1`` the smoothed levels are ``p_sigma^(1/T)``: still a ladder that ends on
the target ``p^(1/T)``.

References:
    Y. Song and S. Ermon, "Generative modeling by estimating gradients of the data
    distribution", NeurIPS 2019 (annealed Langevin dynamics).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.energies import Energy, Target, ValidationError, energy_and_grad
from ebmcore.exact.density import MAX_GRID, quadrature
from ebmcore.exact.smoothing import SmoothedGrid, smooth
from ebmcore.sampling.kernels import SAMPLERS, GradFn, SamplerState, StepInfo, sgld_step
from ebmcore.targets.registry import TARGETS

__all__ = ["MAX_LEVELS", "AnnealedState", "Annealing", "annealed_init", "annealed_step",
           "annealing", "noise_levels"]

MAX_LEVELS = 12  # sigma_max / 2^10 is below any grid's resolution
QUAD_GRID = 256  # cells per side of the exact density that is smoothed (at least)
_KEEP = 4  # smoothed ladders of registry targets kept in memory (a few MB each)
_LADDERS: OrderedDict = OrderedDict()  # (name, params, box, sigmas) -> grids, oldest first


def noise_levels(levels: int, sigma_max: float) -> tuple[float, ...]:
    """``(sigma_max, sigma_max / 2, ..., 0)``: ``levels`` widths, the last one the target."""
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= MAX_LEVELS:
        raise ValidationError(f"levels must be a whole number in [1, {MAX_LEVELS}], got {levels}")
    if not (isinstance(sigma_max, (int, float)) and math.isfinite(sigma_max) and sigma_max > 0):
        raise ValidationError(f"sigma max must be a finite number > 0, got {sigma_max}")
    return (*(float(sigma_max) / 2**i for i in range(levels - 1)), 0.0)


@dataclass(frozen=True, eq=False)
class Annealing:
    """A schedule: the smoothed targets and which level each step runs at."""

    sigmas: tuple[float, ...]  # widths per level, decreasing, the last 0 (the target itself)
    grids: tuple[SmoothedGrid, ...]  # the smoothed targets of the levels with sigma > 0
    total: int  # steps of the whole run, split evenly between the levels

    def level(self, step: int) -> int:
        """Level (0-based) of the 1-based ``step``."""
        return min(len(self.sigmas) - 1, (step - 1) * len(self.sigmas) // self.total)

    def step_size(self, level: int, eps: float) -> float:
        """``max(eps, sigma^2 / 4)`` on a smoothed level, ``eps`` on the target."""
        s = self.sigmas[level]
        return eps if s == 0 else max(eps, 0.25 * s * s)

    def fns(self, level: int, energy: Energy, grad: GradFn | None
            ) -> tuple[Energy, GradFn | None]:
        """Energy and gradient of ``level``: a smoothed grid's, or the target's own."""
        if level < len(self.grids):
            g = self.grids[level]
            return g.energy, g.grad
        return energy, grad


def annealing(target: Target, levels: int, sigma_max: float, steps: int) -> Annealing:
    """Build the schedule for a run of ``steps`` on ``target`` (quadrature, then smoothing).

    The smoothed grids of registry targets are kept for the last few ladders asked for
    (same name, parameters, levels and sigma max), so a page that reruns costs one build.
    """
    sigmas = noise_levels(levels, sigma_max)
    if steps < len(sigmas):
        raise ValidationError(f"annealing over {len(sigmas)} levels needs at least that many "
                              f"steps, got {steps}")
    key = None
    if target.name in TARGETS:
        key = (target.name, tuple(sorted(target.params.items())), target.box, sigmas)
    grids = _LADDERS.get(key) if key is not None else None
    if grids is None:
        grids = _ladder(target, sigmas)
        if key is not None:
            _LADDERS[key] = grids
            while len(_LADDERS) > _KEEP:
                _LADDERS.popitem(last=False)
    elif key is not None:
        _LADDERS.move_to_end(key)
    return Annealing(sigmas, grids, steps)


def _ladder(target: Target, sigmas: tuple[float, ...]) -> tuple[SmoothedGrid, ...]:
    if len(sigmas) == 1:
        return ()
    # The midpoint rule resolves the narrowest kernel with cells of at most sigma / 2.
    x0, x1, y0, y1 = target.box
    n = max(QUAD_GRID, 2 * math.ceil(max(x1 - x0, y1 - y0) / sigmas[-2]))
    if n > MAX_GRID:
        raise ValidationError(f"the narrowest smoothing {sigmas[-2]:g} needs a grid of {n} "
                              f"cells per side (at most {MAX_GRID}): use fewer levels or a "
                              "larger sigma max")
    gd = quadrature(target.energy, target.box, n)
    return tuple(smooth(gd, s) for s in sigmas[:-1])


@dataclass(frozen=True)
class AnnealedState(SamplerState):
    """A :class:`SamplerState` (energy and gradient of the current level) and where it is."""

    step: int  # steps done
    level: int  # level the cached energy and gradient belong to


def annealed_init(energy: Energy, x: Tensor, schedule: Annealing,
                  grad: GradFn | None = None) -> AnnealedState:
    """Cache the first level's energy and gradient at ``x``."""
    e_fn, g_fn = schedule.fns(0, energy, grad)
    e, g = energy_and_grad(e_fn, x, g_fn)
    return AnnealedState(x.detach(), e, g, 0, 0)


def annealed_step(
    energy: Energy,
    state: AnnealedState,
    generator: torch.Generator,
    *,
    step_size: float,
    schedule: Annealing,
    temperature: float = 1.0,
    grad: GradFn | None = None,
) -> tuple[AnnealedState, StepInfo]:
    """One SGLD step at the level of step ``state.step + 1`` (``energy`` is the last level's)."""
    level = schedule.level(state.step + 1)
    e_fn, g_fn = schedule.fns(level, energy, grad)
    base = SamplerState(state.x, state.energy, state.grad)
    if level != state.level:  # the cache belongs to the previous level
        base = SamplerState(state.x, *energy_and_grad(e_fn, state.x, g_fn))
    new, info = sgld_step(e_fn, base, generator, step_size=schedule.step_size(level, step_size),
                          temperature=temperature, grad=g_fn)
    return AnnealedState(new.x, new.energy, new.grad, state.step + 1, level), info


SAMPLERS["annealed"] = annealed_step  # registered here: kernels.py cannot import this module
