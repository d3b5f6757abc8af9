"""Grid quadrature against closed-form Gaussian answers."""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.energies import ValidationError
from ebmcore.exact.density import (
    discrepancy,
    kl_divergence,
    quadrature,
    sgld_stationary_cov,
)
from tests.conftest import MEAN, SIGMA, gaussian_target


def test_gaussian_log_z_mean_cov_entropy(gauss):
    gd = quadrature(gauss, gauss.box, n=256)
    exact = math.log(2 * math.pi) + 0.5 * math.log(float(torch.linalg.det(SIGMA)))
    assert abs(gd.log_z - exact) < 1e-4
    assert gd.log_z_err < 1e-4  # the two-resolution estimate agrees it is accurate
    assert torch.allclose(gd.mean, MEAN, atol=1e-6)
    assert torch.allclose(gd.cov, SIGMA, atol=1e-5)
    # E_p[log p] = -(1 + log 2 pi + 0.5 log det Sigma) for a 2D Gaussian.
    assert abs(gd.neg_entropy + 1 + exact) < 1e-4
    # Marginals integrate to one and x's marginal is N(0.5, 2).
    h = (gd.box[1] - gd.box[0]) / gd.n
    assert abs(float(gd.marginal_x.sum()) * h - 1) < 1e-9
    ref = torch.exp(-((gd.xs - 0.5) ** 2) / 4) / math.sqrt(4 * math.pi)
    assert torch.allclose(gd.marginal_x, ref, atol=1e-6)


def test_error_estimate_is_honest_on_a_coarse_grid(gauss):
    # With a coarse grid the true error is visible; the estimate must not undercut it.
    gd = quadrature(gauss, gauss.box, n=16)
    exact = math.log(2 * math.pi) + 0.5 * math.log(3.0)
    assert abs(gd.log_z - exact) <= gd.log_z_err


def test_kl_between_gaussians_matches_closed_form():
    cov1 = torch.tensor([[1.5, 0.2], [0.2, 1.0]], dtype=torch.float64)
    m1 = torch.tensor([0.3, 0.1], dtype=torch.float64)
    p, q = gaussian_target(), gaussian_target(m1, cov1)
    box = (-12.0, 12.0, -12.0, 12.0)
    kl = kl_divergence(quadrature(p, box, 384), quadrature(q, box, 384))
    inv1 = torch.linalg.inv(cov1)
    d = m1 - MEAN
    exact = 0.5 * (
        torch.trace(inv1 @ SIGMA) + d @ inv1 @ d - 2
        + torch.logdet(cov1) - torch.logdet(SIGMA)
    )
    assert abs(kl - float(exact)) < 1e-6


def test_nll_of_exact_samples_estimates_entropy(gauss):
    gd = quadrature(gauss, gauss.box, 256)
    g = torch.Generator().manual_seed(1)
    n = 20_000
    x = MEAN + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(SIGMA).T
    nll = gd.nll(gauss, x)
    # NLL = 0.5 chi2_2 + const has variance 0.5^2 * 4 = 1, so the mean's standard error is
    # 1/sqrt(n) = 0.007; 4 standard errors = 0.028.
    assert abs(float(nll.mean()) + gd.neg_entropy) < 4 / math.sqrt(n)
    outside = torch.tensor([[100.0, 0.0]], dtype=torch.float64)
    assert math.isinf(float(gd.nll(gauss, outside)[0]))


def test_discrepancy_floor_is_the_expected_tv_of_exact_samples(gauss):
    gd = quadrature(gauss, gauss.box, 256)
    g = torch.Generator().manual_seed(2)
    chol = torch.linalg.cholesky(SIGMA)
    reps, n = 60, 2000
    tvs = []
    for _ in range(reps):
        x = MEAN + torch.randn(n, 2, generator=g, dtype=torch.float64) @ chol.T
        d = discrepancy(x, gd, bins=32)
        tvs.append(d.tv)
    tvs = torch.tensor(tvs)
    # E[tv] equals the floor exactly (linearity of expectation over bins); the mean of `reps`
    # replicates has standard error sd/sqrt(reps): allow 4 of them.
    se = float(tvs.std()) / math.sqrt(reps)
    assert abs(float(tvs.mean()) - d.floor) < 4 * se
    # A biased sample (covariance 1.3x too wide, like a too-large eps) scores far above it.
    wide = MEAN + 1.3 * torch.randn(n, 2, generator=g, dtype=torch.float64) @ chol.T
    assert discrepancy(wide, gd).tv > d.floor + 10 * float(tvs.std())


def test_sgld_stationary_cov_solves_the_lyapunov_equation():
    eps = 0.3
    s = sgld_stationary_cov(SIGMA, eps)
    m = torch.eye(2, dtype=torch.float64) - eps * torch.linalg.inv(SIGMA)
    assert torch.allclose(s, m @ s @ m.T + 2 * eps * torch.eye(2, dtype=torch.float64))
    assert torch.allclose(sgld_stationary_cov(SIGMA, 1e-9), SIGMA, atol=1e-8)
    with pytest.raises(ValidationError, match="stability"):
        sgld_stationary_cov(SIGMA, 2.5)  # max eig of Sigma^-1 is 1: limit eps < 2


def test_bad_inputs_are_refused(gauss):
    with pytest.raises(ValidationError):
        quadrature(gauss, (1.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValidationError):
        quadrature(gauss, gauss.box, n=3)
    with pytest.raises(ValidationError, match="not finite"):
        quadrature(lambda x: torch.log(x[:, 0]), (-1.0, 1.0, -1.0, 1.0))
    with pytest.raises(ValidationError, match="overflows"):
        quadrature(lambda x: -1000.0 * (x**2).sum(1), (-2.0, 2.0, -2.0, 2.0))
