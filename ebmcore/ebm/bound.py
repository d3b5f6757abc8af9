"""The variational lower bound on log Z of a model that lives on a box.

For any flow ``q`` of :mod:`ebmcore.ebm.flows`, ``bound = E_q[w]`` with per-draw log
weights ``w = -E(x) - K(v) - log q(x, v) - log Z_K`` satisfies ``bound <= log Z``,
and ``log E_q[exp(w)] = log Z`` exactly; the gap ``log Z - bound`` is
``KL(q(x, v) || p(x) exp(-K(v)) / Z_K)``.

The model domain
----------------
As in :mod:`ebmcore.ebm.training`, the model's density is ``exp(-E) / Z`` on its box
and zero outside; ``Z`` is the quadrature over the box.  The flows run in
unconstrained coordinates ``z`` in ``R^2`` and reach the box through the bijection
``x = c + s tanh(z)`` (:class:`BoxMap`).  The model pulled back to ``z`` has energy
``E(x(z)) - log |det dx/dz|`` and, by the change of variables, exactly the same
normaliser ``Z`` as the model on its box.  So every draw lands inside the box,
the bound is a bound on the very ``log Z`` the exact metrics report, and KL
divergences (hence the gap) are the same in ``z`` and in ``x``.  All reported
terms are in x-space: ``entropy`` is that of ``(x_T, v)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebmcore.ebm.flows import FlowSample, HamiltonianFlow, LangevinFlow
from ebmcore.energies import Box, Energy

__all__ = ["BoundEstimate", "BoxMap", "estimate_bound"]


class BoxMap:
    """The bijection ``x = c + s tanh(z)`` from ``R^2`` onto the open box (per coordinate)."""

    def __init__(self, box: Box) -> None:
        x0, x1, y0, y1 = (float(v) for v in box)
        self.centre = torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2])
        self.half = torch.tensor([(x1 - x0) / 2, (y1 - y0) / 2])

    def to_box(self, z: Tensor) -> Tensor:
        """``(n, 2)`` points in the box."""
        return self.centre.to(z) + self.half.to(z) * torch.tanh(z)

    def from_box(self, x: Tensor, margin: float = 1e-4) -> Tensor:
        """``(n, 2)`` the inverse, with points on (or beyond) the walls pulled in by ``margin``."""
        u = ((x - self.centre.to(x)) / self.half.to(x)).clamp(-1 + margin, 1 - margin)
        return torch.atanh(u)

    def log_det(self, z: Tensor) -> Tensor:
        """``(n,)`` ``log |det dx/dz|``; ``log sech^2 z = 2 (log 2 - |z| - softplus(-2|z|))``."""
        a = z.abs()
        log_sech2 = 2.0 * (math.log(2.0) - a - nn.functional.softplus(-2.0 * a))
        return (log_sech2 + self.half.to(z).log()).sum(1)

    def pullback(self, energy: Energy) -> Energy:
        """The energy of ``z`` whose density is the model's on the box, same ``Z``."""
        return lambda z: energy(self.to_box(z)) - self.log_det(z)


@dataclass(frozen=True)
class BoundEstimate:
    """A Monte Carlo estimate of the bound on ``log Z`` and its terms (x-space, nats)."""

    bound: float  # E_q[-E(x) - K(v)] + H(q) - log Z_K
    se: float  # Monte Carlo standard error of ``bound``
    energy: float  # E_q[-E(x)]
    kinetic: float  # E_q[K(v)]
    entropy: float  # H(q) of (x_T, v), estimated as E_q[-log q]
    log_norm: float  # log Z_K, the Gaussian normaliser of the auxiliary variables
    n: int  # draws used


def _terms(sample: FlowSample, box_map: BoxMap | None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-draw ``-E(x)``, ``-log q`` in x-space, and the log weights (all ``(n,)``)."""
    log_det = box_map.log_det(sample.x) if box_map is not None else torch.zeros_like(sample.log_q)
    return -(sample.energy + log_det), log_det - sample.log_q, sample.log_weights


@torch.no_grad()
def estimate_bound(flow: LangevinFlow | HamiltonianFlow, energy: Energy, n: int,
                   generator: torch.Generator, box_map: BoxMap | None = None) -> BoundEstimate:
    """Estimate the bound with ``n`` fresh draws (no gradients kept).

    Args:
        flow: the sampler, in z-space when ``box_map`` is given, else in x-space.
        energy: the model ``(N, 2) -> (N,)`` in x-space.
        box_map: the model's box; ``None`` for an energy on all of ``R^2``.
    """
    e_z = box_map.pullback(energy) if box_map is not None else energy
    s = flow(e_z, n, generator)
    neg_e, ent, w = (t.double() for t in _terms(s, box_map))
    se = float(w.std() / math.sqrt(n)) if n > 1 else math.inf
    return BoundEstimate(float(w.mean()), se, float(neg_e.mean()), float(s.kinetic.mean()),
                         float(ent.mean()), float(s.log_norm), n)
