"""Underdamped (kinetic) Langevin in phase space, integrated with the BAOAB splitting.

The dynamics ``dx = v dt``, ``dv = -grad E(x) dt - gamma v dt + sqrt(2 gamma T) dB``
(unit mass) leave ``exp(-(E(x) + |v|^2 / 2) / T)`` invariant.  BAOAB splits one step
of length ``h`` into a half kick (B), a half drift (A), the exact Ornstein-Uhlenbeck
solve of the friction and noise (O), a half drift and a half kick.  It costs one
gradient per step, like SGLD.

Like :mod:`ebmcore.sampling.kernels`, :func:`underdamped_step` is a pure function
of ``(energy, state, generator)``; :func:`underdamped_loop` is its in-place twin for
closed-form gradients (same random draws, same numbers up to rounding).

References:
    B. Leimkuhler and C. Matthews, "Rational construction of stochastic numerical
    methods for molecular sampling", Appl. Math. Res. Express 2013 (1), 34-56.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.energies import Energy, ValidationError, energy_and_grad
from ebmcore.sampling.kernels import SAMPLERS, GradFn, SamplerState, StepInfo
from ebmcore.sampling.noise import Rng, fill_normal_, normal

__all__ = ["KineticState", "baoab_stationary_cov", "underdamped_init", "underdamped_loop",
           "underdamped_step"]


@dataclass(frozen=True)
class KineticState(SamplerState):
    """A :class:`SamplerState` with the chains' velocities: a point in phase space."""

    v: Tensor  # (N, 2) velocities


def underdamped_init(energy: Energy, x: Tensor, generator: Rng, *,
                     temperature: float = 1.0, grad: GradFn | None = None,
                     v: Tensor | None = None) -> KineticState:
    """Cache ``E`` and ``grad E`` at ``x``; velocities ``v`` or Maxwell draws ``N(0, T I)``.

    The draw is one ``randn(N, 2)`` from ``generator`` (none when ``v`` is given or ``T = 0``).
    """
    e, g = energy_and_grad(energy, x, grad)
    if v is None:
        v = torch.zeros_like(x)
        if temperature > 0:
            v = math.sqrt(temperature) * normal(x.shape, generator, dtype=x.dtype,
                                                device=x.device)
    return KineticState(x.detach(), e, g, v.detach())


def _ou(step_size: float, friction: float, temperature: float) -> tuple[float, float]:
    """O step ``v <- c v + s xi``: the exact solve of ``dv = -gamma v dt + sqrt(2 gamma T) dB``."""
    if not (math.isfinite(friction) and friction > 0):
        raise ValidationError(f"friction must be a finite number > 0, got {friction}")
    c = math.exp(-friction * step_size)
    return c, math.sqrt(max(temperature, 0.0) * (1.0 - c * c))


def underdamped_step(
    energy: Energy,
    state: KineticState,
    generator: Rng,
    *,
    step_size: float,
    friction: float = 1.0,
    temperature: float = 1.0,
    grad: GradFn | None = None,
) -> tuple[KineticState, StepInfo]:
    """One BAOAB step of length ``h = step_size`` with friction ``gamma``.

    On a Gaussian target the positions' stationary law is exact at any stable ``h``
    (``h^2 lambda_max(A) < 4``); see :func:`baoab_stationary_cov`.
    """
    c, s = _ou(step_size, friction, temperature)
    half = 0.5 * step_size
    v = state.v - half * state.grad
    x = state.x + half * v
    v = c * v
    if s > 0:
        v = v + s * normal(x.shape, generator, dtype=x.dtype, device=x.device)
    x = x + half * v
    e, g = energy_and_grad(energy, x, grad)
    v = v - half * g
    return KineticState(x, e, g, v), StepInfo(None)


def underdamped_loop(
    x: Tensor,
    v: Tensor,
    g: Tensor,
    grad_fn,
    n_steps: int,
    step_size: float,
    friction: float,
    temperature: float,
    generator: Rng,
    *,
    noise_buf: Tensor | None = None,
    paths_out: Tensor | None = None,
    on_step=None,
) -> Tensor:
    """Run ``n_steps`` BAOAB steps in place on ``x``, ``v`` and the gradient ``g`` at ``x``.

    ``grad_fn(x, out)`` is an in-place gradient (:class:`ebmcore.sampling.fast.InplaceGrad`).
    The generator is consumed exactly as :func:`underdamped_step` does.  No divergence check:
    callers run it in chunks.  ``paths_out`` (``(K, n_steps, 2)``) receives the first K
    chains' positions after every step; ``on_step(i, x)`` is called after step ``i`` (1-based),
as in :func:`ebmcore.sampling.fast.sgld_loop`.

    Returns:
        ``x``, advanced.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValidationError(f"n_steps must be a whole number >= 0, got {n_steps!r}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValidationError(f"step size must be a finite number > 0, got {step_size}")
    if not (x.shape == v.shape == g.shape and x.ndim == 2 and x.shape[1] == 2):
        raise ValidationError("x, v and g must all be (N, 2) tensors")
    if paths_out is not None and (paths_out.ndim != 3 or paths_out.shape[1:] != (n_steps, 2)
                                  or paths_out.shape[0] > x.shape[0]):
        raise ValidationError(f"paths_out must have shape (K <= N, {n_steps}, 2)")
    c, s = _ou(step_size, friction, temperature)
    half = 0.5 * step_size
    noise = (torch.empty_like(x) if noise_buf is None else noise_buf) if s > 0 else None
    with torch.no_grad():
        for i in range(n_steps):
            v.add_(g, alpha=-half)
            x.add_(v, alpha=half)
            v.mul_(c)
            if noise is not None:
                fill_normal_(noise, generator)
                v.add_(noise, alpha=s)
            x.add_(v, alpha=half)
            grad_fn(x, g)
            v.add_(g, alpha=-half)
            if paths_out is not None:
                paths_out[:, i] = x[: paths_out.shape[0]]
            if on_step is not None:
                on_step(i + 1, x)
    return x


def baoab_stationary_cov(cov: Tensor, step_size: float,
                         temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Exact stationary covariances ``(Cov x, Cov v)`` of BAOAB on ``N(m, cov)``, any gamma > 0.

    Derivation (Leimkuhler and Matthews 2013, harmonic case): per eigen-direction of the
    precision ``A`` (eigenvalue ``a``), the map between two O steps is position Verlet,
    ``M = [[1 - h^2 a / 2, h q], [-h a, 1 - h^2 a / 2]]`` with ``q = 1 - h^2 a / 4``,
    which preserves ``(a / q) x^2 + v^2``; O preserves ``v ~ N(0, T)`` independent of x.
    So at the O point ``x ~ N(0, T q / a)``, ``v ~ N(0, T)``, and half a drift and half a kick
    later (the end of a step) ``Var x = T q / a + h^2 T / 4 = T / a`` (exact),
    ``Var v = T - h a (h T / 2) + (h^2 a^2 / 4)(T / a) = T (1 - h^2 a / 4)``, uncorrelated.
    Hence ``Cov x = T A^-1`` and ``Cov v = T (I - h^2 A / 4)``, for ``h^2 lambda_max(A) < 4``.
    """
    c = torch.as_tensor(cov, dtype=torch.float64)
    a = torch.linalg.inv(c)
    if float(torch.linalg.eigvalsh(a).max()) * step_size**2 >= 4.0:
        raise ValidationError(f"step size {step_size:g} is beyond BAOAB's stability limit "
                              "2 / sqrt(max eig(A))")
    eye = torch.eye(c.shape[0], dtype=torch.float64)
    return temperature * c, temperature * (eye - 0.25 * step_size**2 * a)


# Registered here (kernels.py cannot import this module without a cycle).
SAMPLERS["underdamped"] = underdamped_step
