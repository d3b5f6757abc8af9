"""MCMC convergence diagnostics: autocorrelation, split R-hat and bulk ESS.

Inputs are torch tensors, numpy arrays or nested lists laid out as
``(T, C)`` (steps x chains) or ``(T, C, D)`` (steps x chains x dimensions),
the layout of sampler paths.  Outputs are plain floats (or float64 numpy
arrays, one value per dimension).  Computation is float64 numpy throughout.

R-hat and ESS follow Vehtari, Gelman, Simpson, Carpenter and Buerkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for
assessing convergence of MCMC": chains are split in half, draws are replaced
by normal scores of their pooled ranks, R-hat is the larger of the
rank-normalised and the folded (``|x - median|``) split-R-hat, and the bulk
ESS uses Geyer's initial monotone sequence on the combined chains.

Degenerate input never raises; it gives ``nan`` (or ``inf``):

- fewer than 4 steps (a split half would hold fewer than 2 draws): ``nan``;
- any non-finite draw in a dimension: ``nan`` for that dimension;
- every draw of a dimension identical: ``nan``.  The chains agree only
  because nothing moved, so we refuse to report the "converged" value 1.0;
- each chain constant but the chains different: R-hat ``inf`` (ESS stays finite,
  about one draw per chain);
- ``autocorrelation`` leaves constant chains out of its average (their
  autocorrelation is 0/0); all chains constant gives ``nan`` at every lag.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ebmcore.energies import ValidationError

__all__ = ["MIN_STEPS", "autocorrelation", "ess_bulk", "likelihood_curve", "rhat_and_ess",
           "split_rhat"]

MIN_STEPS = 4  # below this, split chains hold < 2 draws and variances are undefined


def _as_array(x: object) -> np.ndarray:
    """Any tensor / array / list as a float64 numpy array."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"expected an array of numbers, got {type(x).__name__}") from None


def _as_tcd(x: object) -> np.ndarray:
    """Reshape ``(T,)``, ``(T, C)`` or ``(T, C, D)`` to ``(T, C, D)``."""
    a = _as_array(x)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValidationError(
            f"draws must have shape (steps, chains) or (steps, chains, dims), got {a.shape}"
        )
    return a


def _acov(z: np.ndarray) -> np.ndarray:
    """Biased autocovariance (divided by n) of each column of ``z`` ``(n, m)`` via FFT."""
    n = z.shape[0]
    c = z - z.mean(axis=0)
    size = 1 << (2 * n - 1).bit_length()  # zero-pad to >= 2n: no circular wrap-around
    f = np.fft.rfft(c, n=size, axis=0)
    return np.fft.irfft(f * np.conj(f), n=size, axis=0)[:n] / n


def autocorrelation(x: object, max_lag: int | None = None) -> np.ndarray:
    """Normalised autocorrelation at lags ``0..max_lag``, averaged over chains.

    Args:
        x: draws ``(T,)`` (one chain) or ``(T, C)``.
        max_lag: largest lag; default and upper limit ``T - 1``.

    Returns:
        ``(L + 1,)`` float64 with ``L = min(max_lag, T - 1)``; entry 0 is 1.
        Each chain's autocorrelation is estimated with the standard biased
        autocovariance (divided by ``T``), computed by FFT.  Constant chains
        have no defined autocorrelation and are left out of the average; if
        every chain is constant, or fewer than 4 steps are given, or any draw
        is non-finite, the result is all ``nan``.
    """
    a = _as_array(x)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValidationError(f"draws must have shape (steps,) or (steps, chains), got {a.shape}")
    bad_type = isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer))
    if max_lag is not None and (bad_type or max_lag < 0):
        raise ValidationError(f"max_lag must be a whole number >= 0, got {max_lag!r}")
    t = a.shape[0]
    lags = max(t - 1, 0) if max_lag is None else min(int(max_lag), max(t - 1, 0))
    out = np.full(lags + 1, np.nan)
    if t < MIN_STEPS or a.shape[1] == 0 or not np.isfinite(a).all():
        return out
    moving = a.max(axis=0) > a.min(axis=0)  # (no subtraction: cannot overflow)
    if not moving.any():
        return out
    a = a[:, moving]
    acov = _acov(a / np.abs(a).max(axis=0))[: lags + 1]  # scale-free; rescaled: no overflow
    return (acov / acov[0]).mean(axis=1)


def _normal_scores(v: np.ndarray) -> np.ndarray:
    """Rank-normalise a flat array: ``Phi^-1((r - 3/8) / (S + 1/4))``, ties get mean ranks."""
    s = v.size
    order = np.argsort(v)  # ties get mean ranks below, so the sort need not be stable
    sv = v[order]
    new = np.r_[True, sv[1:] != sv[:-1]]  # start of each run of equal values
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], s]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # average of the 1-based ranks starts+1..ends
    ranks = np.empty(s)
    ranks[order] = mean_rank[np.cumsum(new) - 1]
    p = torch.from_numpy((ranks - 0.375) / (s + 0.25))
    return torch.special.ndtri(p).numpy()


def _split(d: np.ndarray) -> np.ndarray:
    """Split each chain of ``(T, C)`` into halves: ``(T // 2, 2C)`` (middle draw dropped)."""
    n = d.shape[0] // 2
    return np.concatenate([d[:n], d[d.shape[0] - n :]], axis=1)


def _rank_split(d: np.ndarray) -> np.ndarray:
    """Split chains, then replace draws by pooled normal scores: ``(n, m)``."""
    s = _split(d)
    return _normal_scores(s.ravel()).reshape(s.shape)


def _rhat(z: np.ndarray) -> float:
    """Classic R-hat of ``(n, m)`` draws: ``sqrt(((n-1)/n W + B/n) / W)``."""
    n = z.shape[0]
    b_over_n = z.mean(axis=0).var(ddof=1) if z.shape[1] > 1 else 0.0
    if np.ptp(z, axis=0).max() == 0:  # every chain constant: W is exactly 0
        return math.inf if b_over_n > 0 else math.nan
    w = z.var(axis=0, ddof=1).mean()
    return math.sqrt(((n - 1) / n * w + b_over_n) / w)


def _degenerate(d: np.ndarray) -> bool:
    """Too short, empty, non-finite, or identical draws (in the split halves actually used)."""
    if d.shape[0] < MIN_STEPS or d.shape[1] == 0 or not np.isfinite(d).all():
        return True
    s = _split(d)
    return bool(s.max() == s.min())


def _rhat_one(d: np.ndarray, z: np.ndarray | None = None) -> float:
    if _degenerate(d):
        return math.nan
    bulk = _rhat(_rank_split(d) if z is None else z)
    with np.errstate(over="ignore"):  # |x - median| may overflow to inf: ranks still work
        folded = np.abs(d - np.median(d))
    s = _split(folded)
    if s.max() == s.min():  # e.g. all draws at +-a: folding holds no information
        return bulk
    return max(bulk, _rhat(_rank_split(folded)))


def _ess_one(d: np.ndarray, z: np.ndarray | None = None) -> float:
    if _degenerate(d):
        return math.nan
    z = _rank_split(d) if z is None else z
    n, m = z.shape
    acov = _acov(z)  # (n, m)
    w = acov[0].mean() * n / (n - 1)  # mean within-chain variance (unbiased)
    var_plus = (n - 1) / n * w + (z.mean(axis=0).var(ddof=1) if m > 1 else 0.0)
    rho = 1.0 - (w - acov.mean(axis=1)) / var_plus  # combined-chain autocorrelation
    rho[0] = 1.0
    # Geyer: sums of adjacent pairs P_k = rho_2k + rho_2k+1 are positive and decreasing
    # for a reversible chain; keep the initial positive run, then force monotonicity.
    k = n // 2  # complete pairs (2k, 2k + 1) among lags 0..n-1
    pairs = rho[0 : 2 * k : 2] + rho[1 : 2 * k : 2]
    neg = np.flatnonzero(pairs <= 0)
    pairs = pairs[: neg[0] if neg.size else pairs.size]
    pairs = np.minimum.accumulate(pairs)
    tau = -1.0 + 2.0 * pairs.sum()
    total = n * m
    tau = max(tau, 1.0 / math.log10(total))  # Stan's guard against absurd ESS when antithetic
    return total / tau


def _per_dim(fn, x: object) -> float | np.ndarray:
    """Apply ``fn`` to each ``(T, C)`` slice; a float for 1-D/2-D input, ``(D,)`` for 3-D."""
    a = _as_array(x)
    vals = np.array([fn(d) for d in np.moveaxis(_as_tcd(a), 2, 0)], dtype=np.float64)
    return vals if a.ndim == 3 else float(vals[0])


def split_rhat(x: object) -> float | np.ndarray:
    """Rank-normalised split R-hat (max of bulk and folded), Vehtari et al. 2021.

    Args:
        x: draws ``(T, C)`` or ``(T, C, D)`` (steps x chains [x dims]); ``(T,)`` is one chain.

    Returns:
        A float for ``(T,)`` / ``(T, C)`` input, a ``(D,)`` float64 array for
        ``(T, C, D)``.  Close to 1 when the chains agree; values above ~1.01
        signal chains that have not mixed.  ``nan`` / ``inf`` on degenerate
        input, as described in the module docstring.
    """
    return _per_dim(_rhat_one, x)


def ess_bulk(x: object) -> float | np.ndarray:
    """Rank-normalised bulk effective sample size, Vehtari et al. 2021.

    Chains are split in half and rank-normalised; the combined-chain
    autocorrelation ``rho_t = 1 - (W - mean_c acov_c(t)) / var+`` is summed
    with Geyer's initial monotone sequence estimator into the integrated
    autocorrelation time ``tau``, and ``ESS = T C / tau``.

    Args:
        x: draws ``(T, C)`` or ``(T, C, D)`` (steps x chains [x dims]); ``(T,)`` is one chain.

    Returns:
        A float for ``(T,)`` / ``(T, C)`` input, a ``(D,)`` float64 array for
        ``(T, C, D)``.  Uses ``2 C`` halves of ``T // 2`` draws, so an odd
        ``T`` drops its middle draw.  ``nan`` on degenerate input.
    """
    return _per_dim(_ess_one, x)


def rhat_and_ess(x: object) -> tuple[np.ndarray, np.ndarray]:
    """``(split_rhat(x), ess_bulk(x))`` per dimension of ``(T, C, D)`` draws, ranking once.

    Both start from the same rank-normalised split chains; sharing them halves the sorts.
    """
    rh, es = [], []
    for d in np.moveaxis(_as_tcd(x), 2, 0):
        z = None if _degenerate(d) else _rank_split(d)
        rh.append(_rhat_one(d, z))
        es.append(_ess_one(d, z))
    return np.array(rh, dtype=np.float64), np.array(es, dtype=np.float64)


def likelihood_curve(mean_energy: object, log_z: float) -> np.ndarray:
    """Mean log-likelihood per step, ``-mean_energy_t - log Z``.

    Args:
        mean_energy: ``(T,)`` mean energy of the samples at each step.
        log_z: log normalising constant of the energy.

    Returns:
        ``(T,)`` float64 mean ``log p(x_t)``.
    """
    return -_as_array(mean_energy).reshape(-1) - float(log_z)
