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
from ebmcore.exact.diagnostics import MIN_STEPS, ess_bulk, split_rhat
from ebmcore.sampling.runner import Trace

__all__ = ["DISCREPANCY_BINS", "GRID", "RunSummary", "summarize"]

GRID = 256  # quadrature cells per side for the exact reference
DISCREPANCY_BINS = 32  # histogram bins per side for the discrepancy


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
    ess: Tensor  # (2,) bulk ESS per coordinate over post-burn-in frames (nan if < 4 frames)
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


def _diagnostics(frames: Tensor) -> tuple[Tensor, Tensor]:
    """Bulk ESS and split R-hat ``(2,)`` of ``frames (T, C, 2)``; nan if too short or empty."""
    if frames.shape[0] < MIN_STEPS or frames.shape[1] == 0:
        nan = torch.full((2,), math.nan, dtype=torch.float64)
        return nan, nan.clone()
    ess = torch.as_tensor(ess_bulk(frames), dtype=torch.float64)
    rhat = torch.as_tensor(split_rhat(frames), dtype=torch.float64)
    return ess, rhat


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
    ess, rhat = _diagnostics(trace.kept())
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
