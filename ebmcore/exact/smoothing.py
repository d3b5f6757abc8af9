"""A target smoothed by a Gaussian, ``p_sigma = p * N(0, sigma^2 I)``, exactly on a grid.

The convolution is the quadrature of ``p`` (midpoint rule on its grid) against the
Gaussian kernel, done in the log domain and separably (one axis, then the other):
``n^2 m`` operations per axis for an ``m x m`` evaluation grid.  An FFT would be
cheaper but its rounding floor (about 1e-16 of the peak density) swamps ``p_sigma``
in the tails, where chains start; the log-domain sums keep full relative precision
everywhere.

The gradient comes from the same sums through Tweedie's formula,
``grad log p_sigma(x) = (m(x) - x) / sigma^2`` with ``m(x) = E[x0 | x0 + sigma xi = x]``,
the posterior mean of the clean point.  Between grid nodes ``log p_sigma`` and ``m`` are
interpolated bilinearly (independently: both are O(h^2) accurate, and the dynamics use only
the gradient).  Outside the evaluation grid (``PAD`` sigma beyond the density's box, where
``p_sigma`` is negligible) ``m`` is held at its border value: the gradient keeps Tweedie's
form and pulls chains back, and the energy is continued so that its outward derivative is
the gradient's outward component.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ebmcore.energies import Box, ValidationError
from ebmcore.exact.density import GridDensity

__all__ = ["PAD", "SmoothedGrid", "smooth"]

PAD = 4.0  # evaluation grid = density box grown by PAD sigma per side (p_sigma's bulk)
_CHUNK = 32  # evaluation columns per block: bounds memory at n^2 * 32 doubles


@dataclass(frozen=True, eq=False)
class SmoothedGrid:
    """``log p_sigma`` and the posterior mean ``m`` tabulated on an ``m x m`` grid."""

    sigma: float  # width of the Gaussian smoothing
    box: Box  # evaluation grid box (the density's box padded by PAD sigma)
    xs: Tensor  # (m,) float64 node abscissae (first and last on the box edges)
    ys: Tensor  # (m,) float64 node ordinates
    log_prob: Tensor  # (m, m) float64 log p_sigma at the nodes, indexed [iy, ix]
    denoised: Tensor  # (m, m, 2) float64 posterior mean E[x0 | x] at the nodes
    _cache: dict = field(default_factory=dict, repr=False)  # (dtype, device) -> channels

    def _channels(self, like: Tensor) -> Tensor:
        key = (like.dtype, like.device)
        if key not in self._cache:
            ch = torch.cat([self.log_prob[None], self.denoised.permute(2, 0, 1)])
            self._cache[key] = ch[None].to(like.device, like.dtype)  # (1, 3, m, m)
        return self._cache[key]

    def _lookup(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Bilinear ``log p_sigma``, ``m`` at ``x`` (N, 2), and ``x`` clamped to the grid."""
        x0, x1, y0, y1 = self.box
        lo = torch.tensor([x0, y0], dtype=x.dtype, device=x.device)
        hi = torch.tensor([x1, y1], dtype=x.dtype, device=x.device)
        xc = torch.minimum(torch.maximum(x, lo), hi)
        u = 2.0 * (xc - lo) / (hi - lo) - 1.0  # align_corners=True: -1 and 1 are edge nodes
        out = F.grid_sample(self._channels(x), u[None, :, None, :], mode="bilinear",
                            padding_mode="border", align_corners=True)[0, :, :, 0]
        return out[0], out[1:].T, xc

    def energy(self, x: Tensor) -> Tensor:
        """``-log p_sigma(x)`` ``(N,)``; beyond the grid continued along ``grad``."""
        logp, m, xc = self._lookup(x)
        far = ((x - m).square().sum(1) - (xc - m).square().sum(1)) / (2.0 * self.sigma**2)
        return far - logp

    def grad(self, x: Tensor) -> Tensor:
        """``-grad log p_sigma(x) = (x - m(x)) / sigma^2`` ``(N, 2)``."""
        _, m, _ = self._lookup(x)
        return (x - m) / self.sigma**2


def _log_kernel(d: Tensor, sigma: float) -> Tensor:
    return -0.5 * (d / sigma) ** 2 - 0.5 * math.log(2.0 * math.pi * sigma * sigma)


def _lse_weights(s: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``logsumexp`` over ``dim`` and the normalised weights, from one ``exp`` (in place)."""
    top = s.amax(dim, keepdim=True).nan_to_num(0.0, neginf=0.0)
    w = s.sub_(top).exp_()
    z = w.sum(dim, keepdim=True)
    return (z.log() + top).squeeze(dim), w.div_(z)


def smooth(gd: GridDensity, sigma: float, nodes: int | None = None) -> SmoothedGrid:
    """Tabulate ``p * N(0, sigma^2 I)`` for the density ``gd``.

    Args:
        gd: the exact density (its cells carry all but a negligible part of the mass).
        sigma: smoothing width; at least two of ``gd``'s cells, so that the midpoint rule
            resolves the kernel.
        nodes: evaluation nodes per side; default about 4 per sigma, in [64, 512].
    """
    x0, x1, y0, y1 = gd.box
    cell = max((x1 - x0), (y1 - y0)) / gd.n
    if not (math.isfinite(sigma) and sigma >= 2.0 * cell):
        raise ValidationError(f"smoothing width {sigma:g} is below two grid cells ({2 * cell:.3g}):"
                              " use a larger sigma or fewer levels")
    box = (x0 - PAD * sigma, x1 + PAD * sigma, y0 - PAD * sigma, y1 + PAD * sigma)
    if nodes is None:
        span = max(box[1] - box[0], box[3] - box[2])
        nodes = int(min(512, max(64, math.ceil(4.0 * span / sigma))))
    ex = torch.linspace(box[0], box[1], nodes, dtype=torch.float64)
    ey = torch.linspace(box[2], box[3], nodes, dtype=torch.float64)
    lw = gd.log_prob + math.log(gd.cell_area)  # (n, n) log cell masses, [iy, ix]
    # Along x: for every clean row j and evaluation abscissa a.
    l1 = torch.empty(gd.n, nodes, dtype=torch.float64)
    m1 = torch.empty(gd.n, nodes, dtype=torch.float64)
    for a in range(0, nodes, _CHUNK):
        s = lw[:, :, None] + _log_kernel(ex[None, a:a + _CHUNK] - gd.xs[:, None], sigma)[None]
        l1[:, a:a + _CHUNK], w = _lse_weights(s, 1)
        m1[:, a:a + _CHUNK] = torch.einsum("jia,i->ja", w, gd.xs)
    m1 = m1.nan_to_num(0.0)  # rows without mass: NaN means, weighted by 0 below
    # Along y: for every evaluation ordinate b.
    logp = torch.empty(nodes, nodes, dtype=torch.float64)
    den = torch.empty(nodes, nodes, 2, dtype=torch.float64)
    for b in range(0, nodes, _CHUNK):
        s = l1[None] + _log_kernel(ey[b:b + _CHUNK, None] - gd.ys[None, :], sigma)[:, :, None]
        logp[b:b + _CHUNK], w = _lse_weights(s, 1)  # w: posterior weights of the clean rows
        den[b:b + _CHUNK, :, 0] = torch.einsum("bja,ja->ba", w, m1)
        den[b:b + _CHUNK, :, 1] = torch.einsum("bja,j->ba", w, gd.ys)
    return SmoothedGrid(float(sigma), box, ex, ey, logp, den)
