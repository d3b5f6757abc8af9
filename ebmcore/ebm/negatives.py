"""Negative samples for EBM training: Langevin chains in the model's box, and the grid.

Every MCMC method moves chains with the Langevin proposal::

    x <- x - eps * grad_x E(x) + noise * xi,    xi ~ N(0, I),

with ``noise = sqrt(2 eps)`` unless the user decouples it.  The default kernel,
``mala``, accepts or rejects each proposal with the Metropolis-Hastings ratio:
the chains are then exactly invariant for ``p_theta`` at any ``eps``, and a
proposal that leaves the box (where the density is zero) is simply rejected.
``sgld`` takes every proposal (unadjusted Langevin): biased at finite ``eps``,
and unstable once the model grows steeper than ``2 / eps`` somewhere, which in
training feeds on itself (measured: it made persistent training on ``rings``
and replay on ``moons`` blow up, where MALA trains fine).  A decoupled noise
scale samples ``exp(-E / T)`` with ``T = noise**2 / (2 eps)``, not ``p_theta``: the
training loss then fits a *tempered* density and ``p_theta`` itself comes out
sharper (T < 1) or flatter (T > 1) than the data.

The model's density lives on a bounded box and is zero outside, so chains must
stay inside.  MALA rejects proposals outside.  For SGLD, ``boundary="reflect"``
(the default) folds a proposal that left the box back across the wall,
mirror-fashion (reflected Langevin, whose stationary law is the density
restricted to the box); ``"clamp"`` projects it onto the wall, which piles a
little mass on the boundary.

The methods differ in where the K steps start:

- ``short-run``: from uniform noise over the box, every iteration;
- ``persistent`` (PCD): from where the same chains stopped last iteration;
- ``replay``: from a batch drawn out of a buffer of past negatives, of which a
  fraction ``restart`` is reset to uniform noise first;
- ``exact``: no chains; the negative phase ``E_{p_theta}[grad E]`` is a weighted
  sum over the cells of a grid (:func:`grid_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ebmcore.energies import Box
from ebmcore.sampling.kernels import init_state, mala_step

__all__ = [
    "BOUNDARIES",
    "KERNELS",
    "NegativeSampler",
    "PersistentSampler",
    "ReplaySampler",
    "ShortRunSampler",
    "default_noise",
    "grid_samples",
    "grid_weights",
    "keep_in_box",
    "langevin",
    "uniform_in_box",
]

BOUNDARIES = ("reflect", "clamp")
KERNELS = ("sgld", "mala")


def uniform_in_box(n: int, box: Box, generator: torch.Generator) -> Tensor:
    """``(n, 2)`` float32 points uniform over ``box``."""
    x0, x1, y0, y1 = box
    u = torch.rand(n, 2, generator=generator)
    lo = torch.tensor([x0, y0], dtype=u.dtype)
    return lo + u * torch.tensor([x1 - x0, y1 - y0], dtype=u.dtype)


def _corners(box: Box, like: Tensor) -> tuple[Tensor, Tensor]:
    x0, x1, y0, y1 = box
    return (torch.tensor([x0, y0], dtype=like.dtype, device=like.device),
            torch.tensor([x1, y1], dtype=like.dtype, device=like.device))


def keep_in_box(x: Tensor, box: Box, boundary: str = "reflect",
                corners: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Bring points ``(N, 2)`` back into ``box``: mirror reflection or clamping.

    Reflection is periodic with period twice the box width, so a step that
    overshoots by more than a whole box width still lands inside.  ``corners``
    (``(lo, hi)``, each ``(2,)``) may be passed precomputed.
    """
    lo, hi = corners if corners is not None else _corners(box, x)
    if boundary == "clamp":
        return torch.maximum(torch.minimum(x, hi), lo)
    width = hi - lo
    t = torch.remainder(x - lo, 2 * width)
    return lo + width - (t - width).abs()


def langevin(
    energy: Callable[[Tensor], Tensor],
    x: Tensor,
    generator: torch.Generator,
    *,
    steps: int,
    step_size: float,
    noise: float,
    box: Box,
    boundary: str = "reflect",
    kernel: str = "sgld",
) -> Tensor:
    """Run ``steps`` Langevin steps from ``x (N, 2)`` inside ``box``; return ``(N, 2)``, detached.

    ``kernel="sgld"``: unadjusted, walls handled by ``boundary``; the noise for
    all steps is drawn in one call.  ``kernel="mala"``: the same proposal with a
    Metropolis accept/reject (:func:`ebmcore.sampling.kernels.mala_step`) at temperature
    ``noise^2 / (2 eps)``; a proposal outside the box has density zero and is
    rejected, so chains stay inside without any wall rule and sample exactly
    ``p_theta`` restricted to the box.  Gradients w.r.t. the model's parameters
    are not tracked (only w.r.t. ``x``).
    """
    params = [p for p in energy.parameters() if p.requires_grad] if isinstance(
        energy, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        x = x.detach()
        if kernel == "mala":
            return _mala(energy, x, generator, steps, step_size, noise, box)
        xi = torch.randn((steps, *x.shape), generator=generator, dtype=x.dtype)
        corners = _corners(box, x)
        for k in range(steps):
            with torch.enable_grad():
                xr = x.requires_grad_(True)
                (g,) = torch.autograd.grad(energy(xr).sum(), xr)
            x = keep_in_box(x.detach() - step_size * g + noise * xi[k], box, boundary, corners)
    finally:
        for p in params:
            p.requires_grad_(True)
    return x.detach()


def _mala(energy, x: Tensor, generator: torch.Generator, steps: int, step_size: float,
          noise: float, box: Box) -> Tensor:
    temperature = noise**2 / (2.0 * step_size)
    x0, x1, y0, y1 = box

    def boxed(z: Tensor) -> Tensor:
        inside = (z[:, 0] >= x0) & (z[:, 0] <= x1) & (z[:, 1] >= y0) & (z[:, 1] <= y1)
        e = energy(z)
        return torch.where(inside, e, torch.full_like(e, math.inf))

    state = init_state(boxed, x)
    for _ in range(steps):
        state, _ = mala_step(boxed, state, generator, step_size=step_size,
                             temperature=temperature)
    return state.x.detach()


class NegativeSampler:
    """Base class: produce ``(M, 2)`` negatives for one training iteration.

    Subclasses keep whatever state they need (chains, buffer) as tensors in
    :meth:`state_dict`, so that a checkpoint restores them exactly.
    """

    def __init__(self, box: Box, *, steps: int, step_size: float, noise: float,
                 boundary: str, kernel: str = "sgld") -> None:
        self.box, self.steps, self.step_size = box, steps, step_size
        self.noise, self.boundary, self.kernel = noise, boundary, kernel

    def _run(self, energy: Callable[[Tensor], Tensor], x: Tensor,
             generator: torch.Generator) -> Tensor:
        return langevin(energy, x, generator, steps=self.steps, step_size=self.step_size,
                        noise=self.noise, box=self.box, boundary=self.boundary,
                        kernel=self.kernel)

    def sample(self, energy: Callable[[Tensor], Tensor], n: int,
               generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        del state


class ShortRunSampler(NegativeSampler):
    """K steps from fresh uniform noise each iteration (no memory)."""

    def sample(self, energy, n, generator):
        return self._run(energy, uniform_in_box(n, self.box, generator), generator)


class PersistentSampler(NegativeSampler):
    """Persistent contrastive divergence: ``n`` chains continued across iterations."""

    def __init__(self, box: Box, n_chains: int, generator: torch.Generator, **kw) -> None:
        super().__init__(box, **kw)
        self.chains = uniform_in_box(n_chains, box, generator)  # (C, 2)

    def sample(self, energy, n, generator):
        del n  # every chain moves every iteration
        self.chains = self._run(energy, self.chains, generator)
        return self.chains

    def state_dict(self):
        return {"chains": self.chains.clone()}

    def load_state_dict(self, state):
        self.chains = state["chains"].clone()


class ReplaySampler(NegativeSampler):
    """A replay buffer of past negatives; a fraction ``restart`` restarts from noise."""

    def __init__(self, box: Box, size: int, restart: float, generator: torch.Generator,
                 **kw) -> None:
        super().__init__(box, **kw)
        self.restart = restart
        self.buffer = uniform_in_box(size, box, generator)  # (B, 2)

    def sample(self, energy, n, generator):
        idx = torch.randint(self.buffer.shape[0], (n,), generator=generator)
        fresh = torch.rand(n, generator=generator) < self.restart
        x = torch.where(fresh[:, None], uniform_in_box(n, self.box, generator), self.buffer[idx])
        x = self._run(energy, x, generator)
        self.buffer[idx] = x
        return x

    def state_dict(self):
        return {"buffer": self.buffer.clone()}

    def load_state_dict(self, state):
        self.buffer = state["buffer"].clone()


def grid_weights(energies: Tensor) -> Tensor:
    """``(G,)`` normalised weights ``softmax(-E)`` of grid cells (detached).

    With them, ``sum_i w_i grad E(g_i)`` is the exact ``E_{p_theta}[grad E]`` of
    the grid's midpoint rule: ``grad log Z_grid = -sum_i w_i grad E(g_i)``.
    """
    return torch.softmax(-energies.detach(), dim=0)


def grid_samples(points: Tensor, weights: Tensor, cell: tuple[float, float], n: int,
                 generator: torch.Generator) -> Tensor:
    """``(n, 2)`` exact draws from the piecewise-constant grid density.

    Pick cells with probability ``weights`` (``(G,)``, over cell centres
    ``points (G, 2)``), then a uniform point within the cell of size ``cell``.
    """
    idx = torch.multinomial(weights.double(), n, replacement=True, generator=generator)
    jitter = torch.rand(n, 2, generator=generator, dtype=points.dtype) - 0.5
    return points[idx] + jitter * torch.tensor(cell, dtype=points.dtype)


def default_noise(step_size: float) -> float:
    """The Langevin noise scale ``sqrt(2 eps)`` that samples ``p_theta`` itself."""
    return math.sqrt(2.0 * step_size)
