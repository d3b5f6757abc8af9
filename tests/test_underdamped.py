"""Underdamped Langevin (BAOAB) on Gaussians, whose discrete stationary laws are known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.energies import ValidationError
from ebmcore.exact.density import sgld_stationary_cov
from ebmcore.sampling.fast import inplace_grad
from ebmcore.sampling.runner import SampleConfig, sample, steps_rng
from ebmcore.sampling.underdamped import (
    baoab_stationary_cov,
    underdamped_init,
    underdamped_loop,
    underdamped_step,
)
from ebmcore.targets.registry import TARGETS, make_target
from tests.conftest import MEAN, SIGMA

N = 20_000  # chains; their positions at one step are iid draws of the chain's law then
PREC = torch.linalg.inv(SIGMA)


def cov_tolerance(cov: torch.Tensor, n: int) -> torch.Tensor:
    """4 standard errors of each sample-covariance entry of n iid Gaussian draws.

    Var(S_ij) = (C_ij^2 + C_ii C_jj) / n (Wishart second moments).
    """
    d = cov.diagonal()
    return 4 * torch.sqrt((cov**2 + d[:, None] * d[None, :]) / n)


def run_kernel(target, x0, steps, seed=0, **kw):
    gen = torch.Generator().manual_seed(seed)
    st = underdamped_init(target.energy, x0, gen, grad=target.grad)
    for _ in range(steps):
        st, _ = underdamped_step(target.energy, st, gen, grad=target.grad, **kw)
    return st


def test_position_covariance_is_exact_at_eps_03_where_sgld_is_biased(gauss):
    # Both runs start uniform on the box (variance ~33). Covariance errors decay like
    # exp(-gamma h n) = e^-45 for BAOAB (complex eigenvalues of modulus exp(-gamma h / 2))
    # and like 0.9^(2n) = 2e-14 for SGLD: invisible beside the 4-SE tolerance.
    tol = cov_tolerance(SIGMA, N)
    cfg = dict(chains=N, steps=150, step_size=0.3, dtype="float64", seed=3, max_points=N)
    ud = sample(gauss, SampleConfig(sampler="underdamped", friction=1.0, **cfg))
    sg = sample(gauss, SampleConfig(sampler="sgld", **cfg))
    assert ud.n_diverged == sg.n_diverged == 0
    cov_ud, cov_sg = torch.cov(ud.x.T), torch.cov(sg.x.T)
    assert ((cov_ud - SIGMA).abs() < tol).all(), cov_ud
    assert ((cov_sg - sgld_stationary_cov(SIGMA, 0.3)).abs() < tol).all(), cov_sg
    assert ((cov_sg - SIGMA).abs() > tol).any(), cov_sg  # SGLD's bias is resolved


def _baoab_moments(h: float, gamma: float, steps: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Stationary (Cov x, Cov v) by iterating the exact covariance recursion of the linear map."""
    eye, zero = torch.eye(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    kick = torch.cat([torch.cat([eye, zero], 1), torch.cat([-h / 2 * PREC, eye], 1)])
    drift = torch.cat([torch.cat([eye, h / 2 * eye], 1), torch.cat([zero, eye], 1)])
    c = math.exp(-gamma * h)
    ou = torch.block_diag(eye, c * eye)
    noise = torch.block_diag(zero, (1 - c * c) * eye)
    cov = torch.eye(4, dtype=torch.float64)
    for _ in range(steps):
        cov = drift @ kick @ cov @ kick.T @ drift.T  # B then A
        cov = ou @ cov @ ou.T + noise  # O
        cov = kick @ drift @ cov @ drift.T @ kick.T  # A then B
    return cov[:2, :2], cov[2:, 2:]


@pytest.mark.parametrize("h,gamma", [(0.3, 1.0), (1.0, 0.5), (1.5, 3.0)])
def test_closed_form_matches_the_exact_moment_recursion(h, gamma):
    cx, cv = baoab_stationary_cov(SIGMA, h)
    rx, rv = _baoab_moments(h, gamma)
    assert torch.allclose(cx, rx, atol=1e-10) and torch.allclose(cv, rv, atol=1e-10)


def test_velocity_variance_follows_the_baoab_formula(gauss):
    # At h = 1 the velocity covariance is I - A/4 (diagonal 0.833): 20 standard errors
    # from the naive I, so the formula is tested, not just the equilibrium. Positions start
    # exact, velocities Maxwellian; the error decays like exp(-gamma h n) = e^-60.
    x0 = MEAN + torch.randn(N, 2, generator=torch.Generator().manual_seed(5),
                            dtype=torch.float64) @ torch.linalg.cholesky(SIGMA).T
    st = run_kernel(gauss, x0, 60, seed=1, step_size=1.0, friction=1.0)
    cx, cv = baoab_stationary_cov(SIGMA, 1.0)
    got_x, got_v = torch.cov(st.x.T), torch.cov(st.v.T)
    assert ((got_x - cx).abs() < cov_tolerance(cx, N)).all(), got_x
    assert ((got_v - cv).abs() < cov_tolerance(cv, N)).all(), got_v
    assert ((got_v - torch.eye(2, dtype=torch.float64)).abs() > cov_tolerance(cv, N)).any()


def test_large_friction_is_the_overdamped_leimkuhler_matthews_scheme(gauss):
    # gamma h -> inf: O redraws v, and BAOAB's positions follow
    # x' = x - delta grad E(x) + sqrt(delta T / 2) (xi_prev + xi), delta = h^2 / 2
    # (overdamped Langevin with step delta), after a first step that uses the initial v.
    h, n = 0.5, 40
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    st = run_kernel(gauss, x0, n, seed=9, step_size=h, friction=1e6)
    gen = torch.Generator().manual_seed(9)
    xi_prev = torch.randn(x0.shape, generator=gen, dtype=torch.float64)  # the initial v
    delta = h * h / 2
    xi = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x = x0 + h / 2 * xi_prev - h * h / 4 * gauss.grad(x0) + h / 2 * xi
    for _ in range(n - 1):
        xi_prev, xi = xi, torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        x = x - delta * gauss.grad(x) + math.sqrt(delta / 2) * (xi_prev + xi)
    assert torch.allclose(st.x, x, atol=1e-12), (st.x - x).abs().max()


def test_large_friction_mean_relaxes_as_overdamped_langevin(gauss):
    # In expectation the scheme above is the gradient flow of SGLD with step delta:
    # E x_n - m = (I - delta A)^(n-1) (I - delta A / 2) (x0 - m). 4 standard errors of the mean.
    h, n, x0 = 0.5, 12, torch.tensor([4.0, -3.0], dtype=torch.float64)
    st = run_kernel(gauss, x0.expand(N, 2).clone(), n, seed=4, step_size=h, friction=1e6)
    eye, delta = torch.eye(2, dtype=torch.float64), h * h / 2
    want = MEAN + torch.linalg.matrix_power(eye - delta * PREC, n - 1) @ (
        eye - delta * PREC / 2) @ (x0 - MEAN)
    se = torch.sqrt(torch.cov(st.x.T).diagonal() / N)
    assert ((st.x.mean(0) - want).abs() < 4 * se).all(), (st.x.mean(0), want)


def test_fused_loop_agrees_with_the_reference_kernel(gauss):
    x0 = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = run_kernel(gauss, x0, 50, seed=3, step_size=0.3, friction=0.7)
    gen = torch.Generator().manual_seed(3)
    st = underdamped_init(gauss.energy, x0.clone(), gen, grad=gauss.grad)
    x, v, g = st.x.clone(), st.v.clone(), st.grad.clone()
    paths = torch.empty(5, 50, 2, dtype=torch.float64)
    underdamped_loop(x, v, g, inplace_grad(gauss), 50, 0.3, 0.7, 1.0, gen, paths_out=paths)
    assert torch.allclose(x, ref.x, atol=1e-12) and torch.allclose(v, ref.v, atol=1e-12)
    assert torch.allclose(g, gauss.grad(x)) and torch.equal(paths[:, -1], x[:5])


def test_runner_fast_path_matches_the_kernel(gauss):
    # run() draws its uniform initial points first, then the velocities: replay that.
    cfg = SampleConfig(sampler="underdamped", chains=50, steps=40, dtype="float64", seed=11,
                       friction=2.0)
    tr = sample(gauss, cfg)
    gen = torch.Generator().manual_seed(11)
    x0, x1, y0, y1 = gauss.box
    u = torch.rand(50, 2, generator=gen, dtype=torch.float64)
    x = torch.stack([x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]], 1)
    st = underdamped_init(gauss.energy, x, gen, grad=gauss.grad)
    gen = steps_rng(gen, cfg)  # then the steps' noise stream
    for _ in range(40):
        st, _ = underdamped_step(gauss.energy, st, gen, step_size=0.3, friction=2.0,
                                 grad=gauss.grad)
    assert torch.allclose(tr.x, st.x, atol=1e-10)


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_runs_finite(name):
    t = make_target(name)
    tr = sample(t, SampleConfig(sampler="underdamped", chains=32, steps=30, step_size=0.01,
                                friction=1.0, seed=0))
    assert tr.n_diverged == 0 and torch.isfinite(tr.positions).all()


def test_bad_friction_is_a_validation_error(gauss):
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValidationError, match="friction"):
            SampleConfig(sampler="underdamped", friction=bad).validate()
    with pytest.raises(ValidationError, match="stability"):
        baoab_stationary_cov(SIGMA, 2.0)


def test_cli_underdamped_and_bad_friction(capsys):
    from ebmcore.cli.main import main

    assert main(["sample", "--sampler", "underdamped", "--friction", "2", "--chains", "50",
                 "--steps", "30", "--json"]) == 0
    assert '"friction": 2.0' in capsys.readouterr().out
    assert main(["sample", "--sampler", "underdamped", "--friction", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "friction" in err and err.count("\n") == 1
