"""MALA and HMC one step at a time, with every proposal, for a browser to animate.

:func:`step_by_step` runs the real kernels of :mod:`ebmcore.sampling.kernels` and
watches where they evaluate the gradient: MALA evaluates it once, at its proposal;
HMC once per leapfrog step, so the evaluations are the leapfrog path.  Nothing is
re-implemented, so the accept decisions are the kernels' own, draw for draw.

The record is plain JSON (lists of floats, ints and bools; non-finite numbers as
``None``): ``json.dumps(record, allow_nan=False)`` works.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from ebmcore.energies import Target, ValidationError
from ebmcore.sampling.kernels import (
    METROPOLIS,
    SamplerState,
    hmc_step,
    init_state,
    mala_step,
)

__all__ = ["MAX_CHAINS", "MAX_STEPS", "STEPWISE", "step_by_step", "steps"]

STEPWISE = METROPOLIS  # samplers with a proposal to draw
MAX_CHAINS = 64  # a few chains: every proposal is kept
MAX_STEPS = 5000


class _Watch:
    """Wraps an energy or gradient function and records the points it is called at."""

    def __init__(self, fn) -> None:
        self.fn, self.calls = fn, []

    def __call__(self, x: Tensor) -> Tensor:
        self.calls.append(x.detach().clone())
        return self.fn(x)


def _plain(t: Tensor) -> list:
    """Nested lists of floats, non-finite values as None (JSON has no NaN)."""

    def clean(o):
        return [clean(e) for e in o] if isinstance(o, list) else (o if math.isfinite(o) else None)

    return clean(t.detach().cpu().double().tolist())


def steps(target: Target, sampler: str, x0: Tensor, n_steps: int, *, step_size: float,
          n_leapfrog: int = 10, temperature: float = 1.0, seed: int = 0
          ) -> Iterator[tuple[SamplerState, Tensor, SamplerState, Tensor]]:
    """Yield ``(before, path, after, accept_prob)`` per step.

    ``path`` is ``(N, P, 2)``: the proposal (``P = 1``) for MALA, the leapfrog positions
    (``P = n_leapfrog``, the last one the proposal) for HMC.  The generator is seeded
    with ``seed`` and used as :func:`ebmcore.sampling.runner.run` would use it after its
    initial points.
    """
    if sampler not in STEPWISE:
        raise ValidationError(f"step-by-step needs one of {', '.join(STEPWISE)}, got {sampler!r}")
    if x0.ndim != 2 or x0.shape[1] != 2 or not 1 <= x0.shape[0] <= MAX_CHAINS:
        raise ValidationError(f"initial points must be (N, 2) with 1 <= N <= {MAX_CHAINS}")
    if not 1 <= n_steps <= MAX_STEPS:
        raise ValidationError(f"steps must be in [1, {MAX_STEPS}], got {n_steps}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValidationError(f"step size must be a finite number > 0, got {step_size}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValidationError(f"temperature must be a finite number > 0, got {temperature}")
    if not 1 <= n_leapfrog <= 1000:
        raise ValidationError(f"leapfrog steps must be in [1, 1000], got {n_leapfrog}")
    gen = torch.Generator(device=x0.device).manual_seed(seed)
    # The kernel computes gradients through whichever of these it is given: watch that one.
    energy, grad = target.energy, target.grad
    watch = _Watch(grad if grad is not None else energy)
    if grad is not None:
        grad = watch
    else:
        energy = watch
    kw = {"step_size": step_size, "temperature": temperature, "grad": grad}
    kernel = mala_step if sampler == "mala" else hmc_step
    if sampler == "hmc":
        kw["n_leapfrog"] = n_leapfrog
    state = init_state(energy, x0.detach().clone(), grad)
    for _ in range(n_steps):
        watch.calls.clear()
        new, info = kernel(energy, state, gen, **kw)
        path = torch.stack(watch.calls, 1)
        yield state, path, new, info.accept_prob
        state = new


def step_by_step(target: Target, sampler: str, x0: Tensor, n_steps: int, *,
                 step_size: float, n_leapfrog: int = 10, temperature: float = 1.0,
                 seed: int = 0) -> dict:
    """Run a few chains step by step and return everything an animation needs.

    Returns:
        A JSON-ready dict: ``sampler``, ``step_size``, ``n_leapfrog``, ``chains``, and per step
        (lists indexed ``[step][chain]``): ``x`` the position before the step, ``path`` the
        proposal path (``[step][chain][point] = [x, y]``, one point for MALA, the start plus
        the leapfrog positions for HMC), ``accepted``, ``log_alpha`` (log of the acceptance
        probability, <= 0), ``acceptance_rate`` (running fraction of accepted proposals per
        chain) and ``overall_rate`` (running fraction over all chains).
    """
    rec: dict = {"sampler": sampler, "step_size": step_size, "temperature": temperature,
                 "n_leapfrog": n_leapfrog if sampler == "hmc" else None,
                 "chains": int(x0.shape[0]) if x0.ndim == 2 else 0, "x": [], "path": [],
                 "accepted": [], "log_alpha": [], "acceptance_rate": [], "overall_rate": [],
                 "final": None}
    taken = None
    for i, (before, path, after, prob) in enumerate(
            steps(target, sampler, x0, n_steps, step_size=step_size, n_leapfrog=n_leapfrog,
                  temperature=temperature, seed=seed)):
        if sampler == "hmc":
            path = torch.cat([before.x[:, None], path], 1)
        prop = path[:, -1]
        # Accepted iff the chain moved to its proposal (a rejected one stays where it was).
        acc = (after.x == prop).all(1) & ~(before.x == prop).all(1)
        taken = acc.long() if taken is None else taken + acc.long()
        rec["x"].append(_plain(before.x))
        rec["path"].append(_plain(path))
        rec["accepted"].append([bool(a) for a in acc])
        rec["log_alpha"].append(_plain(prob.log()))
        rec["acceptance_rate"].append(_plain(taken.double() / (i + 1)))
        rec["overall_rate"].append(float(taken.sum()) / (taken.numel() * (i + 1)))
        rec["final"] = _plain(after.x)
    return rec
