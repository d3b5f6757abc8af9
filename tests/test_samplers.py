"""Kernels and runs on the reference Gaussian, whose stationary laws are known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.energies import ValidationError
from ebmcore.exact.density import sgld_stationary_cov
from ebmcore.sampling.kernels import init_state, mala_step
from ebmcore.sampling.runner import SampleConfig, run, sample
from tests.conftest import MEAN, SIGMA

N = 20_000  # chains; final positions are iid draws from the chain's law at that step


def cov_tolerance(cov: torch.Tensor, n: int) -> torch.Tensor:
    """4 standard errors of each sample-covariance entry for n Gaussian draws.

    Var(S_ij) = (C_ij^2 + C_ii C_jj) / n (Wishart second moments).
    """
    d = cov.diagonal()
    return 4 * torch.sqrt((cov**2 + d[:, None] * d[None, :]) / n)


def final_cov(gauss, **kw) -> torch.Tensor:
    cfg = SampleConfig(chains=N, dtype="float64", seed=3, max_points=10_000, **kw)
    tr = sample(gauss, cfg)
    assert tr.n_diverged == 0
    return torch.cov(tr.x.T)


def test_sgld_reaches_the_exact_ula_covariance_not_sigma(gauss):
    # From the uniform start, the error contracts by (1 - eps / 3) per step: 0.9^300 ~ 2e-14.
    cov = final_cov(gauss, sampler="sgld", step_size=0.3, steps=300)
    ula = sgld_stationary_cov(SIGMA, 0.3)
    tol = cov_tolerance(ula, N)
    assert ((cov - ula).abs() < tol).all(), (cov, ula)
    assert ((cov - SIGMA).abs() > tol).any()  # the bias is resolved, not hidden in noise


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_adjusted_samplers_reach_sigma(gauss, sampler):
    cov = final_cov(gauss, sampler=sampler, step_size=0.3, steps=400, n_leapfrog=5)
    assert ((cov - SIGMA).abs() < cov_tolerance(SIGMA, N)).all(), cov


def test_temperature_scales_the_covariance(gauss):
    # MALA at temperature T samples p^(1/T) = N(m, T Sigma).
    cov = final_cov(gauss, sampler="mala", step_size=0.3, steps=400, temperature=2.0)
    assert ((cov - 2 * SIGMA).abs() < cov_tolerance(2 * SIGMA, N)).all()


@pytest.mark.parametrize("init", ["uniform", "gaussian", "point"])
def test_noise_off_descends_to_the_mode(gauss, init):
    cfg = SampleConfig(noise=False, steps=400, chains=64, dtype="float64", init=init,
                       init_point=(5.0, -5.0), init_std=3.0)
    tr = sample(gauss, cfg)
    # Gradient descent contracts by at least 0.9 per step: 0.9^400 * 20 < 1e-16.
    assert (tr.x - MEAN).abs().max() < 1e-9
    # MAP climbs above the typical log-likelihood: mean energy ends near 0 (the mode).
    assert tr.mean_energy[-1] < 1e-12


def test_same_seed_same_numbers(gauss):
    cfg = SampleConfig(sampler="mala", steps=50, chains=10, seed=7)
    a, b = sample(gauss, cfg), sample(gauss, cfg)
    assert torch.equal(a.positions, b.positions)
    c = sample(gauss, SampleConfig(sampler="mala", steps=50, chains=10, seed=8))
    assert not torch.equal(a.positions, c.positions)


def test_huge_step_is_reported_as_divergence_not_nan(gauss):
    tr = sample(gauss, SampleConfig(step_size=3.0, steps=500, chains=50))
    assert tr.n_diverged == 50 and tr.first_diverged_step is not None
    assert "50 of 50 chains diverged" in tr.divergence_message()
    assert torch.isfinite(tr.positions).all() and torch.isfinite(tr.mean_energy).all()
    assert torch.isfinite(tr.paths).all()


def test_partial_divergence_freezes_only_the_bad_chains(gauss):
    # Energy that is NaN beyond x = 6: chains started there die, the others carry on.
    def energy(x):
        e = gauss(x)
        return torch.where(x[:, 0] > 6, torch.full_like(e, math.nan), e)

    t = type(gauss)("nan-right", energy, gauss.box)
    x0 = torch.zeros(10, 2)
    x0[:3, 0] = 7.0
    tr = sample(t, SampleConfig(steps=20, chains=10, step_size=0.1), x0=x0)
    assert tr.n_diverged == 3 and tr.first_diverged_step == 0
    assert torch.isfinite(tr.positions).all()
    assert tr.kept().shape[1] == 7


def test_memory_stays_bounded_and_thinning_is_reported(gauss):
    cfg = SampleConfig(steps=2000, chains=1000, max_points=100_000, keep_paths=4)
    tr = sample(gauss, cfg)
    assert tr.positions.numel() // 2 <= 100_000 + 1000
    assert tr.thin == math.ceil(2001 * 1000 / 100_000)
    assert tr.paths.shape == (4, 2001, 2)  # full paths kept for 4 chains
    assert int(tr.steps[-1]) == 2000 - 2000 % tr.thin


def test_events_stream_and_can_stop_early(gauss):
    events = []
    for ev in run(gauss, SampleConfig(steps=100, chains=5, report_every=10)):
        events.append(ev)
        if ev.step == 40:
            break  # stopping is breaking the loop
    assert [e.step for e in events] == [10, 20, 30, 40]
    assert events[-1].trace.done == 40 and not events[-1].finished


def test_mala_rejects_every_nan_proposal(gauss):
    g = torch.Generator().manual_seed(0)
    state = init_state(gauss, torch.zeros(100, 2, dtype=torch.float64))

    def nan_energy(x):
        return torch.full((x.shape[0],), math.nan, dtype=x.dtype)

    # State energies are finite; proposals are NaN: acceptance must be exactly 0.
    new, info = mala_step(nan_energy, state, g, step_size=0.1, grad=lambda x: torch.zeros_like(x))
    assert torch.equal(new.x, state.x) and float(info.accept_prob.max()) == 0.0


def test_acceptance_tracks_step_size(gauss):
    small = sample(gauss, SampleConfig(sampler="mala", step_size=1e-3, steps=50, chains=200))
    big = sample(gauss, SampleConfig(sampler="mala", step_size=5.0, steps=50, chains=200))
    assert small.acceptance > 0.99 and big.acceptance < 0.2


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"step_size": 0.0}, "step size"),
        ({"step_size": math.nan}, "step size"),
        ({"chains": 0}, "chains"),
        ({"steps": 0}, "steps"),
        ({"chains": 10**9}, "chains"),
        ({"sampler": "nuts"}, "unknown sampler"),
        ({"sampler": "mala", "noise": False}, "SGLD only"),
        ({"burn_in": 5000}, "burn-in"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_bad_configs_are_refused_clearly(gauss, kw, msg):
    with pytest.raises(ValidationError, match=msg):
        sample(gauss, SampleConfig(**kw))


def test_fast_inplace_path_matches_the_pure_kernels(gauss):
    # The in-place loop (closed-form gradient) and the pure sgld_step (autograd) draw the same
    # random numbers: the two runs agree to float64 rounding, paths and energies included.
    slow = type(gauss)("autograd", gauss.energy, gauss.box)  # same energy, no closed form
    cfg = SampleConfig(steps=300, chains=50, dtype="float64", keep_paths=3, seed=5)
    a, b = sample(gauss, cfg), sample(slow, cfg)
    assert torch.allclose(a.positions, b.positions, atol=1e-10)
    assert torch.allclose(a.paths, b.paths, atol=1e-10)
    assert torch.allclose(a.mean_energy, b.mean_energy, atol=1e-10)


def test_caller_initial_points_are_not_modified(gauss):
    x0 = torch.zeros(8, 2)
    sample(gauss, SampleConfig(steps=10, chains=8), x0=x0)
    assert torch.equal(x0, torch.zeros(8, 2))
