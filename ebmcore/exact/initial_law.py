"""The chains' initial law as cell masses on a grid: where a Fokker–Planck run starts.

The same three starts as :class:`ebmcore.sampling.config.SampleConfig` (uniform over a box,
a Gaussian, one point), written as exact cell masses of the solver's grid so that the
solved law starts where the chains do.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import grid_points
from ebmcore.sampling.config import view_gaussian

if TYPE_CHECKING:  # the config imports this module's function
    from ebmcore.exact.fokker_planck import FlowConfig

__all__ = ["initial_density"]


def initial_density(target: Target, cfg: FlowConfig) -> Tensor:
    """``(n, n)`` cell masses of the initial law ``cfg`` (a FlowConfig) names.

    ``gaussian`` (and ``view``, the Gaussian over ``init_box``) takes the density at the
    cell centres (the midpoint rule, as the stationary state), renormalised to the box;
    ``point`` spreads the point over its four nearest cell centres with bilinear weights,
    which keeps its mean.
    """
    n = cfg.grid
    xs, ys, _ = grid_points(target.box, n)
    if cfg.init == "uniform":
        if cfg.init_box is None:
            return torch.full((n, n), 1.0 / n**2, dtype=torch.float64)
        x0, x1, y0, y1 = target.box
        bx0, bx1, by0, by1 = cfg.init_box
        mass = _overlap(by0, by1, y0, y1, n)[:, None] * _overlap(bx0, bx1, x0, x1, n)[None, :]
        if float(mass.sum()) <= 0:
            raise ValidationError(f"init box {tuple(cfg.init_box)} misses the box {target.box}")
        return mass / mass.sum()
    (px, py), std = (view_gaussian(cfg.init_box or target.box) if cfg.init == "view"
                     else (cfg.init_point, cfg.init_std))
    if cfg.init in ("gaussian", "view"):
        logp = -((xs[None, :] - px) ** 2 + (ys[:, None] - py) ** 2) / (2 * std**2)
        return torch.softmax(logp.reshape(-1), 0).view(n, n)
    x0, x1, y0, y1 = target.box
    if not (x0 <= px <= x1 and y0 <= py <= y1):
        raise ValidationError(f"init point ({px:g}, {py:g}) is outside the box {target.box}")
    wx, wy = _hat_weights(px, x0, x1, n), _hat_weights(py, y0, y1, n)
    return wy[:, None] * wx[None, :]


def _overlap(a: float, b: float, lo: float, hi: float, n: int) -> Tensor:
    """Lengths of ``[a, b]`` within each of the ``n`` cells of ``[lo, hi]``: the cell masses
    of the uniform law on ``[a, b]``, up to its normalisation."""
    edges = torch.linspace(lo, hi, n + 1, dtype=torch.float64)
    return (torch.clamp(edges[1:], max=b) - torch.clamp(edges[:-1], min=a)).clamp(min=0.0)


def _hat_weights(p: float, lo: float, hi: float, n: int) -> Tensor:
    """Linear-interpolation weights of ``p`` on the ``n`` centres (clamped at the walls)."""
    u = min(max((p - lo) / (hi - lo) * n - 0.5, 0.0), n - 1.0)  # in centre index units
    i = min(math.floor(u), n - 2)
    w = torch.zeros(n, dtype=torch.float64)
    w[i], w[i + 1] = i + 1 - u, u - i
    return w
