"""Mass per mode: samples and the exact density split by nearest mode centre.

The cells of the split are the Voronoi cells of the centres, so the exact mass of a
mode is the quadrature of ``p`` over its cell, and a sample's mass is the fraction of
points nearest to it; for ``N`` iid points the counts are multinomial.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import GridDensity, grid_points

__all__ = ["exact_mode_masses", "mixture_centres", "mode_masses", "multinomial_se"]


def _nearest(points: Tensor, centres: Tensor) -> Tensor:
    return torch.cdist(points, centres).argmin(1)


def _centres(centres: Tensor | list) -> Tensor:
    c = torch.as_tensor(centres, dtype=torch.float64)
    if c.ndim != 2 or c.shape[1] != 2 or c.shape[0] < 1:
        raise ValidationError("mode centres must be a (K, 2) array with K >= 1")
    return c


def mode_masses(points: Tensor, centres: Tensor | list) -> Tensor:
    """``(K,)`` fraction of the finite ``points`` (``(N, 2)``) nearest to each centre."""
    c = _centres(centres)
    p = points.detach().to("cpu", torch.float64)
    p = p[torch.isfinite(p).all(1)]
    if p.shape[0] == 0:
        raise ValidationError("no finite points to split between modes")
    counts = torch.bincount(_nearest(p, c), minlength=c.shape[0]).double()
    return counts / p.shape[0]


def exact_mode_masses(gd: GridDensity, centres: Tensor | list) -> Tensor:
    """``(K,)`` exact mass of each centre's Voronoi cell, by quadrature on ``gd``'s grid."""
    c = _centres(centres)
    _, _, pts = grid_points(gd.box, gd.n)
    mass = torch.bincount(_nearest(pts, c), weights=gd.prob.reshape(-1), minlength=c.shape[0])
    return mass / mass.sum()


def multinomial_se(p: Tensor, n: int) -> Tensor:
    """``(K,)`` standard errors ``sqrt(p (1 - p) / n)`` of the fractions of ``n`` iid draws."""
    return torch.sqrt(p * (1.0 - p) / n)


def mixture_centres(target: Target) -> Tensor:
    """``(k, 2)`` component centres of a registry ``mixture`` target."""
    if target.name != "mixture":
        raise ValidationError(f"mode centres are known for the mixture target, not {target.name!r}")
    k, r = int(target.params["k"]), float(target.params["radius"])
    ang = [2.0 * math.pi * j / k for j in range(k)]
    return torch.tensor([(r * math.cos(a), r * math.sin(a)) for a in ang], dtype=torch.float64)
