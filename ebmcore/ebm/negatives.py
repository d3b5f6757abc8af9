"""Negative samples for EBM training: Langevin chains in the model's box, and the grid.

Chains move by the Langevin proposal of :func:`ebmcore.sampling.kernels.sgld_update` at
temperature ``T`` (1 samples ``p_theta``).  ``kernel="mala"`` accepts or rejects each
proposal (exact at any ``eps``; a proposal outside the box has density zero and is
rejected); ``kernel="sgld"`` takes every one and keeps chains in the box by
``boundary``: ``reflect`` (mirror the overshoot) or ``clamp`` (project onto the wall).

The methods differ in where the K steps start: ``short-run`` from uniform noise,
``persistent`` where the same chains stopped, ``replay`` from a buffer of past
negatives (a fraction restarted from noise); ``exact`` uses the grid instead.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from ebmcore.box import Box
from ebmcore.ebm.fused_moves import mala_accept, mala_propose, outside_to_inf, sgld_move
from ebmcore.ebm.input_grad import InputGrad, input_grad_fn
from ebmcore.sampling.kernels import noise_std

__all__ = [
    "BOUNDARIES",
    "KERNELS",
    "NegativeSampler",
    "PersistentSampler",
    "ReplaySampler",
    "ShortRunSampler",
    "grid_samples",
    "grid_weights",
    "keep_in_box",
    "langevin",
]

BOUNDARIES = ("reflect", "clamp")
KERNELS = ("sgld", "mala")


def keep_in_box(x: Tensor, box: Box, boundary: str = "reflect",
                corners: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Bring points ``(N, 2)`` back into ``box`` by ``boundary`` (see :class:`Box`)."""
    box = Box.of(box)
    return box.clamp(x, corners) if boundary == "clamp" else box.reflect(x, corners)


def langevin(
    energy: Callable[[Tensor], Tensor],
    x: Tensor,
    generator: torch.Generator,
    *,
    steps: int,
    step_size: float,
    temperature: float,
    box: Box,
    boundary: str = "reflect",
    kernel: str = "sgld",
) -> Tensor:
    """Run ``steps`` Langevin steps from ``x (N, 2)`` inside ``box``; return ``(N, 2)``, detached.

    ``kernel="sgld"``: unadjusted, walls handled by ``boundary``; the noise for
    all steps is drawn in one call (none at ``temperature = 0``: gradient descent).
    ``kernel="mala"``: the same proposal with a Metropolis accept/reject
    (:func:`ebmcore.sampling.kernels.mala_step`); proposals outside the box are rejected.
    Gradients w.r.t. the model's parameters are not tracked (only w.r.t. ``x``).  The
    points stay on the CPU: the per-point arithmetic is :mod:`ebmcore.ebm.fused_moves`.
    """
    params = [p for p in energy.parameters() if p.requires_grad] if isinstance(
        energy, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        x = x.detach().clone(memory_format=torch.contiguous_format)
        box = Box.of(box)
        walls = (box.xmin, box.ymin, box.xmax, box.ymax)
        fn = input_grad_fn(energy)  # by hand for the MLP: no graph per step
        # one no_grad for all steps where no step needs a graph (autograd's does)
        with torch.no_grad() if fn.graph_free else contextlib.nullcontext():
            if kernel == "mala":
                return _mala(fn, x, generator, steps, step_size, temperature, walls)
            sigma = noise_std(step_size, temperature)
            if sigma > 0:
                xi = torch.randn((steps, *x.shape), generator=generator, dtype=x.dtype).numpy()
            else:  # gradient descent: no draws, a zero move
                xi = np.zeros((steps, *x.shape), dtype=x.numpy().dtype)
            xn, reflect = x.numpy(), boundary != "clamp"
            for k in range(steps):
                sgld_move(xn, fn.grad(x).numpy(), xi[k], step_size, sigma, *walls, reflect)
    finally:
        for p in params:
            p.requires_grad_(True)
    return x


def _mala(fn: InputGrad, x: Tensor, generator: torch.Generator, steps: int,
          step_size: float, temperature: float, walls: tuple[float, float, float, float]
          ) -> Tensor:
    """:func:`ebmcore.sampling.kernels.mala_step` with one call of ``fn`` per step.

    The same draws in the same order (proposal noise, then the uniforms of the test);
    ``E = inf`` outside the box, so such proposals are rejected.  ``x`` is updated in place.
    """
    if steps == 0:
        return x
    sigma = math.sqrt(2.0 * step_size * temperature)
    e, g = (t.clone(memory_format=torch.contiguous_format) for t in fn(x))  # updated in place
    xn, en, gn = x.numpy(), e.numpy(), g.numpy()
    outside_to_inf(xn, en, *walls)
    y = torch.empty_like(x)
    yn = y.numpy()
    xi = torch.randn(x.shape, generator=generator, dtype=x.dtype).numpy()
    mala_propose(xn, gn, xi, step_size, sigma, yn)
    for k in range(steps):
        e_y, g_y = fn(y)
        u = torch.rand(x.shape[:1], generator=generator, dtype=x.dtype).numpy()
        last = k == steps - 1  # the next proposal's noise comes after this test's uniforms
        xi_next = xi if last else torch.randn(
            x.shape, generator=generator, dtype=x.dtype).numpy()
        mala_accept(xn, en, gn, yn, e_y.numpy(), g_y.numpy(), xi, u, step_size, temperature,
                    *walls, xi_next, not last)
        xi = xi_next
    return x


class NegativeSampler:
    """Base class: produce ``(M, 2)`` negatives for one training iteration.

    Subclasses keep whatever state they need (chains, buffer) as tensors in
    :meth:`state_dict`, so that a checkpoint restores them exactly.
    """

    def __init__(self, box: Box, *, steps: int, step_size: float, temperature: float,
                 boundary: str, kernel: str = "sgld") -> None:
        self.box, self.steps, self.step_size = Box.of(box), steps, step_size
        self.temperature, self.boundary, self.kernel = temperature, boundary, kernel

    def _run(self, energy: Callable[[Tensor], Tensor], x: Tensor,
             generator: torch.Generator) -> Tensor:
        return langevin(energy, x, generator, steps=self.steps, step_size=self.step_size,
                        temperature=self.temperature, box=self.box, boundary=self.boundary,
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
        return self._run(energy, self.box.uniform(n, generator), generator)


class PersistentSampler(NegativeSampler):
    """Persistent contrastive divergence: ``n`` chains continued across iterations."""

    def __init__(self, box: Box, n_chains: int, generator: torch.Generator, **kw) -> None:
        super().__init__(box, **kw)
        self.chains = self.box.uniform(n_chains, generator)  # (C, 2)

    def sample(self, energy, n, generator):
        del n  # every chain moves every iteration
        self.chains = self._run(energy, self.chains, generator)
        return self.chains

    def state_dict(self):
        return {"chains": self.chains.clone()}

    def load_state_dict(self, state):
        self.chains = state["chains"].clone()


class ReplaySampler(NegativeSampler):
    """A replay buffer of past negatives; a fraction ``restart`` restarts from noise.

    ``age[i]`` counts the Langevin runs entry ``i`` went through since it was last drawn
    from noise (0: still the initial noise): how long its chain has mixed, for drawing.
    """

    def __init__(self, box: Box, size: int, restart: float, generator: torch.Generator,
                 **kw) -> None:
        super().__init__(box, **kw)
        self.restart = restart
        self.buffer = self.box.uniform(size, generator)  # (B, 2)
        self.age = torch.zeros(size, dtype=torch.int32)  # (B,) runs since noise

    def sample(self, energy, n, generator):
        idx = torch.randint(self.buffer.shape[0], (n,), generator=generator)
        fresh = torch.rand(n, generator=generator) < self.restart
        x = torch.where(fresh[:, None], self.box.uniform(n, generator), self.buffer[idx])
        age = torch.where(fresh, 0, self.age[idx]) + 1
        x = self._run(energy, x, generator)
        # an index drawn twice: on CPU the last write wins, in both tensors alike
        self.buffer[idx] = x
        self.age[idx] = age
        return x

    def state_dict(self):
        return {"buffer": self.buffer.clone(), "age": self.age.clone()}

    def load_state_dict(self, state):
        self.buffer = state["buffer"].clone()
        age = state.get("age")  # checkpoints before ages: count from now
        if age is None:
            self.age = torch.zeros(self.buffer.shape[0], dtype=torch.int32)
        elif (not isinstance(age, torch.Tensor) or age.shape != self.buffer.shape[:1]
              or age.dtype != torch.int32 or bool((age < 0).any())):
            raise ValueError("replay buffer ages")
        else:
            self.age = age.clone()


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

