"""Annealed Langevin: exact smoothing on the grid, and mode weights against quadrature."""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.cli.main import main
from ebmcore.energies import ValidationError
from ebmcore.exact.density import quadrature
from ebmcore.exact.modes import exact_mode_masses, mixture_centres, mode_masses, multinomial_se
from ebmcore.exact.smoothing import smooth
from ebmcore.sampling.annealed import annealed_init, annealed_step, annealing, noise_levels
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.registry import TARGETS, make_target
from tests.conftest import MEAN, SIGMA, gaussian_target


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_smoothed_gaussian_is_the_wider_gaussian(sigma):
    # p * N(0, s^2 I) = N(m, Sigma + s^2 I). Its posterior mean m(x) is linear in x, so
    # bilinear interpolation reproduces it exactly: the gradient is off only by the midpoint
    # rule (spectrally small) and the < 1e-8 mass outside the box. log p_s is quadratic:
    # bilinear interpolation is off by at most (h^2 / 4) lambda_max(P_s).
    t = gaussian_target()
    sg = smooth(quadrature(t.energy, t.box, 256), sigma)
    cov = SIGMA + sigma**2 * torch.eye(2, dtype=torch.float64)
    prec = torch.linalg.inv(cov)
    x = MEAN + torch.randn(4000, 2, generator=torch.Generator().manual_seed(0),
                           dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    d = x - MEAN
    logp = -0.5 * ((d @ prec) * d).sum(1) - 0.5 * torch.logdet(2 * math.pi * cov)
    assert torch.allclose(sg.grad(x), d @ prec, atol=1e-6)
    h = float(sg.xs[1] - sg.xs[0])
    bound = h * h / 4 * float(torch.linalg.eigvalsh(prec).max()) + 1e-6
    assert float((-sg.energy(x) - logp).abs().max()) < bound


def test_beyond_the_grid_the_gradient_confines_and_matches_the_energy_outward():
    # Past an edge the energy's outward derivative is the gradient's outward component
    # (beyond a corner, both components); the gradient points back to the grid.
    t = make_target("mixture")
    sg = smooth(quadrature(t.energy, t.box, 256), 0.5)
    x = torch.tensor([[30.0, -2.0], [-25.0, 40.0]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(sg.energy(x).sum(), x)
    want = sg.grad(x.detach())
    assert torch.allclose(g[0, 0], want[0, 0], rtol=1e-9)
    assert torch.allclose(g[1], want[1], rtol=1e-9)
    assert (want * x.detach()).sum(1).gt(0).all()


def test_mode_masses_of_exact_samples_match_quadrature():
    # 8 equal components: the exact Voronoi masses are 1/8 by symmetry; iid draws give
    # multinomial fractions, within 4 standard errors.
    t = make_target("mixture")
    c = mixture_centres(t)
    exact = exact_mode_masses(quadrature(t.energy, t.box, 256), c)
    assert torch.allclose(exact, torch.full((8,), 1 / 8, dtype=torch.float64), atol=1e-8)
    n = 20_000
    got = mode_masses(t.sample(n, torch.Generator().manual_seed(0)), c)
    assert ((got - exact).abs() < 4 * multinomial_se(exact, n)).all()


def test_annealed_recovers_the_mode_weights_plain_langevin_does_not():
    # All chains start at one of 8 modes. Final positions of independent chains are iid, so
    # mode counts are multinomial: 4 standard errors per mode (8 modes: false alarm < 5e-4).
    t = make_target("mixture")
    c = mixture_centres(t)
    exact = exact_mode_masses(quadrature(t.energy, t.box, 256), c)
    n = 4000
    tol = 4 * multinomial_se(exact, n)
    cfg = dict(step_size=0.01, steps=500, chains=n, init="gaussian", init_point=(2.0, 0.0),
               init_std=0.1, seed=1, keep_paths=0, max_points=4 * n)
    annealed = mode_masses(sample(t, SampleConfig(sampler="annealed", levels=5, sigma_max=2.0,
                                                  **cfg)).x, c)
    plain = mode_masses(sample(t, SampleConfig(sampler="sgld", **cfg)).x, c)
    assert ((annealed - exact).abs() < tol).all(), annealed
    assert ((plain - exact).abs() > 2.5 * tol).any(), plain  # 10 SE: kept wrong, not noise
    assert plain[0] > exact[0] + 2.5 * tol[0]  # too much mass where the chains started


def test_schedule_halves_and_ends_on_the_target():
    assert noise_levels(4, 2.0) == (2.0, 1.0, 0.5, 0.0)
    assert noise_levels(1, 2.0) == (0.0,)
    t = make_target("mixture")
    sched = annealing(t, 3, 1.0, 30)
    assert [sched.level(i) for i in (1, 10, 11, 20, 21, 30)] == [0, 0, 1, 1, 2, 2]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    st = annealed_init(t.energy, x, sched, t.grad)
    for _ in range(30):
        st, _ = annealed_step(t.energy, st, gen, step_size=0.01, schedule=sched, grad=t.grad)
    e, g = t.energy_and_grad(st.x)
    assert st.level == 2 and torch.allclose(st.energy, e) and torch.allclose(st.grad, g)


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_runs_finite(name):
    t = make_target(name)
    # Ladder 1, 0.5, 0: on the widest boxes (banana, funnel) the narrowest level already
    # needs a finer quadrature grid than the default 256 cells.
    tr = sample(t, SampleConfig(sampler="annealed", levels=3, sigma_max=1.0, chains=32,
                                steps=20, step_size=0.005, seed=0))
    assert tr.n_diverged == 0 and torch.isfinite(tr.positions).all()


def test_bad_schedules_are_validation_errors():
    for levels in (0, 13):
        with pytest.raises(ValidationError, match="levels"):
            SampleConfig(sampler="annealed", levels=levels).validate()
    with pytest.raises(ValidationError, match="sigma max"):
        SampleConfig(sampler="annealed", sigma_max=0.0).validate()
    t = make_target("mixture")
    with pytest.raises(ValidationError, match="fewer levels"):
        annealing(t, 12, 1.0, 100)
    gd = quadrature(t.energy, t.box, 64)
    with pytest.raises(ValidationError, match="two grid cells"):
        smooth(gd, 0.1)


def test_cli_annealed_and_bad_levels(capsys):
    assert main(["sample", "--target", "mixture", "--sampler", "annealed", "--levels", "3",
                 "--sigma-max", "1", "--chains", "50", "--steps", "30", "--json"]) == 0
    assert '"sampler": "annealed"' in capsys.readouterr().out
    assert main(["sample", "--sampler", "annealed", "--levels", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "levels" in err and err.count("\n") == 1
