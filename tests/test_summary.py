"""RunSummary on the reference Gaussian and on degenerate runs, against exact values."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ebmcore.energies import Target
from ebmcore.exact.density import discrepancy, quadrature
from ebmcore.exact.summary import DISCREPANCY_BINS, RunSummary, summarize
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.registry import make_target

CLI_KEYS = {"mean", "cov", "target_mean", "target_cov", "sgld_cov", "log_z", "log_z_err",
            "discrepancy", "discrepancy_floor", "acceptance", "ess", "rhat", "diverged",
            "first_diverged_step", "divergence", "seconds", "thin"}
N = 16_000  # chains of the reference run


@pytest.fixture(scope="module")
def reference() -> tuple[Target, object, RunSummary]:
    """The note's example: N(0, [[2, 1], [1, 2]]), SGLD at eps 0.3, at stationarity.

    From the uniform box init the slow direction (precision eigenvalue 1/3) contracts by
    1 - 0.3/3 = 0.9 per step: after 300 steps 0.9^300 = 2e-14 of the initial offset is left.
    """
    target = make_target("gaussian")
    cfg = SampleConfig(chains=N, steps=300, step_size=0.3, dtype="float64", seed=7,
                       max_points=200_000)
    trace = sample(target, cfg)
    return target, trace, summarize(trace, target)


def test_sgld_cov_is_the_exact_formula_and_matches_the_chains(reference):
    _, _, s = reference
    a = torch.tensor([[2.0, -1.0], [-1.0, 2.0]], dtype=torch.float64) / 3.0  # inverse of cov
    exact = torch.linalg.inv(a - 0.15 * a @ a)  # T (A - eps A^2 / 2)^-1, T = 1, eps = 0.3
    assert s.sgld_cov is not None
    torch.testing.assert_close(s.sgld_cov, exact, rtol=1e-12, atol=0)
    torch.testing.assert_close(s.target_cov, torch.tensor([[2.0, 1.0], [1.0, 2.0]],
                                                          dtype=torch.float64))
    # Final positions of N iid stationary chains: the standard error of a covariance entry is
    # sqrt((S_ii S_jj + S_ij^2) / N) <= sqrt(2 * 2.167^2 / 16000) = 0.0242; 4 sigma = 0.097.
    # The mean's is sqrt(2.167 / 16000) = 0.0116; 4 sigma = 0.047.
    se = torch.sqrt((exact.diagonal()[:, None] * exact.diagonal()[None, :] + exact**2) / N)
    assert bool(((s.cov - exact).abs() < 4 * se).all())
    assert bool((s.mean.abs() < 4 * torch.sqrt(exact.diagonal() / N)).all())


def test_exact_quantities_and_discrepancy_fields(reference):
    target, trace, s = reference
    gd = quadrature(target.energy, target.box, 256)
    # Closed form over R^2; the box misses < 1e-8 of the mass (ebmcore.targets.registry), so the
    # quadrature value is below it by at most that plus the quadrature error.
    assert s.log_z == pytest.approx(math.log(2 * math.pi) + 0.5 * math.log(3.0),
                                    abs=s.log_z_err + 1e-8)
    assert s.neg_entropy == pytest.approx(-1.0 - s.log_z, abs=1e-6)  # Gaussian: E[E] = 1
    d = discrepancy(trace.x[trace.alive], gd, DISCREPANCY_BINS)
    assert (s.discrepancy.tv, s.discrepancy.floor, s.discrepancy.n) == (d.tv, d.floor, N)
    assert s.discrepancy.floor > 0 and 0 <= s.discrepancy.tv <= 1
    assert s.acceptance is None and s.n_diverged == 0 and s.divergence is None
    assert s.thin == trace.thin and s.ess.shape == (2,) and s.rhat.shape == (2,)
    assert bool((s.ess > 0).all()) and bool(torch.isfinite(s.rhat).all())


def test_likelihood_curve_is_minus_mean_energy_minus_log_z(reference):
    _, trace, s = reference
    assert torch.equal(s.likelihood_steps, trace.steps)
    torch.testing.assert_close(s.likelihood, -trace.mean_energy - s.log_z, rtol=0, atol=0)


def test_to_dict_is_strict_json(reference):
    d = reference[2].to_dict()
    assert CLI_KEYS <= set(d)
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["sgld_cov"] == reference[2].sgld_cov.tolist()
    assert len(back["likelihood"]) == len(back["likelihood_steps"])


@pytest.mark.parametrize(
    "changes",
    [{"sampler": "mala", "step_size": 0.3}, {"noise": False}, {"step_size": 2.5}],
    ids=["mala", "no-noise", "beyond-stability"],
)
def test_sgld_cov_only_where_it_exists(changes):
    # eps 2.5 > 2 / max eig(A) = 2: no stationary law (3 steps grow offsets only by 1.5^3).
    target = make_target("gaussian")
    s = summarize(sample(target, SampleConfig(chains=64, steps=3, **changes)), target)
    assert s.sgld_cov is None
    if changes.get("sampler") == "mala":
        assert s.acceptance is not None and 0 < s.acceptance <= 1


def test_sgld_cov_none_for_non_gaussian_and_quadrature_moments_without_closed_form():
    banana = make_target("banana")
    s = summarize(sample(banana, SampleConfig(chains=64, steps=3, step_size=0.001)), banana)
    assert s.sgld_cov is None
    torch.testing.assert_close(s.target_cov, torch.tensor(banana.cov, dtype=torch.float64))
    bowl = Target("bowl", lambda x: 0.5 * ((x - 1.0) ** 2).sum(1), (-6.0, 8.0, -6.0, 8.0))
    s = summarize(sample(bowl, SampleConfig(chains=64, steps=3)), bowl)
    gd = quadrature(bowl.energy, bowl.box, 256)
    torch.testing.assert_close(s.target_mean, gd.mean)
    torch.testing.assert_close(s.target_cov, gd.cov)


def test_diagnostics_nan_with_fewer_than_four_kept_frames():
    target = make_target("gaussian")
    for cfg in (SampleConfig(chains=32, steps=2), SampleConfig(chains=32, steps=10, burn_in=8)):
        s = summarize(sample(target, cfg), target)
        assert bool(torch.isnan(s.ess).all()) and bool(torch.isnan(s.rhat).all())
        assert s.to_dict()["ess"] == [None, None]


def test_every_chain_diverged_still_summarises():
    # E = -|x|^2 on the box: gradient ascent away from 0 runs every chain out of bounds.
    hill = Target("hill", lambda x: -(x**2).sum(1), (-1.0, 1.0, -1.0, 1.0))
    s = summarize(sample(hill, SampleConfig(chains=16, steps=200, step_size=0.5)), hill)
    assert s.n_diverged == 16 and s.first_diverged_step is not None
    assert "16 of 16 chains diverged" in s.divergence
    assert s.discrepancy.n == 0 and math.isnan(s.discrepancy.tv)
    d = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    assert d["mean"] == [None, None] and d["diverged"] == 16


def test_decimated_diagnostics_estimate_the_full_ones():
    # 500 chains x 1001 frames at stationarity (burn-in covers the 0.9^k transient: 0.9^200 =
    # 7e-10).  The summary ranks ~2^16 of the 4e5 kept draws (a subset of chains) and scales
    # the ESS by C / C'.  The integrated autocorrelation time estimated from 2^16 draws over
    # Geyer's ~20 lags has a relative sd of about 2 sqrt(2 * 20 / 2^16) = 5%: 20% is 4 sd.
    from ebmcore.exact.diagnostics import ess_bulk, split_rhat

    target = make_target("gaussian")
    cfg = SampleConfig(chains=500, steps=1000, step_size=0.3, burn_in=200, dtype="float64",
                       seed=3)
    trace = sample(target, cfg)
    s = summarize(trace, target)
    full_ess = torch.as_tensor(ess_bulk(trace.kept()))
    full_rhat = torch.as_tensor(split_rhat(trace.kept()))
    assert bool(((s.ess / full_ess - 1).abs() < 0.2).all())
    # Both R-hats sit within a few 1 / sqrt(draws) of 1 at stationarity.
    assert bool(((s.rhat - full_rhat).abs() < 0.01).all())


def test_rhat_and_ess_equal_the_separate_functions():
    from ebmcore.exact.diagnostics import ess_bulk, rhat_and_ess, split_rhat

    g = torch.Generator().manual_seed(0)
    draws = torch.randn(200, 30, 2, generator=g, dtype=torch.float64).cumsum(0)  # random walks
    draws[:, :, 1] = draws[:, :, 1].round()  # ties: mean ranks must agree too
    rhat, ess = rhat_and_ess(draws)
    assert (rhat == split_rhat(draws)).all() and (ess == ess_bulk(draws)).all()
