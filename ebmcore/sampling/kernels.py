"""Langevin-family transition kernels as pure step functions.

Each kernel maps ``(energy, state, generator)`` to ``(new_state, info)``; the generator is
a ``torch.Generator`` or the runs' counter-based :class:`~ebmcore.sampling.noise.NoiseStream`.  The
state caches positions, energies and gradients, so an accept/reject kernel
never re-evaluates the energy at the current point.  The energy is an argument
of every call, not captured once: during training it changes at every step.

All kernels are vectorised over chains: ``x`` has shape ``(N, 2)``.  With a
temperature ``T > 0`` they target ``p(x)^(1/T)``; SGLD with ``T = 0`` is plain
gradient descent, which runs to the nearest mode (the MAP point).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.energies import Energy, energy_and_grad
from ebmcore.sampling.noise import Rng, normal, uniform

__all__ = [
    "METROPOLIS",
    "SAMPLERS",
    "GradFn",
    "SamplerState",
    "StepInfo",
    "hmc_step",
    "init_state",
    "mala_step",
    "noise_std",
    "sgld_step",
    "sgld_update",
]

GradFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class SamplerState:
    """Positions of ``N`` chains with their cached energies and gradients."""

    x: Tensor  # (N, 2) positions
    energy: Tensor  # (N,) E(x)
    grad: Tensor  # (N, 2) grad_x E(x)


@dataclass(frozen=True)
class StepInfo:
    """What a step reports besides the new state."""

    accept_prob: Tensor | None  # (N,) Metropolis acceptance probability; None for SGLD


def init_state(energy: Energy, x: Tensor, grad: GradFn | None = None) -> SamplerState:
    """Evaluate the energy and its gradient at ``x`` (``(N, 2)``)."""
    e, g = energy_and_grad(energy, x, grad)
    return SamplerState(x.detach(), e, g)


def _normal(like: Tensor, generator: Rng) -> Tensor:
    return normal(like.shape, generator, dtype=like.dtype, device=like.device)


def sgld_update(x: Tensor | float, grad: Tensor, step_size: float | Tensor,
                noise_std: float | Tensor, xi: Tensor | None) -> Tensor:
    """The Langevin move ``x - eps grad + sigma xi``, ``sigma = sqrt(2 eps T)`` usually.

    Every Langevin update in the package is this one line: the kernels here, the
    training negatives (before their wall rule) and the Langevin flow (whose
    ``sigma`` is learned; it passes ``x = 0`` for the move itself).  ``xi = None`` is
    gradient descent.
    """
    x = x - step_size * grad
    return x if xi is None else x + noise_std * xi


def noise_std(step_size: float, temperature: float) -> float:
    """``sqrt(2 eps T)``: the noise that makes Langevin target ``p^(1/T)``."""
    return math.sqrt(2.0 * step_size * temperature)


def sgld_step(
    energy: Energy,
    state: SamplerState,
    generator: Rng,
    *,
    step_size: float,
    temperature: float = 1.0,
    grad: GradFn | None = None,
) -> tuple[SamplerState, StepInfo]:
    """Unadjusted Langevin: ``x' = x - eps grad E(x) + sqrt(2 eps T) xi``.

    Its stationary law is ``p^(1/T)`` only as ``eps -> 0``; at finite ``eps``
    it is biased (see :func:`ebmcore.exact.density.sgld_stationary_cov`).
    """
    xi = _normal(state.x, generator) if temperature > 0 else None
    x = sgld_update(state.x, state.grad, step_size, noise_std(step_size, temperature), xi)
    e, g = energy_and_grad(energy, x, grad)
    return SamplerState(x, e, g), StepInfo(None)


def _accept(
    old: SamplerState, new: SamplerState, log_alpha: Tensor, generator: Rng
) -> tuple[SamplerState, StepInfo]:
    log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf)  # a NaN proposal is rejected
    u = uniform(log_alpha.shape, generator, dtype=log_alpha.dtype, device=log_alpha.device)
    take = torch.log(u) < log_alpha
    col = take[:, None]
    state = SamplerState(
        torch.where(col, new.x, old.x),
        torch.where(take, new.energy, old.energy),
        torch.where(col, new.grad, old.grad),
    )
    return state, StepInfo(log_alpha.clamp(max=0.0).exp())


def mala_step(
    energy: Energy,
    state: SamplerState,
    generator: Rng,
    *,
    step_size: float,
    temperature: float = 1.0,
    grad: GradFn | None = None,
) -> tuple[SamplerState, StepInfo]:
    """Metropolis-adjusted Langevin: an SGLD proposal, accepted with the MH ratio.

    The proposal density is ``q(y | x) = N(y; x - eps grad E(x), 2 eps T I)``,
    so the chain is exactly invariant for ``p^(1/T)`` at any ``eps``.
    """
    if temperature <= 0:
        raise ValueError("MALA needs a positive temperature")
    s2 = 2.0 * step_size * temperature
    y = sgld_update(state.x, state.grad, step_size, math.sqrt(s2), _normal(state.x, generator))
    e, g = energy_and_grad(energy, y, grad)
    new = SamplerState(y, e, g)
    fwd = ((y - state.x + step_size * state.grad) ** 2).sum(1)
    bwd = ((state.x - y + step_size * g) ** 2).sum(1)
    log_alpha = -(e - state.energy) / temperature - (bwd - fwd) / (2.0 * s2)
    return _accept(state, new, log_alpha, generator)


def hmc_step(
    energy: Energy,
    state: SamplerState,
    generator: Rng,
    *,
    step_size: float,
    n_leapfrog: int = 10,
    temperature: float = 1.0,
    grad: GradFn | None = None,
) -> tuple[SamplerState, StepInfo]:
    """Hamiltonian Monte Carlo with unit mass and ``n_leapfrog`` leapfrog steps.

    Targets ``exp(-E/T)``: potential ``U = E/T``, momentum ``v ~ N(0, I)``.
    """
    if temperature <= 0:
        raise ValueError("HMC needs a positive temperature")
    v = _normal(state.x, generator)
    h0 = state.energy / temperature + 0.5 * (v**2).sum(1)
    x, g = state.x, state.grad
    v = v - 0.5 * step_size * g / temperature
    for i in range(n_leapfrog):
        x = x + step_size * v
        e, g = energy_and_grad(energy, x, grad)
        if i < n_leapfrog - 1:
            v = v - step_size * g / temperature
    v = v - 0.5 * step_size * g / temperature
    h1 = e / temperature + 0.5 * (v**2).sum(1)
    return _accept(state, SamplerState(x, e, g), h0 - h1, generator)


SAMPLERS: dict[str, Callable[..., tuple[SamplerState, StepInfo]]] = {
    "sgld": sgld_step,
    "mala": mala_step,
    "hmc": hmc_step,
}
"""Kernel registry: name -> step function.  Front ends list its keys."""
METROPOLIS = ("mala", "hmc")  # kernels with an accept/reject step (an acceptance rate)
