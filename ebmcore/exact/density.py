"""Exact ground truth in 2D: the normalised density on a grid, by quadrature.

Everything here is deterministic.  A density ``p(x) = exp(-E(x)) / Z`` on a box
is tabulated at the centres of an ``n x n`` grid of cells (the midpoint rule),
which makes log Z, the moments, the entropy and KL divergences exact up to a
quadrature error that we estimate by comparing two resolutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn

from ebmcore.energies import Box, Energy, ValidationError

__all__ = [
    "MAX_GRID",
    "Discrepancy",
    "GridDensity",
    "discrepancy",
    "grid_points",
    "kl_divergence",
    "quadrature",
    "sgld_stationary_cov",
]

MAX_GRID = 2048  # largest grid side we accept (4M energy evaluations)
_CHUNK = 65_536  # energy evaluations per batch, bounds memory for MLP energies


def grid_points(
    box: Box, n: int, dtype: torch.dtype = torch.float64, device=None
) -> tuple[Tensor, Tensor, Tensor]:
    """Cell centres of an ``n x n`` grid over ``box``.

    Returns:
        ``xs (n,)``, ``ys (n,)`` and ``points (n*n, 2)`` ordered so that
        ``points.view(n, n, 2)[iy, ix] == (xs[ix], ys[iy])``.
    """
    x0, x1, y0, y1 = box
    hx, hy = (x1 - x0) / n, (y1 - y0) / n
    xs = torch.linspace(x0 + hx / 2, x1 - hx / 2, n, dtype=dtype, device=device)
    ys = torch.linspace(y0 + hy / 2, y1 - hy / 2, n, dtype=dtype, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return xs, ys, torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def _check_box(box: Box) -> None:
    x0, x1, y0, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or x0 >= x1 or y0 >= y1:
        raise ValidationError(f"invalid box {box}: need finite xmin < xmax and ymin < ymax")


def _energy_dtype(energy: Energy) -> torch.dtype:
    if isinstance(energy, nn.Module):
        p = next(energy.parameters(), None)
        if p is not None:
            return p.dtype
    return torch.float64


def _energies_on_grid(energy: Energy, box: Box, n: int) -> Tensor:
    dtype = _energy_dtype(energy)
    device = None
    if isinstance(energy, nn.Module):
        p = next(energy.parameters(), None)
        device = p.device if p is not None else None
    _, _, pts = grid_points(box, n, dtype=dtype, device=device)
    with torch.no_grad():
        e = torch.cat([energy(c) for c in pts.split(_CHUNK)])
    return e.detach().to(device="cpu", dtype=torch.float64).view(n, n)


def _log_z(e: Tensor, area: float) -> float:
    return float(torch.logsumexp(-e.reshape(-1), 0)) + math.log(area)


@dataclass(frozen=True, eq=False)
class GridDensity:
    """A normalised density tabulated at the cell centres of a grid.

    ``log_prob[iy, ix]`` is ``log p(xs[ix], ys[iy])``: rows are y, as Plotly's
    contour ``z`` expects.
    """

    box: Box  # quadrature domain (xmin, xmax, ymin, ymax)
    n: int  # cells per side
    xs: Tensor  # (n,) float64 cell centres in x
    ys: Tensor  # (n,) float64 cell centres in y
    log_prob: Tensor  # (n, n) float64 normalised log density, indexed [iy, ix]
    log_z: float  # log of the integral of exp(-E) over the box
    log_z_err: float  # |log Z(n) - log Z(n/2)|, a conservative error estimate

    @property
    def cell_area(self) -> float:
        x0, x1, y0, y1 = self.box
        return (x1 - x0) * (y1 - y0) / self.n**2

    @cached_property
    def density(self) -> Tensor:
        """``(n, n)`` density values ``p(x)`` at cell centres."""
        return self.log_prob.exp()

    @cached_property
    def prob(self) -> Tensor:
        """``(n, n)`` probability mass per cell; sums to 1."""
        return self.density * self.cell_area

    @cached_property
    def mean(self) -> Tensor:
        """``(2,)`` exact mean."""
        p = self.prob
        return torch.stack([(p.sum(0) * self.xs).sum(), (p.sum(1) * self.ys).sum()])

    @cached_property
    def cov(self) -> Tensor:
        """``(2, 2)`` exact covariance."""
        p, (mx, my) = self.prob, self.mean
        dx, dy = self.xs - mx, self.ys - my
        vxx = (p.sum(0) * dx**2).sum()
        vyy = (p.sum(1) * dy**2).sum()
        vxy = (p * dy[:, None] * dx[None, :]).sum()
        return torch.stack([torch.stack([vxx, vxy]), torch.stack([vxy, vyy])])

    @property
    def marginal_x(self) -> Tensor:
        """``(n,)`` exact marginal density of x at ``xs``."""
        return self.prob.sum(0) / ((self.box[1] - self.box[0]) / self.n)

    @property
    def marginal_y(self) -> Tensor:
        """``(n,)`` exact marginal density of y at ``ys``."""
        return self.prob.sum(1) / ((self.box[3] - self.box[2]) / self.n)

    @cached_property
    def neg_entropy(self) -> float:
        """``E_p[log p]``: the best mean log-likelihood any sampler can show on average."""
        p = self.prob
        return float(torch.where(p > 0, p * self.log_prob, torch.zeros_like(p)).sum())

    def nll(self, energy: Energy, points: Tensor) -> Tensor:
        """``(N,)`` exact negative log-likelihood ``E(x) + log Z``; ``+inf`` outside the box."""
        with torch.no_grad():
            e = energy(points).detach().to(torch.float64).cpu()
        x0, x1, y0, y1 = self.box
        p = points.detach().to(torch.float64).cpu()
        inside = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
        return torch.where(inside, e + self.log_z, torch.full_like(e, math.inf))


def quadrature(energy: Energy, box: Box, n: int = 256) -> GridDensity:
    """Normalise ``exp(-energy)`` on ``box`` with the midpoint rule on ``n x n`` cells.

    The error estimate compares with the same rule on ``n/2`` cells (the
    coarser grid's error dominates, so the estimate is conservative).

    Raises:
        ValidationError: bad box or grid size, or an energy that is not finite
            somewhere on the grid or whose exp(-E) overflows.
    """
    _check_box(box)
    if not 8 <= n <= MAX_GRID or n % 2:
        raise ValidationError(f"grid size must be an even number in [8, {MAX_GRID}], got {n}")
    e = _energies_on_grid(energy, box, n)
    if e.shape != (n, n):
        raise ValidationError("energy must map (N, 2) points to (N,) energies")
    bad = ~torch.isfinite(e) & ~(e == math.inf)  # +inf is a legitimate zero density
    if bad.any() or torch.isinf(e).all():
        raise ValidationError("energy is not finite on the grid (NaN, -inf, or +inf everywhere)")
    if float(e.min()) < -700.0:
        raise ValidationError(
            f"energy reaches {float(e.min()):.3g} on the box: exp(-E) overflows, "
            "the density is not normalisable in floating point"
        )
    x0, x1, y0, y1 = box
    area = (x1 - x0) * (y1 - y0) / n**2
    log_z = _log_z(e, area)
    # Coarse grid: every other centre is not a coarse centre, so re-evaluate.
    coarse = _energies_on_grid(energy, box, n // 2)
    log_z_err = abs(log_z - _log_z(coarse, area * 4))
    xs, ys, _ = grid_points(box, n)
    return GridDensity(box, n, xs, ys, -e - log_z, log_z, log_z_err)


def kl_divergence(p: GridDensity, q: GridDensity) -> float:
    """``KL(p || q)`` in nats for two densities on the same grid (``inf`` if q has holes)."""
    if p.box != q.box or p.n != q.n:
        raise ValidationError("KL needs two densities on the same grid")
    mass = p.prob
    terms = torch.where(mass > 0, mass * (p.log_prob - q.log_prob), torch.zeros_like(mass))
    return float(terms.sum())


@dataclass(frozen=True)
class Discrepancy:
    """Total variation between a sample's histogram and the exact bin masses."""

    tv: float  # 0.5 * sum_b |count_b / N - P_b|, bins over the box plus one "outside" bin
    floor: float  # E[tv] for N exact iid samples (De Moivre's binomial mean deviation)
    n: int  # number of finite samples used
    bins: int  # bins per side

    @property
    def excess(self) -> float:
        """``tv / floor``: about 1 for exact samples, larger for biased ones."""
        return self.tv / self.floor if self.floor > 0 else math.inf


def _binomial_mean_abs_dev(n: int, p: Tensor) -> Tensor:
    """``E|X/n - p|`` for ``X ~ Binomial(n, p)``, exactly (De Moivre, 1730).

    ``E|X - np| = 2 (m+1) C(n, m+1) p^(m+1) (1-p)^(n-m)`` with ``m = floor(n p)``.
    """
    p = p.clamp(0.0, 1.0)
    m = torch.floor(n * p)
    inner = (p > 0) & (p < 1)
    ps, qs = p.clamp(1e-300, 1 - 1e-16), (1 - p).clamp(1e-300, 1.0)
    log_c = torch.lgamma(torch.tensor(n + 1.0)) - torch.lgamma(m + 2) - torch.lgamma(n - m)
    log_mad = (
        math.log(2) + torch.log(m + 1) + log_c + (m + 1) * torch.log(ps) + (n - m) * torch.log(qs)
    )
    return torch.where(inner, log_mad.exp() / n, torch.zeros_like(p))


def discrepancy(samples: Tensor, gd: GridDensity, bins: int = 32) -> Discrepancy:
    """Compare samples with the exact density on ``bins x bins`` cells over the box.

    The exact bin masses aggregate the quadrature cells (``gd.n`` must be a
    multiple of ``bins``).  By linearity of expectation, ``E[tv]`` for ``N`` iid
    exact samples is half the sum of the bins' binomial mean deviations: that is
    the ``floor``.  Autocorrelated samples (one chain over time) score above it
    even when unbiased; independent chains' final positions are iid.
    Non-finite rows are dropped.
    """
    if gd.n % bins:
        raise ValidationError(f"grid size {gd.n} is not a multiple of {bins} bins")
    s = samples.detach().to("cpu", torch.float64)
    s = s[torch.isfinite(s).all(dim=1)]
    n = int(s.shape[0])
    if n == 0:
        raise ValidationError("no finite samples to compare")
    k = gd.n // bins
    mass = gd.prob.view(bins, k, bins, k).sum(dim=(1, 3))  # [iy, ix]
    mass = mass / mass.sum()
    x0, x1, y0, y1 = gd.box
    ix = torch.floor((s[:, 0] - x0) / (x1 - x0) * bins).long()
    iy = torch.floor((s[:, 1] - y0) / (y1 - y0) * bins).long()
    inside = (ix >= 0) & (ix < bins) & (iy >= 0) & (iy < bins)
    counts = torch.bincount(iy[inside] * bins + ix[inside], minlength=bins * bins).double()
    freq = torch.cat([counts / n, torch.tensor([1.0 - counts.sum().item() / n])])
    exact = torch.cat([mass.reshape(-1), torch.tensor([0.0])])
    tv = 0.5 * float((freq - exact).abs().sum())
    floor = 0.5 * float(_binomial_mean_abs_dev(n, exact).sum())
    return Discrepancy(tv=tv, floor=floor, n=n, bins=bins)


def sgld_stationary_cov(cov: Tensor, step_size: float, temperature: float = 1.0) -> Tensor:
    """Exact stationary covariance of unadjusted Langevin on a Gaussian target.

    With ``A = cov^-1``, the chain ``x' = x - eps A (x - m) + sqrt(2 eps T) xi``
    is a linear AR(1) whose stationary covariance solves
    ``S = (I - eps A) S (I - eps A) + 2 eps T I``, i.e. ``S = T (A - eps A^2 / 2)^-1``.
    It exists only while every eigenvalue ``a`` of ``A`` has ``eps a < 2``.

    Args:
        cov: ``(2, 2)`` target covariance.
    """
    c = torch.as_tensor(cov, dtype=torch.float64)
    a = torch.linalg.inv(c)
    if float(torch.linalg.eigvalsh(a).max()) * step_size >= 2.0:
        raise ValidationError(
            f"step size {step_size:g} is beyond the stability limit 2/max eig(A): SGLD diverges"
        )
    return temperature * torch.linalg.inv(a - 0.5 * step_size * a @ a)
