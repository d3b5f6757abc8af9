"""The drift field -grad E of a target, sampled for drawing as arrows over its contours.

Langevin dynamics moves along ``-grad E`` (plus noise).  Its magnitude spans orders
of magnitude between steep walls and flat plateaus, so the drawn length is
log-scaled: ``length = spacing * log1p(|g| / g_ref) / log1p(g_max / g_ref)`` with
``g_ref`` the median magnitude, and the true magnitude is returned beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.energies import Box, Target, ValidationError
from ebmcore.exact.density import grid_points

__all__ = ["MAX_ARROWS", "DriftField", "drift_field"]

MAX_ARROWS = 64  # arrows per side; more would not read on a plot


@dataclass(frozen=True)
class DriftField:
    """Arrows on an ``arrows x arrows`` grid of the box (float64, CPU, flat in [iy, ix] order)."""

    x: Tensor  # (m,) arrow tails in x
    y: Tensor  # (m,) arrow tails in y
    u: Tensor  # (m,) drawn x component: unit direction of -grad E times the log-scaled length
    v: Tensor  # (m,) drawn y component
    magnitude: Tensor  # (m,) true |grad E| (0 where the gradient is not finite)
    spacing: float  # distance between neighbouring arrows: the longest drawn arrow


def drift_field(target: Target, arrows: int = 20, box: Box | None = None) -> DriftField:
    """Sample ``-grad E`` of ``target`` at the centres of an ``arrows x arrows`` grid.

    Args:
        target: its closed-form gradient is used when it has one, autograd otherwise.
        arrows: arrows per side, in ``[2, MAX_ARROWS]``.
        box: where to draw (default the target's box).
    """
    if not 2 <= arrows <= MAX_ARROWS:
        raise ValidationError(f"arrows per side must be in [2, {MAX_ARROWS}], got {arrows}")
    box = target.box if box is None else box
    _, _, pts = grid_points(box, arrows)
    _, g = target.energy_and_grad(pts)
    g = g.detach().to("cpu", torch.float64)
    ok = torch.isfinite(g).all(1)
    g = torch.where(ok[:, None], g, torch.zeros_like(g))
    mag = g.norm(dim=1)
    x0, x1, y0, y1 = box
    spacing = min(x1 - x0, y1 - y0) / arrows
    moving = mag > 0
    length = torch.zeros_like(mag)
    if bool(moving.any()):
        ref = float(mag[moving].median())
        top = math.log1p(float(mag.max()) / ref)
        length = spacing * torch.log1p(mag / ref) / top
    unit = -g / mag.clamp_min(1e-300)[:, None]
    return DriftField(pts[:, 0], pts[:, 1], unit[:, 0] * length, unit[:, 1] * length, mag,
                      spacing)
