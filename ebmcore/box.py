"""The axis-aligned 2D box every target, model and chain lives in.

A :class:`Box` is a named tuple ``(xmin, xmax, ymin, ymax)``, so it unpacks and
compares like the plain tuples that targets and checkpoints store, and it carries
the geometry: grow it (:meth:`Box.pad`), test points (:meth:`Box.contains`), bring
points back in (:meth:`Box.clamp`, :meth:`Box.reflect`) and draw uniform points
(:meth:`Box.uniform`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Box"]


class Box(NamedTuple):
    """A view box ``(xmin, xmax, ymin, ymax)``."""

    xmin: float
    xmax: float
    ymin: float
    ymax: float

    @classmethod
    def of(cls, box: Sequence[float]) -> Box:
        """The box of any 4-sequence (a tuple, a list from a checkpoint, a Box)."""
        return box if isinstance(box, Box) else cls(*(float(v) for v in box))

    @property
    def area(self) -> float:
        return (self.xmax - self.xmin) * (self.ymax - self.ymin)

    def pad(self, frac: float) -> Box:
        """Grown by ``frac`` of its width and height on each side."""
        dx, dy = (self.xmax - self.xmin) * frac, (self.ymax - self.ymin) * frac
        return Box(self.xmin - dx, self.xmax + dx, self.ymin - dy, self.ymax + dy)

    def corners(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(lo, hi)``, each ``(2,)``, in the dtype and device of ``like``."""
        kw = {"dtype": like.dtype, "device": like.device}
        return (torch.tensor([self.xmin, self.ymin], **kw),
                torch.tensor([self.xmax, self.ymax], **kw))

    def contains(self, x: Tensor) -> Tensor:
        """``(N,)`` bool: which points ``(N, 2)`` lie in the box (walls included)."""
        return ((x[:, 0] >= self.xmin) & (x[:, 0] <= self.xmax)
                & (x[:, 1] >= self.ymin) & (x[:, 1] <= self.ymax))

    def clamp(self, x: Tensor, corners: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Points ``(N, 2)`` projected onto the box."""
        lo, hi = corners if corners is not None else self.corners(x)
        return torch.maximum(torch.minimum(x, hi), lo)

    def reflect(self, x: Tensor, corners: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Points ``(N, 2)`` folded back across the walls, mirror-fashion.

        Periodic with period twice the box width, so a point more than a whole
        width outside still lands inside.
        """
        lo, hi = corners if corners is not None else self.corners(x)
        width = hi - lo
        t = torch.remainder(x - lo, 2 * width)
        return lo + width - (t - width).abs()

    def uniform(self, n: int, generator: torch.Generator,
                dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
                ) -> Tensor:
        """``(n, 2)`` points uniform over the box."""
        u = torch.rand(n, 2, generator=generator, dtype=dtype, device=device)
        size = torch.tensor([self.xmax - self.xmin, self.ymax - self.ymin], dtype=dtype,
                            device=device)
        return self.corners(u)[0] + u * size
