"""One work budget for every request: its cost and memory, estimated before anything runs.

A request (a sampling run, a training run) is priced in two currencies:

- ``work``: scalar operations, counted as points x gradient evaluations x the cost of one
  evaluation (:data:`ANALYTIC_EVAL` for a 2D target, about ``3 x parameters`` for an MLP's
  forward and backward pass);
- ``memory``: the bytes it will hold at once (state, trace, kept paths, buffers, grids).

:func:`check` refuses a request above the :class:`Budget` with one line that names the limit
and what to lower. The CLI and the dashboard use the same estimates, with their own budgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ebmcore.energies import ValidationError

__all__ = ["ANALYTIC_EVAL", "DEFAULT_BUDGET", "GIB", "Budget", "Cost", "check", "flow_cost",
           "sampling_cost", "training_cost"]

GIB = 2**30
ANALYTIC_EVAL = 20.0  # operations of one energy-and-gradient evaluation of a 2D target


@dataclass(frozen=True)
class Cost:
    """What a request will take."""

    work: float  # scalar operations (points x gradient evaluations x cost per evaluation)
    memory: float  # bytes held at once
    lower: str  # the settings to lower, in words, for the message


@dataclass(frozen=True)
class Budget:
    """The most one request may take."""

    work: float = 5e12  # operations: a few minutes of work on one laptop core
    memory: float = 4 * GIB  # bytes; a share of a 24 GiB machine that serves other users too


DEFAULT_BUDGET = Budget()


def _fmt(v: float) -> str:
    return f"{v:.2g}" if v < 1e3 else f"{v:.1e}".replace("e+0", "e").replace("e+", "e")


def _gib(v: float) -> str:
    return f"{v / GIB:.2g} GiB" if v >= 0.1 * GIB else f"{v / 2**20:.3g} MiB"


def check(cost: Cost, budget: Budget = DEFAULT_BUDGET, *, flag: str = "") -> Cost:
    """Return ``cost``, or raise ValidationError naming the limit and what to lower.

    ``flag`` (e.g. ``"--budget"``) is added to the message where the caller can raise the
    budget deliberately.
    """
    if not (math.isfinite(cost.work) and math.isfinite(cost.memory)):
        raise ValidationError(f"this request is too large to estimate; lower {cost.lower}")
    raise_it = f" (or raise it with {flag})" if flag else ""
    if cost.work > budget.work:
        raise ValidationError(
            f"this request needs about {_fmt(cost.work)} operations, over the budget of "
            f"{_fmt(budget.work)}: lower {cost.lower}{raise_it}")
    if cost.memory > budget.memory:
        raise ValidationError(
            f"this request would hold about {_gib(cost.memory)} of memory, over the budget of "
            f"{_gib(budget.memory)}: lower {cost.lower}{raise_it}")
    return cost


def sampling_cost(*, chains: int, steps: int, grads_per_step: float = 1.0,
                  eval_cost: float = ANALYTIC_EVAL, keep_paths: int = 16,
                  max_points: int = 2_000_000, itemsize: int = 4) -> Cost:
    """The cost of ``chains`` chains for ``steps`` steps of a Langevin-family sampler.

    Memory: about 16 numbers per chain (position, gradient, energy, noise, a proposal and
    its gradient, velocity), the trace capped at ``max_points`` positions, and the full paths
    of ``keep_paths`` chains.
    """
    work = float(chains) * float(steps) * grads_per_step * eval_cost
    recorded = min(float(max_points), float(chains) * (steps + 1))
    paths = float(min(keep_paths, chains)) * (steps + 1)
    memory = itemsize * (16.0 * chains + 2.0 * recorded + 2.0 * paths)
    return Cost(work, memory, "chains, steps" + (" or leapfrog steps" if grads_per_step > 1
                                                  else ""))


def training_cost(*, iters: int, points: int, steps: int, params: int, width: int, depth: int,
                  grid: int = 0, buffer: int = 0, itemsize: int = 4) -> Cost:
    """The cost of ``iters`` iterations, each moving ``points`` negatives ``steps`` times.

    One gradient evaluation of an MLP costs about ``3 x params`` operations per point
    (forward and backward); each iteration also evaluates the data and the negatives once
    more for the loss, and ``grid`` x ``grid`` points when the gradient is exact. Memory
    holds the activations of one pass (``points x width x depth``, kept for the backward
    pass), the replay buffer and the grid.
    """
    per_iter = float(points) * (steps + 2) + float(grid) ** 2
    work = float(iters) * per_iter * 3.0 * params
    pass_points = max(float(points), float(grid) ** 2)
    memory = itemsize * (4.0 * pass_points * width * depth + 2.0 * buffer + 16.0 * points)
    return Cost(work, memory, "iterations, Langevin steps K, chains or batch, or the model size")


def flow_cost(*, grid: int, steps: int, frames: int, solvers: int = 12, itemsize: int = 8) -> Cost:
    """The cost of ``steps`` implicit steps of a Fokker–Planck flow on ``grid`` x ``grid`` cells.

    Each step solves every grid line of both axes by cyclic reduction: ``log2(grid)``
    levels of two multiply-adds per cell, about ``(8 log2 grid + 10)`` operations per
    cell. Memory holds the kept frames (one density each) and ``solvers`` cached
    factorisations (two axes, two multipliers per level).
    """
    cells = float(grid) ** 2
    levels = max(1.0, math.log2(max(grid, 2)))
    work = float(steps) * cells * (8.0 * levels + 10.0)
    memory = itemsize * cells * (float(frames) + 1.0 + solvers * 4.0 * levels + 8.0)
    return Cost(work, memory, "the grid, the time or the frames, or raise dt")
