"""Diagnostics against known answers: AR(1) chains, iid chains, chains that disagree."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ebmcore.energies import ValidationError
from ebmcore.exact.diagnostics import autocorrelation, ess_bulk, likelihood_curve, split_rhat


def ar1(rho: float, steps: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Stationary AR(1) ``x_t = rho x_{t-1} + sqrt(1 - rho^2) eps``: ``(steps, *shape)``.

    Unit marginal variance, autocorrelation ``rho^k``, integrated autocorrelation
    time ``tau = (1 + rho) / (1 - rho)``.
    """
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((steps, *shape))
    x = np.empty_like(eps)
    x[0] = eps[0]  # start in the stationary law N(0, 1)
    s = math.sqrt(1.0 - rho**2)
    for t in range(1, steps):
        x[t] = rho * x[t - 1] + s * eps[t]
    return x


def test_autocorrelation_of_ar1_is_rho_to_the_k():
    rho, steps, chains = 0.8, 20_000, 4
    x = ar1(rho, steps, (chains,), seed=1)
    acf = autocorrelation(x, max_lag=10)
    assert acf.shape == (11,) and acf[0] == 1.0
    k = np.arange(11)
    # Bartlett's formula for AR(1): Var(r_k) = [(1 + rho^2)(1 - rho^2k)/(1 - rho^2)
    # - 2 k rho^2k] / T per chain; the average of C independent chains divides it by C.
    var = ((1 + rho**2) * (1 - rho ** (2 * k)) / (1 - rho**2) - 2 * k * rho ** (2 * k)) / steps
    sd = np.sqrt(var / chains)  # <= 0.0075 here
    # Biases are O(1/T): subtracting the chain mean costs about tau / T = 9 / 20000 = 4.5e-4,
    # the biased (divide-by-T) normalisation k rho^k / T < 2e-4.  Allow 4 sd + 1e-3.
    assert np.all(np.abs(acf - rho**k) <= 4 * sd + 1e-3)


def test_autocorrelation_shapes_and_lags():
    x = ar1(0.5, 50, (3,), seed=2)
    assert autocorrelation(x).shape == (50,)  # default: all lags 0..T-1
    assert autocorrelation(x, max_lag=500).shape == (50,)  # clipped to T - 1
    one = autocorrelation(x[:, 0], max_lag=5)  # (T,) is a single chain
    assert one.shape == (6,) and one[0] == 1.0
    np.testing.assert_allclose(autocorrelation(torch.from_numpy(x), 5), autocorrelation(x, 5))
    for bad in (-1, 2.5, "3", True):
        with pytest.raises(ValidationError):
            autocorrelation(x, max_lag=bad)


def ess_tolerance(rho: float, total: int, dims: int) -> float:
    """Relative tolerance for the mean of ``dims`` independent ESS estimates of AR(1)."""
    tau = (1 + rho) / (1 - rho)
    noise = math.sqrt(tau / total)  # sd of one estimated rho_t at large lags (Bartlett)
    # Geyer's sequence stops near the lag where rho^t sinks into that noise.
    t_cut = 1 if rho == 0 else math.ceil(math.log(noise) / math.log(rho))
    window = 2 * t_cut + 2  # a generous bound on the stopping lag M
    # Sokal (1989): a window of M lags gives tau a relative variance 2 (2M + 1) / S.
    rel_sd = math.sqrt(2 * (2 * window + 1) / total)
    # Stopping at t_cut drops at most the tail 2 rho^t_cut / (1 - rho) of tau.
    truncation = 2 * rho**t_cut / (1 - rho) / tau
    return 4 * rel_sd / math.sqrt(dims) + truncation


@pytest.mark.parametrize(("rho", "steps"), [(0.0, 10_000), (0.5, 10_000), (0.9, 20_000)])
def test_ess_of_ar1_matches_n_1_minus_rho_over_1_plus_rho(rho, steps):
    chains, dims = 4, 8  # 8 independent dimensions act as 8 seeds, averaged
    x = ar1(rho, steps, (chains, dims), seed=3)
    ess = ess_bulk(x)
    assert ess.shape == (dims,)
    total = steps * chains
    expected = total * (1 - rho) / (1 + rho)
    # tolerances: rho=0 -> 3.0 %, rho=0.5 -> 6.8 %, rho=0.9 -> 10.6 % (see ess_tolerance)
    assert abs(ess.mean() / expected - 1) <= ess_tolerance(rho, total, dims)


def test_iid_chains_rhat_near_one_and_ess_near_total():
    steps, chains, dims = 1000, 4, 16
    x = np.random.default_rng(4).standard_normal((steps, chains, dims))
    rhat = split_rhat(x)
    assert rhat.shape == (dims,)
    # Split: m = 8 halves of n = 500.  R^2 = (n-1)/n + F/n with F = n Var(chain means) / W
    # ~ chi2_7 / 7 for iid draws.  P(chi2_7 > 35) = 1.2e-5, so over 32 values (bulk and
    # folded, 16 dims) F < 5 all but surely, giving R - 1 < 4 / (2n) = 0.004; and
    # R >= sqrt((n-1)/n) > 1 - 1/(2n) - 1e-6 always.
    assert np.all(rhat < 1.0 + 4 / 1000)
    assert np.all(rhat > 1.0 - 1 / 1000 - 1e-6)


def test_shifted_chain_gives_large_rhat():
    steps, chains, dims = 1000, 4, 8
    x = np.random.default_rng(5).standard_normal((steps, chains, dims))
    x[:, 3] += 2.0
    # On the raw scale the population value is sqrt(1 + Var(half-chain means)) =
    # sqrt(1 + 4 * 1.5 / 7) = 1.36; rank normalisation gives 1.32 (8e5 draws, once).
    # Noise in Var(means): (2/7) sqrt(sum (d - dbar)^2) sd(mean) = (2/7)(2.45)(0.045) = 0.03,
    # 4 sd = 0.13 in R^2, i.e. R > 1.27; we test the usual alarm level with margin.
    assert np.all(split_rhat(x) > 1.2)


def test_folded_rhat_catches_a_chain_with_a_different_scale():
    steps, chains, dims = 2000, 4, 8
    x = np.random.default_rng(6).standard_normal((steps, chains, dims))
    x[:, 3] *= 3.0  # same median, so only the folded R-hat can see it
    # Population folded R-hat 1.146 (8e5 draws, once).  Between-chain noise as above with
    # sd(mean) = 1/sqrt(1000): 4 sd = 0.035 in R^2, i.e. R > 1.13.
    assert np.all(split_rhat(x) > 1.1)


def test_ess_is_rank_based_and_accepts_torch():
    x = ar1(0.5, 400, (4, 2), seed=7)
    # Bulk ESS only sees ranks, so any increasing transform leaves it unchanged.
    np.testing.assert_allclose(ess_bulk(np.exp(x)), ess_bulk(x), rtol=1e-12)
    np.testing.assert_allclose(ess_bulk(torch.from_numpy(x).float()), ess_bulk(x), rtol=1e-6)
    assert isinstance(ess_bulk(x[:, :, 0]), float)  # (T, C) -> float
    assert isinstance(split_rhat(x[:, :, 0]), float)
    assert isinstance(split_rhat(x[:, 0, 0]), float)  # (T,) is a single chain


@pytest.mark.filterwarnings("error")  # degenerate input must not even warn
def test_degenerate_inputs_never_raise():
    for steps in (0, 1, 3):  # fewer than 4 steps
        x = np.ones((steps, 2)) * np.arange(steps)[:, None]
        assert math.isnan(split_rhat(x)) and math.isnan(ess_bulk(x))
        assert np.isnan(autocorrelation(x)).all()
    const = np.full((50, 3), 2.5)  # nothing moved: undefined, deliberately not 1.0
    assert math.isnan(split_rhat(const)) and math.isnan(ess_bulk(const))
    assert np.isnan(autocorrelation(const, 4)).all()
    odd = np.zeros((5, 2))
    odd[2, 0] = 1.0  # the only moving draw is the middle one, which splitting drops
    assert math.isnan(split_rhat(odd)) and math.isnan(ess_bulk(odd))
    stuck = np.tile([0.0, 1.0, 2.0], (50, 1))  # each chain frozen at its own value
    assert split_rhat(stuck) == math.inf
    assert 0 < ess_bulk(stuck) < 10
    bad = np.random.default_rng(8).standard_normal((50, 3, 2))
    bad[10, 1, 0] = np.nan
    r = split_rhat(bad)
    assert math.isnan(r[0]) and math.isfinite(r[1])
    # A single constant chain among moving ones is simply left out of the average.
    mixed = np.random.default_rng(9).standard_normal((50, 2))
    mixed[:, 1] = 1.0
    np.testing.assert_allclose(autocorrelation(mixed, 5), autocorrelation(mixed[:, 0], 5))
    with pytest.raises(ValidationError):
        split_rhat(np.zeros((4, 2, 2, 2)))


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(0, 12), st.integers(1, 4)),
        elements=st.sampled_from([0.0, 1.0, 1.0, 2.5, -3.0, 1e300, -1e308, 1e308, np.nan, np.inf]),
    )
)
def test_any_small_input_gives_a_value_without_warnings(x):
    # Heavy ties, constants, huge and non-finite values: never raise, never warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r, e, a = split_rhat(x), ess_bulk(x), autocorrelation(x)
    assert math.isnan(r) or r >= 0.0
    assert math.isnan(e) or e > 0.0
    assert a.shape == (max(x.shape[0], 1),)


def test_likelihood_curve():
    e = torch.tensor([3.0, 2.0, 1.5])
    np.testing.assert_allclose(likelihood_curve(e, 0.5), [-3.5, -2.5, -2.0])
    assert likelihood_curve([1.0], 0.0).dtype == np.float64
