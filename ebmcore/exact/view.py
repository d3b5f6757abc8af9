"""View boxes that frame a density, and the modes of a density on its grid.

:func:`view_box` is the smallest axis-aligned box of grid cells holding a given
share of the mass (99.5% by default), found exactly on the grid by prefix sums;
it is for figures and initial points, never for the exact numbers, which still
integrate over the full quadrature box.

:func:`modes` finds the basins of the grid density (steepest ascent from every
cell) with their masses and the barriers between them; :func:`chains_in_modes`
says, from chains' final positions, whether they sit in separate modes, in
words a user can read next to a large R-hat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.energies import Box, ValidationError
from ebmcore.exact.density import GridDensity

__all__ = ["ModeReport", "Modes", "chains_in_modes", "modes", "view_box"]

_VIEW_CELLS = 128  # grid side the box search runs on (exact on that grid, O(n^3) work)


def _coarsen(prob: Tensor, n: int) -> Tensor:
    """Sum ``prob (m, m)`` into ``(n, n)`` blocks when ``n`` divides ``m``, else keep it."""
    m = prob.shape[0]
    if m <= n or m % n:
        return prob
    k = m // n
    return prob.view(n, k, n, k).sum(dim=(1, 3))


def view_box(gd: GridDensity, mass: float = 0.995) -> Box:
    """The smallest-area box of grid cells holding at least ``mass`` of the density.

    Exact over boxes whose edges are cell edges of a 128-cell grid over
    ``gd.box`` (the quadrature grid summed in blocks): for every pair of
    columns the row masses are cumulated and, for every bottom row, the lowest
    top row reaching ``mass`` is found by binary search.

    Args:
        gd: the exact density on its quadrature box.
        mass: share of the mass to hold, in (0, 1].
    """
    if not 0 < mass <= 1:
        raise ValidationError(f"mass must be in (0, 1], got {mass}")
    p = _coarsen(gd.prob, _VIEW_CELLS)
    p = p / p.sum()
    n = p.shape[0]
    x0, x1, y0, y1 = gd.box
    hx, hy = (x1 - x0) / n, (y1 - y0) / n
    col = torch.cat([torch.zeros(n, 1, dtype=p.dtype), p.cumsum(1)], 1)  # [iy, ix] prefix in x
    i, j = torch.triu_indices(n, n)  # column pairs i <= j (inclusive)
    rows = col[:, j + 1] - col[:, i]  # (n_rows, pairs): mass of row iy between columns i..j
    cum = torch.cat([torch.zeros(1, rows.shape[1], dtype=p.dtype), rows.cumsum(0)], 0)
    need = cum[:-1] + mass - 1e-12  # (n bottoms, pairs): prefix level the top must reach
    top = torch.searchsorted(cum.T.contiguous(), need.T.contiguous())  # (pairs, n bottoms)
    ok = top <= n
    height = torch.where(ok, top - torch.arange(n)[None, :], n + 1).to(p.dtype)
    area = (j - i + 1).to(p.dtype)[:, None] * hx * height * hy
    area = torch.where(ok, area, math.inf)
    best = int(area.reshape(-1).argmin())
    pair, bottom = divmod(best, n)
    top_row = int(top[pair, bottom])
    return (x0 + int(i[pair]) * hx, x0 + (int(j[pair]) + 1) * hx,
            y0 + bottom * hy, y0 + top_row * hy)


@dataclass(frozen=True)
class Modes:
    """Basins of attraction of a grid density under steepest ascent."""

    label: Tensor  # (n, n) long, basin index of each cell, [iy, ix]
    peaks: Tensor  # (K, 2) float64 position of each basin's highest cell
    mass: Tensor  # (K,) float64 probability mass of each basin
    barrier: Tensor  # (K, K) float64 energy barrier in kT from the lower peak to the saddle

    def significant(self, share: float = 0.01) -> Tensor:
        """Indices of basins holding at least ``share`` of the mass."""
        return (self.mass >= share).nonzero().flatten()

    def max_barrier(self, share: float = 0.01) -> float:
        """Highest barrier (kT) that must be crossed to join the significant basins.

        The basins are joined through their lowest saddles (a minimax path), so
        this is the smallest level at which all significant basins connect.
        """
        idx = self.significant(share)
        if len(idx) < 2:
            return 0.0
        b = self.barrier.clone()
        k = b.shape[0]
        for m in range(k):  # Floyd-Warshall on the minimax (bottleneck) path
            b = torch.minimum(b, torch.maximum(b[:, m : m + 1], b[m : m + 1, :]))
        sub = b[idx][:, idx]
        return float(sub.max())


def modes(gd: GridDensity, cells: int = 128) -> Modes:
    """Basins of ``gd`` on a ``cells``-side grid: each cell climbs to its highest neighbour."""
    p = _coarsen(gd.prob, cells)
    n = p.shape[0]
    logp = torch.log(p.clamp_min(1e-300))
    pad = torch.nn.functional.pad(logp[None, None], (1, 1, 1, 1), value=-math.inf)[0, 0]
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    neigh = torch.stack([pad[1 + dy : 1 + dy + n, 1 + dx : 1 + dx + n] for dy, dx in shifts])
    best = neigh.argmax(0)  # index into shifts; 4 is (0, 0): the cell itself is a peak
    iy, ix = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    dy = torch.tensor([s[0] for s in shifts])[best]
    dx = torch.tensor([s[1] for s in shifts])[best]
    nxt = ((iy + dy) * n + (ix + dx)).reshape(-1)
    for _ in range(2 * n * n):  # pointer jumping: log2(path length) rounds in practice
        again = nxt[nxt]
        if torch.equal(again, nxt):
            break
        nxt = again
    roots, label = torch.unique(nxt, return_inverse=True)
    k = len(roots)
    mass = torch.zeros(k, dtype=torch.float64).index_add_(0, label, p.reshape(-1).double())
    x0, x1, y0, y1 = gd.box
    hx, hy = (x1 - x0) / n, (y1 - y0) / n
    peaks = torch.stack([x0 + (roots % n + 0.5) * hx, y0 + (roots // n + 0.5) * hy], 1).double()
    lab = label.view(n, n)
    peak_lp = logp.reshape(-1)[roots]
    saddle = torch.full((k, k), -math.inf, dtype=torch.float64)
    for a, b, la, lb in ((lab[:, :-1], lab[:, 1:], logp[:, :-1], logp[:, 1:]),
                         (lab[:-1, :], lab[1:, :], logp[:-1, :], logp[1:, :])):
        diff = a != b
        level = torch.minimum(la, lb)[diff].double()  # a path crosses at the lower cell
        ia, ib = a[diff], b[diff]
        flat = saddle.view(-1)
        flat.scatter_reduce_(0, ia * k + ib, level, reduce="amax")
        flat.scatter_reduce_(0, ib * k + ia, level, reduce="amax")
    lower = torch.minimum(peak_lp[:, None], peak_lp[None, :]).double()
    barrier = lower - saddle  # inf where two basins do not touch
    barrier.fill_diagonal_(0.0)
    return Modes(lab, peaks, mass, barrier)


@dataclass(frozen=True)
class ModeReport:
    """Where chains sit among a density's modes."""

    occupied: int  # significant basins holding at least one chain
    significant: int  # basins holding >= 1% of the exact mass
    barrier: float  # kT to cross to join the significant basins (0 for one mode)
    separated: bool  # chains sit in separate modes that they cannot be expected to cross
    chain_share: Tensor  # (K,) share of chains in each basin
    exact_share: Tensor  # (K,) exact mass of each basin
    message: str  # a sentence for users


# kT.  The saddle density is then <= 3% of the lower peak, and by Kramers' law a chain
# crosses about e^-3.5 times per local relaxation time: a few crossings per thousand, too
# few for split R-hat to approach 1 in runs of a few thousand steps.  The double well (3 kT)
# stays on the connected side; the mixture's ring of 8 (4.0 kT) does not.
SEPARATING_BARRIER = 3.5


def chains_in_modes(x: Tensor, gd: GridDensity, m: Modes | None = None) -> ModeReport:
    """Say whether chains (final positions ``x (N, 2)``) sit in separate modes of ``gd``."""
    m = modes(gd) if m is None else m
    n = m.label.shape[0]
    x0, x1, y0, y1 = gd.box
    pts = x.detach().to("cpu", torch.float64)
    pts = pts[torch.isfinite(pts).all(1)]
    ix = ((pts[:, 0] - x0) / (x1 - x0) * n).floor().long().clamp(0, n - 1)
    iy = ((pts[:, 1] - y0) / (y1 - y0) * n).floor().long().clamp(0, n - 1)
    k = len(m.mass)
    counts = torch.bincount(m.label[iy, ix], minlength=k).double()
    share = counts / max(1.0, float(counts.sum()))
    sig = m.significant()
    occupied = int((counts[sig] > 0).sum())
    barrier = m.max_barrier()
    separated = occupied >= 2 and barrier >= SEPARATING_BARRIER
    if len(sig) < 2:
        msg = "the density has one mode"
    elif separated:
        msg = (f"chains sit in {occupied} separate modes (a barrier of {barrier:.1f} kT "
               "between them): they rarely cross in this run, so a large R-hat here means "
               "mode hopping is slow, not that the sampler is wrong; compare mode shares "
               "with the exact masses instead")
    else:
        msg = (f"the density has {len(sig)} modes joined by a barrier of {barrier:.1f} kT: "
               "chains should cross between them")
    return ModeReport(occupied, len(sig), barrier, separated, share, m.mass.clone(), msg)
