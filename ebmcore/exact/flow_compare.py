"""Chains against the exact law of their time: histograms at step k beside rho at t = k eps.

SGLD with step ``eps`` approximates the Langevin SDE at times ``t = k eps``, so its
chains' histogram at step k should match the Fokker–Planck density rho_t of
:mod:`ebmcore.exact.fokker_planck` up to the finite-sample floor and SGLD's own
O(eps) bias.  :func:`compare_run` lines up a sampling run's recorded steps with
the solver's frames; per step it reports the histogram's total variation from
rho_t (with the exact floor of :func:`ebmcore.exact.density.discrepancy`), and
KL(histogram || p) beside the exact KL(rho_t || p) and the floor E[KL] of N iid
exact samples (:func:`kl_floor`).  At a large eps the histogram's KL flattens
above the exact curve: the discretisation bias.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.energies import Box, Target, ValidationError
from ebmcore.exact.density import discrepancy
from ebmcore.exact.fokker_planck import FlowConfig, evolve, stationary_density
from ebmcore.sampling.runner import SampleConfig, Trace

__all__ = ["ParticleFrame", "SideBySide", "bin_masses", "compare_run", "flow_config_for",
           "histogram", "histogram_kl", "kl_floor", "side_by_side"]

_EXPANSION_FROM = 1000.0  # N p above which E[q log q] uses its 1/N expansion (error < 1e-3/N)


@dataclass(frozen=True)
class ParticleFrame:
    """The chains' histogram at one recorded step against the exact law at t = step * eps."""

    step: int  # SGLD step
    t: float  # step * eps
    tv: float  # total variation between the histogram and rho_t (bins of the grid)
    tv_floor: float  # E[tv] for the same number of iid draws from rho_t
    kl_hist: float  # KL(histogram || p_T) over the box (particles outside it left out)
    kl_floor: float  # E[KL(histogram || p_T)] for the same number of iid draws from p_T
    kl_exact: float  # KL(rho_t || p_T) on the same bins
    outside: float  # fraction of finite particles outside the box


def flow_config_for(cfg: SampleConfig, grid: int = 128, dt: float | None = None) -> FlowConfig:
    """The solver config of a sampling run: same start and temperature, frames at its steps.

    Frames come at ``k * eps`` for every ``k`` the run records (every ``thin`` steps),
    with a solver step no longer than ``eps`` (or ``dt`` when given).
    """
    cfg = cfg.validate()
    if cfg.sampler != "sgld" or not cfg.noise:
        raise ValidationError("the Fokker–Planck law describes SGLD with noise only")
    return FlowConfig(times=(0.0,), dt=dt or min(cfg.step_size, 0.01), grid=grid,
                      temperature=cfg.temperature, init=cfg.init, init_box=cfg.init_box,
                      init_point=tuple(cfg.init_point), init_std=cfg.init_std)


def bin_masses(mass: Tensor, bins: int) -> Tensor:
    """``(bins, bins)`` masses of grid cells summed into coarser bins (``n % bins == 0``)."""
    n = mass.shape[0]
    if n % bins:
        raise ValidationError(f"grid size {n} is not a multiple of {bins} bins")
    k = n // bins
    return mass.view(bins, k, bins, k).sum(dim=(1, 3))


def histogram(samples: Tensor, box: Box, bins: int) -> tuple[Tensor, int, int]:
    """Counts ``(bins, bins)`` [iy, ix] of the finite samples inside ``box``.

    Returns:
        ``(counts, inside, finite)``: the counts, how many fell inside, how many were finite.
    """
    s = samples.detach().to("cpu", torch.float64)
    s = s[torch.isfinite(s).all(dim=1)]
    x0, x1, y0, y1 = box
    ix = torch.floor((s[:, 0] - x0) / (x1 - x0) * bins).long()
    iy = torch.floor((s[:, 1] - y0) / (y1 - y0) * bins).long()
    ok = (ix >= 0) & (ix < bins) & (iy >= 0) & (iy < bins)
    counts = torch.bincount(iy[ok] * bins + ix[ok], minlength=bins * bins).double()
    return counts.view(bins, bins), int(ok.sum()), int(s.shape[0])


def histogram_kl(counts: Tensor, p: Tensor) -> float:
    """``KL(counts / N || p)`` for bin masses ``p`` (``inf`` if a counted bin has p = 0)."""
    q = counts / counts.sum()
    pos = q > 0
    if bool((pos & (p <= 0)).any()):
        return math.inf
    return float(torch.where(pos, q * (q.clamp_min(1e-300) / p.clamp_min(1e-300)).log(),
                             torch.zeros_like(q)).sum())


def kl_floor(n: int, p: Tensor) -> float:
    """``E[KL(X / n || p)]`` for multinomial counts ``X`` of ``n`` draws from bin masses ``p``.

    By linearity it is ``sum_b E[q_b log q_b] - p_b log p_b`` with
    ``q_b = X_b / n``, ``X_b ~ Binomial(n, p_b)``: summed exactly over the binomial
    pmf where ``n p_b <= 1000``, and by the expansion
    ``(1 - p)/(2n) - (1 - p)(1 - 2p)/(6 n^2 p) + (1 - p)^2/(4 n^2 p)`` above.
    """
    if n < 1:
        raise ValidationError("the KL floor needs at least one sample")
    p = p.reshape(-1).to(torch.float64)
    p = p[(p > 0) & (p < 1)]  # a bin holding all the mass adds nothing
    big = n * p > _EXPANSION_FROM
    pb = p[big]
    total = float(((1 - pb) / (2 * n) - (1 - pb) * (1 - 2 * pb) / (6 * n * n * pb)
                   + (1 - pb) ** 2 / (4 * n * n * pb)).sum())
    ps = p[~big]
    if ps.numel():
        sd = (n * ps * (1 - ps)).sqrt()
        lo = (n * ps - 8 * sd - 10).clamp_min(0).floor()
        width = int(float((n * ps + 8 * sd + 10).ceil().max() - lo.min())) + 1
        k = lo[:, None] + torch.arange(min(width, n + 1), dtype=torch.float64)[None, :]
        k = k.clamp_max(n)
        log_pmf = (math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
                   + k * ps[:, None].log() + (n - k) * torch.log1p(-ps[:, None]))
        valid = k <= n
        q = k / n
        qlogq = torch.where(q > 0, q * q.clamp_min(1e-300).log(), torch.zeros_like(q))
        # clamping k to n repeats the last term: count each k once
        first = torch.ones_like(valid)
        first[:, 1:] = k[:, 1:] > k[:, :-1]
        e_qlogq = (torch.where(first, log_pmf.exp(), torch.zeros_like(q)) * qlogq).sum(1)
        total += float((e_qlogq - ps * ps.log()).sum())
    return total


@dataclass(frozen=True)
class SideBySide:
    """rho_t and the chains' histogram as densities on the same bins, for one colour scale."""

    exact: Tensor  # (bins, bins) [iy, ix] density of rho_t averaged over each bin
    particles: Tensor  # (bins, bins) histogram density: count / (N * bin area), N all finite
    zmax: float  # the larger of the two maxima: one colour scale for both panels


def side_by_side(rho: Tensor, samples: Tensor, box: Box, bins: int = 32) -> SideBySide:
    """Both panels of one time: ``rho`` (a frame's cell masses) and ``samples`` ``(N, 2)``."""
    x0, x1, y0, y1 = box
    area = (x1 - x0) * (y1 - y0) / bins**2
    exact = bin_masses(rho, bins) / area
    counts, _, finite = histogram(samples, box, bins)
    particles = counts / (max(finite, 1) * area)
    return SideBySide(exact, particles, float(torch.maximum(exact.max(), particles.max())))


def compare_run(target: Target, trace: Trace, grid: int = 128, bins: int = 32,
                dt: float | None = None) -> Iterator[ParticleFrame]:
    """Yield one :class:`ParticleFrame` per recorded step of an SGLD run, in step order.

    The solver starts from the run's initial law (the config's ``init``), at its
    temperature, with :func:`flow_config_for`'s step; the run's recorded steps
    ``trace.steps`` map to times ``steps * eps``.
    """
    cfg = trace.config
    eps = cfg.step_size
    times = tuple(float(s) * eps for s in trace.steps.tolist())
    flow_cfg = dataclasses.replace(flow_config_for(cfg, grid, dt), times=times)
    p = bin_masses(stationary_density(target, grid, cfg.temperature).prob, bins)
    requested = (f for f in evolve(target, flow_cfg) if f.requested)
    floors: dict[int, float] = {}  # the count inside the box rarely changes between steps
    for i, frame in enumerate(requested):
        counts, inside, finite = histogram(trace.positions[i], target.box, bins)
        if inside == 0:
            raise ValidationError(f"no particle inside the box at step {int(trace.steps[i])}")
        if inside not in floors:
            floors[inside] = kl_floor(inside, p)
        gd = frame.density(target.box)
        d = discrepancy(trace.positions[i], gd, bins)
        rho = bin_masses(frame.rho, bins)
        yield ParticleFrame(int(trace.steps[i]), frame.t, d.tv, d.floor,
                            histogram_kl(counts, p), floors[inside],
                            histogram_kl(rho, p), 1.0 - inside / max(finite, 1))
