"""ebmcore.exact.sweep: the eps sweep of discrepancy on the reference Gaussian, exact answers."""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.energies import ValidationError
from ebmcore.exact.density import quadrature, sgld_stationary_cov
from ebmcore.exact.sweep import SweepConfig, SweepPoint, eps_grid, sweep
from ebmcore.targets.registry import make_target

N = 4000  # chains per run
BINS = 16
# Efron-Stein: moving one of N samples changes the TV by at most 1/N, so
# Var(TV) <= N/2 * (1/N)^2 = 1/(2N) and sd(TV) <= sqrt(1/(2N)) = 0.0112 for N = 4000.
SD = math.sqrt(1 / (2 * N))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: intra-op threads only add contention on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def gauss():
    t = make_target("gaussian")  # covariance [[2, 1], [1, 2]]: precision eigenvalues 1, 1/3
    return t, quadrature(t.energy, t.box, 256)


@pytest.fixture(scope="module")
def points(gauss):
    t, gd = gauss
    cfg = SweepConfig(eps=(1.2, 0.1, 2.5), chains=N, bins=BINS, seed=3)
    return list(sweep(t, gd, cfg))


def test_eps_grid_is_log_spaced_with_its_ends():
    g = eps_grid(0.01, 1.0, 5)
    assert g == (0.01, 0.0316, 0.1, 0.316, 1.0)
    for bad in ((0.0, 1.0, 5), (1.0, 0.5, 5), (0.1, 1.0, 1)):
        with pytest.raises(ValidationError):
            eps_grid(*bad)


def test_config_validation_and_step_counts():
    with pytest.raises(ValidationError, match="samplers"):
        SweepConfig(samplers=("nope",)).validate()
    with pytest.raises(ValidationError, match="eps"):
        SweepConfig(eps=(0.1, -1.0)).validate()
    with pytest.raises(ValidationError, match="chains"):
        SweepConfig(chains=0).validate()
    c = SweepConfig(time=20.0, min_steps=100, max_steps=5000)
    assert c.steps_for(0.1) == 200 and c.steps_for(1.0) == 100 and c.steps_for(1e-4) == 5000


def test_yields_every_run_in_eps_order(points):
    assert [(p.sampler, p.eps) for p in points] == [
        ("sgld", 0.1), ("mala", 0.1), ("sgld", 1.2), ("mala", 1.2), ("sgld", 2.5), ("mala", 2.5)]
    assert all(isinstance(p, SweepPoint) and 0 <= p.tv <= 1 for p in points)
    assert points[0].acceptance is None and 0 < points[1].acceptance <= 1


def test_mala_is_exact_and_small_eps_sgld_too(points):
    # Exact iid samples score the floor on average, with sd <= SD: allow 4 SD.  (Chains start
    # uniform and run for time >= 20, 7 relaxation times of the slowest mode (variance 3):
    # the leftover bias e^{-20/3} ~ 1e-3 is far below SD.)
    by = {(p.sampler, p.eps): p for p in points}
    for key in (("sgld", 0.1), ("mala", 0.1), ("mala", 1.2)):
        p = by[key]
        assert p.tv <= p.floor + 4 * SD, key


def test_sgld_bias_at_large_eps_matches_the_exact_stationary_law(gauss, points):
    # At eps = 1.2 unadjusted Langevin converges to N(0, S), S = (A - eps A^2/2)^-1.  The
    # binned TV between that law and the target, T, is exact (quadrature); by the triangle
    # inequality E[tv] >= T - E[TV(sample, N(0, S))] ~ T - floor.  Allow 4 SD below that.
    t, gd = gauss
    s = sgld_stationary_cov(torch.tensor(t.cov, dtype=torch.float64), 1.2)
    prec = torch.linalg.inv(s)
    q = quadrature(lambda x: 0.5 * ((x @ prec.to(x.dtype)) * x).sum(1), t.box, 256)
    k = gd.n // BINS
    p_bins = gd.prob.view(BINS, k, BINS, k).sum((1, 3))
    q_bins = q.prob.view(BINS, k, BINS, k).sum((1, 3))
    exact_tv = 0.5 * float((p_bins - q_bins).abs().sum())
    p = next(p for p in points if p.sampler == "sgld" and p.eps == 1.2)
    assert exact_tv > 0.2  # a large, visible bias
    assert p.tv >= exact_tv - p.floor - 4 * SD
    assert p.tv <= exact_tv + p.floor + 4 * SD


def test_diverged_chains_count_as_missing_mass(points):
    # eps * max eig(A) = 2.5 > 2: every SGLD chain diverges; none is inside the box
    p = next(p for p in points if p.sampler == "sgld" and p.eps == 2.5)
    assert p.n_diverged == N
    assert p.tv == pytest.approx(1.0)


def test_grid_must_hold_the_bins(gauss):
    t, _ = gauss
    gd = quadrature(t.energy, t.box, 40)
    with pytest.raises(ValidationError, match="multiple"):
        next(sweep(t, gd, SweepConfig(bins=16)))


def test_a_sweep_is_priced_whole_before_it_runs():
    from ebmcore.budget import Budget, sampling_cost
    cfg = SweepConfig(eps=(0.01, 0.1), chains=1000, time=10.0, min_steps=10, max_steps=500)
    # 2 samplers x (500 + 100) steps of 1000 chains: exactly the cost of one run that long
    want = sampling_cost(chains=1000, steps=2 * (500 + 100), keep_paths=0, max_points=4000)
    assert cfg.validate(Budget(work=want.work, memory=want.memory)) is cfg
    with pytest.raises(ValidationError, match="chains"):
        cfg.validate(Budget(work=want.work * 0.99, memory=want.memory))
    target = make_target("gaussian")
    gd = quadrature(target.energy, target.box, 64)
    with pytest.raises(ValidationError):  # before the first run, not after some of them
        next(sweep(target, gd, cfg, budget=Budget(work=want.work * 0.99, memory=want.memory)))
