"""What a sampling run amounts to, next to the exact answers: one record for the CLI and UI.

:func:`summarize` turns a :class:`~ebmcore.sampling.runner.Trace` and its target into a
:class:`RunSummary`: sample moments of the final positions against the exact
ones (closed form where known, quadrature otherwise), the exact stationary
covariance of unadjusted Langevin on Gaussians (the bias SGLD *should* show),
the histogram discrepancy with its sampling floor, the likelihood curve, and
the convergence diagnostics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import (
    Discrepancy,
    GridDensity,
    discrepancy,
    quadrature,
    sgld_stationary_cov,
)
from ebmcore.exact.diagnostics import MIN_STEPS, rhat_and_ess
from ebmcore.sampling.runner import Trace

__all__ = ["DIAG_DRAWS", "DISCREPANCY_BINS", "GRID", "RunSummary", "summarize"]

GRID = 256  # quadrature cells per side for the exact reference
DISCREPANCY_BINS = 32  # histogram bins per side for the discrepancy
# Draws fed to R-hat / ESS: ranking them (a sort) dominates the summary; 2^16 draws keep the
# R-hat's sampling error ~ 1 / sqrt(draws) far below the 1.01 threshold users read.
DIAG_DRAWS = 1 << 16
DIAG_MIN_CHAINS = 64  # chains kept at least (between-chain variance needs many chains)


@dataclass(frozen=True)
class RunSummary:
    """A run's statistics beside the exact values (all tensors float64, CPU)."""

    log_z: float  # exact log Z, by quadrature on target.box
    log_z_err: float  # quadrature error estimate of log_z
    mean: Tensor  # (2,) mean of the final positions of live chains
    cov: Tensor  # (2, 2) covariance of the same (nan with fewer than 2 live chains)
    target_mean: Tensor  # (2,) exact mean (closed form if known, else quadrature)
    target_cov: Tensor  # (2, 2) exact covariance (same)
    sgld_cov: Tensor | None  # (2, 2) exact ULA stationary cov (Gaussian, sgld, noise on), else None
    discrepancy: Discrepancy  # final positions of live chains vs the exact density
    neg_entropy: float  # E_p[log p], exact: the level the likelihood curve should settle at
    likelihood_steps: Tensor  # (S,) step of each recorded frame
    likelihood: Tensor  # (S,) mean log p(x_t) over live chains = -mean_energy - log_z
    acceptance: float | None  # mean acceptance after burn-in (None for SGLD)
    ess: Tensor  # (2,) bulk ESS per coordinate over post-burn-in frames (nan if < 4 frames);
    # from at most DIAG_DRAWS draws (a subset of the chains, scaled to all of them)
    rhat: Tensor  # (2,) split R-hat per coordinate (same)
    n_diverged: int  # chains frozen because they diverged
    first_diverged_step: int | None  # step at which divergence was first seen
    divergence: str | None  # a sentence for users, None if every chain stayed finite
    seconds: float  # wall time of the run
    thin: int = 1  # steps between recorded frames

    def to_dict(self) -> dict:
        """JSON-friendly: lists, floats, ints and None (non-finite numbers become None)."""
        d = self.discrepancy
        return {
            "mean": _plain(self.mean),
            "cov": _plain(self.cov),
            "target_mean": _plain(self.target_mean),
            "target_cov": _plain(self.target_cov),
            "sgld_cov": _plain(self.sgld_cov),
            "log_z": _plain(self.log_z),
            "log_z_err": _plain(self.log_z_err),
            "discrepancy": _plain(d.tv),
            "discrepancy_floor": _plain(d.floor),
            "discrepancy_n": d.n,
            "discrepancy_bins": d.bins,
            "neg_entropy": _plain(self.neg_entropy),
            "final_likelihood": _plain(self.likelihood[-1]) if len(self.likelihood) else None,
            "acceptance": _plain(self.acceptance),
            "ess": _plain(self.ess),
            "rhat": _plain(self.rhat),
            "diverged": self.n_diverged,
            "first_diverged_step": self.first_diverged_step,
            "divergence": self.divergence,
            "seconds": _plain(self.seconds),
            "thin": self.thin,
            "likelihood_steps": [int(s) for s in self.likelihood_steps.tolist()],
            "likelihood": _plain(self.likelihood),
        }


def _plain(v: object) -> object:
    """Tensor / float -> nested lists of floats, with nan and inf as None."""
    if v is None:
        return None
    if isinstance(v, Tensor):
        v = v.tolist()
    if isinstance(v, list):
        return [_plain(e) for e in v]
    f = float(v)  # type: ignore[arg-type]
    return f if math.isfinite(f) else None


def _sample_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(2,)`` and unbiased covariance ``(2, 2)`` of ``x (N, 2)``; nan where undefined."""
    x = x.to(torch.float64)
    n = x.shape[0]
    mean = x.mean(0) if n else torch.full((2,), math.nan, dtype=torch.float64)
    if n < 2:
        return mean, torch.full((2, 2), math.nan, dtype=torch.float64)
    d = x - mean
    return mean, d.T @ d / (n - 1)


def _sgld_cov(trace: Trace, target: Target) -> Tensor | None:
    cfg = trace.config
    if target.name != "gaussian" or target.cov is None or cfg.sampler != "sgld" or not cfg.noise:
        return None
    try:
        return sgld_stationary_cov(torch.tensor(target.cov, dtype=torch.float64),
                                   cfg.step_size, cfg.temperature)
    except ValidationError:  # beyond the stability limit: no stationary law
        return None


def _decimate(trace: Trace) -> tuple[Tensor, float]:
    """At most about :data:`DIAG_DRAWS` draws of ``trace.kept()``, and the ESS scale.

    Indexes the recorded frames once (``kept()`` would copy every frame of every chain).

    Chains are exchangeable (same law, independent), so R-hat and the per-chain ESS from
    an evenly spaced subset of ``C'`` chains estimate those of all ``C``: the total ESS is
    the subset's times ``C / C'``.  Only when ``T`` alone exceeds the budget at
    :data:`DIAG_MIN_CHAINS` chains is time thinned too (which can only lower the ESS).
    """
    first = int((trace.steps < trace.config.burn_in).sum())  # frames are in step order
    live = torch.nonzero(trace.alive).flatten()
    t, c = trace.positions.shape[0] - first, live.numel()
    keep_c = min(c, max(DIAG_MIN_CHAINS, DIAG_DRAWS // max(t, 1)))
    step_t = max(1, math.ceil(t * keep_c / DIAG_DRAWS))
    if (t - 1) // step_t + 1 < MIN_STEPS:  # never thin below what the diagnostics need
        step_t = 1
    idx = live[torch.linspace(0, c - 1, keep_c).round().long()] if keep_c < c else live
    return trace.positions[first::step_t, idx], c / max(keep_c, 1)


def _diagnostics(trace: Trace) -> tuple[Tensor, Tensor]:
    """Bulk ESS and split R-hat ``(2,)`` of the kept frames; nan if too short or empty."""
    sub, scale = _decimate(trace)
    if sub.shape[0] < MIN_STEPS or sub.shape[1] == 0:
        nan = torch.full((2,), math.nan, dtype=torch.float64)
        return nan, nan.clone()
    rhat, ess = rhat_and_ess(sub)
    return (torch.as_tensor(ess * scale, dtype=torch.float64),
            torch.as_tensor(rhat, dtype=torch.float64))


def summarize(trace: Trace, target: Target, gd: GridDensity | None = None) -> RunSummary:
    """Summarise a finished (or stopped) run against the exact density of ``target``.

    Args:
        trace: the run's record; statistics use live chains only.
        target: the target it sampled (its energy, box and closed-form facts).
        gd: the exact density on ``target.box``; computed (256 x 256 cells) if not given.

    Note:
        With ``temperature != 1`` the chains target ``p^(1/T)``; everything here
        still compares with ``p`` itself.
    """
    if gd is None:
        gd = quadrature(target.energy, target.box, GRID)
    final = trace.x[trace.alive]
    mean, cov = _sample_moments(final)
    f64 = torch.float64
    t_mean = torch.tensor(target.mean, dtype=f64) if target.mean is not None else gd.mean
    t_cov = torch.tensor(target.cov, dtype=f64) if target.cov is not None else gd.cov
    if final.shape[0]:
        disc = discrepancy(final, gd, DISCREPANCY_BINS)  # gd.n must be a multiple of the bins
    else:  # every chain diverged: nothing to compare
        disc = Discrepancy(tv=math.nan, floor=math.nan, n=int(final.shape[0]),
                           bins=DISCREPANCY_BINS)
    ess, rhat = _diagnostics(trace)
    return RunSummary(
        log_z=gd.log_z,
        log_z_err=gd.log_z_err,
        mean=mean,
        cov=cov,
        target_mean=t_mean,
        target_cov=t_cov,
        sgld_cov=_sgld_cov(trace, target),
        discrepancy=disc,
        neg_entropy=gd.neg_entropy,
        likelihood_steps=trace.steps.clone(),
        likelihood=-trace.mean_energy.to(f64) - gd.log_z,
        acceptance=trace.acceptance,
        ess=ess,
        rhat=rhat,
        n_diverged=trace.n_diverged,
        first_diverged_step=trace.first_diverged_step,
        divergence=trace.divergence_message(),
        seconds=trace.seconds,
        thin=trace.thin,
    )
