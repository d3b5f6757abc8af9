"""The Fokker–Planck solver against exact answers: mass, stationary law, Ornstein–Uhlenbeck."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from ebmcore.energies import ValidationError
from ebmcore.exact.density import sgld_stationary_cov
from ebmcore.exact.flow_compare import (
    bin_masses,
    compare_run,
    histogram,
    histogram_kl,
    kl_floor,
)
from ebmcore.exact.fokker_planck import (
    FlowConfig,
    _Stepper,
    evolve,
    flow_frames,
    initial_density,
    ou_moments,
    stationary_density,
)
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.formula import formula_target
from ebmcore.targets.registry import TARGETS, make_target

SIGMA = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # the registry's default
START = (2.0, -1.0)
START_STD = 0.5


def _all_targets():
    for name in TARGETS:
        yield name, make_target(name)
    yield "formula", formula_target("(x**2 + y**2 - 4)**2 / s", (-4, 4, -4, 4), {"s": 0.5})


@pytest.mark.parametrize(("name", "target"), list(_all_targets()), ids=lambda v: str(v)[:12])
def test_every_target_keeps_mass_and_positivity_and_kl_never_grows(name, target):
    # The split backward-Euler operators are column-stochastic with nonnegative
    # inverses: mass is kept to rounding (~1e-16 per step), rho >= 0 exactly, and
    # KL(rho || p_T) is nonincreasing by the data-processing inequality.
    cfg = FlowConfig(t_end=2.0, frames=4, dt=0.02, grid=64, chunk_steps=25)
    kls = []
    for f in evolve(target, cfg):
        assert abs(f.mass - 1.0) < 1e-10, (name, f.t, f.mass)
        assert bool(torch.isfinite(f.rho).all()) and float(f.rho.min()) >= 0.0
        assert math.isfinite(f.kl) and f.kl >= -1e-12
        kls.append(f.kl)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(kls)), (name, kls)
    assert kls[-1] < kls[0]
    assert float(f.rho.sum()) == pytest.approx(1.0, abs=1e-10) and f.t == 2.0


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize(("name", "target"), list(_all_targets()), ids=lambda v: str(v)[:12])
def test_normalised_grid_density_is_the_exact_stationary_state(name, target, temperature):
    p = stationary_density(target, 64, temperature)
    stepper = _Stepper(-p.log_prob, target.box, temperature, 0.05)
    rho = p.prob.clone()
    for _ in range(4):
        rho = stepper.step(rho)
    # A fixed point up to rounding: relative to each cell's mass, and absolutely.
    err = (rho - p.prob).abs()
    assert float(err.max()) < 1e-14
    big = p.prob > 1e-200
    assert float((err[big] / p.prob[big]).max()) < 1e-9


def test_long_run_converges_to_the_grid_density():
    target = make_target("gaussian")
    # Backward Euler is stable at any step: dt = 0.5 reaches t = 100 in 200 steps,
    # where the slowest mode (rate 1/3) has decayed by e^-33.
    f = flow_frames(target, FlowConfig(times=(100.0,), dt=0.5, grid=64))[-1]
    p = stationary_density(target, 64)
    assert float((f.rho - p.prob).abs().max()) < 1e-12
    assert abs(f.kl) < 1e-12


def _ou_errors(temperature: float) -> dict[tuple[int, float], torch.Tensor]:
    target = make_target("gaussian")
    out = {}
    for n in (64, 128):
        for dt in (0.02, 0.01, 0.005):
            cfg = FlowConfig(times=(1.0,), dt=dt, grid=n, init="gaussian", init_point=START,
                             init_std=START_STD, temperature=temperature)
            f = flow_frames(target, cfg)[-1]
            out[n, dt] = torch.cat([f.mean, f.cov.reshape(-1)])
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_ornstein_uhlenbeck_moments_match_the_closed_form_to_the_grid_accuracy(temperature):
    m, c, rate = ou_moments(torch.zeros(2), SIGMA, torch.tensor(START),
                            START_STD**2 * torch.eye(2), 1.0, temperature)
    assert rate == pytest.approx(1.0 / 3.0)
    exact = torch.cat([m, c.reshape(-1)])
    r = _ou_errors(temperature)

    def err(v: torch.Tensor) -> float:
        return float((v - exact).abs().max())

    # The scheme is O(dt) + O(h^2).  Time order: eliminate the space error by
    # Richardson in h (4 r_128 - r_64) / 3; the remaining error must halve with dt.
    space_free = {dt: err((4 * r[128, dt] - r[64, dt]) / 3) for dt in (0.02, 0.01, 0.005)}
    assert 1.7 < space_free[0.02] / space_free[0.01] < 2.3, space_free
    assert 1.7 < space_free[0.01] / space_free[0.005] < 2.3, space_free
    # Space order: eliminate the time error by Richardson in dt (2 r_dt/2 - r_dt);
    # the remaining error must quarter when the grid doubles.
    time_free = {n: err(2 * r[n, 0.005] - r[n, 0.01]) for n in (64, 128)}
    assert 3.3 < time_free[64] / time_free[128] < 4.7, time_free
    # So the error of the finest run is its Richardson estimate: the change on
    # halving dt (first order: error ~ that change) plus a third of the change on
    # halving h (second order); 1.5x covers the higher-order terms.
    estimate = (float((r[128, 0.005] - r[128, 0.01]).abs().max())
                + float((r[128, 0.005] - r[64, 0.005]).abs().max()) / 3)
    assert err(r[128, 0.005]) < 1.5 * estimate
    assert estimate < 5e-3


def test_initial_laws_are_the_chains_starts_on_the_grid():
    target = make_target("gaussian")
    x0, x1, _, _ = target.box
    h = (x1 - x0) / 64
    for init, mean, var in (("uniform", (0.0, 0.0), ((x1 - x0) ** 2 - h * h) / 12),
                            ("gaussian", START, START_STD**2)):
        cfg = FlowConfig(t_end=1.0, grid=64, init=init, init_point=START, init_std=START_STD)
        f = next(evolve(target, cfg))
        assert f.t == 0.0 and f.step == 0
        assert torch.allclose(f.mean, torch.tensor(mean, dtype=torch.float64), atol=1e-10)
        assert torch.allclose(f.cov, var * torch.eye(2, dtype=torch.float64), atol=1e-10)
    # A point spreads over its 4 nearest centres with bilinear weights: its mean is kept.
    rho = initial_density(target, FlowConfig(grid=64, init="point", init_point=(0.3, -1.7)))
    assert int((rho > 0).sum()) == 4 and float(rho.sum()) == pytest.approx(1.0, abs=1e-15)
    f = next(evolve(target, FlowConfig(grid=64, init="point", init_point=(0.3, -1.7))))
    assert torch.allclose(f.mean, torch.tensor([0.3, -1.7], dtype=torch.float64), atol=1e-12)
    with pytest.raises(ValidationError, match="outside the box"):
        initial_density(target, FlowConfig(init="point", init_point=(100.0, 0.0)))


def test_a_uniform_start_over_an_init_box_is_the_exact_cell_law_of_the_chains():
    target = formula_target("(x**2 + y**2) / 2", (-6, 6, -6, 6))  # 64 cells of 0.1875
    # a box on cell edges covers whole cells equally; one off the edges covers partial cells
    # by their overlap, so the law's mean is the box's centre along an axis where the
    # partial cells sit symmetrically (x here: -1 and 1 are both 1/3 into a cell).
    edge = FlowConfig(grid=64, init="uniform", init_box=(-1.5, 0.375, 0.0, 3.0))
    rho = initial_density(target, edge)
    assert int((rho > 0).sum()) == 10 * 16 and float(rho.sum()) == pytest.approx(1.0, abs=1e-13)
    assert torch.allclose(rho[rho > 0], torch.full((160,), 1 / 160, dtype=torch.float64))
    cfg = FlowConfig(grid=64, init="uniform", init_box=(-1.0, 1.0, -2.0, 0.5))
    f = next(evolve(target, cfg))
    assert float(f.mean[0]) == pytest.approx(0.0, abs=1e-12)
    # and the chains: 2e5 uniform starts from the sampler's rule land on the same cell masses
    # (each cell's count is within 5 binomial standard deviations of the law's mass)
    trace = sample(target, SampleConfig(steps=1, chains=200_000, init="uniform",
                                        init_box=cfg.init_box, dtype="float64"))
    x0 = trace.positions[0]
    ix = ((x0[:, 0] + 6) / 0.1875).floor().long().clamp(0, 63)
    iy = ((x0[:, 1] + 6) / 0.1875).floor().long().clamp(0, 63)
    counts = torch.zeros(64, 64, dtype=torch.float64).index_put_((iy, ix), torch.ones_like(
        ix, dtype=torch.float64), accumulate=True)
    p = initial_density(target, cfg)
    sd = (200_000 * p * (1 - p)).sqrt()
    assert bool(((counts - 200_000 * p).abs() <= 5 * sd + 1e-9).all())
    with pytest.raises(ValidationError, match="init box"):
        FlowConfig(init_box=(1.0, 0.0, 0.0, 1.0)).validate()


def test_events_are_bounded_and_do_not_change_the_frames():
    target = make_target("banana")
    base = FlowConfig(t_end=1.0, frames=2, dt=0.01, grid=32, chunk_steps=1000)
    events = list(evolve(target, dataclasses.replace(base, chunk_steps=7)))
    steps = [e.step for e in events]
    assert all(b - a <= 7 for a, b in itertools.pairwise(steps))
    assert any(not e.requested for e in events)
    frames = [e for e in events if e.requested]
    ref = flow_frames(target, base)
    assert [f.t for f in frames] == [f.t for f in ref] == [0.0, 0.5, 1.0]
    for a, b in zip(frames, ref, strict=True):
        assert torch.equal(a.rho, b.rho)


@pytest.mark.parametrize("bad", [
    {"dt": 0.0}, {"dt": math.nan}, {"temperature": -1.0}, {"grid": 7}, {"grid": 4096},
    {"t_end": 0.0}, {"t_end": math.inf}, {"frames": 0}, {"init": "nowhere"},
    {"init_point": (math.nan, 0.0)}, {"times": (1.0, 0.5)}, {"times": (-1.0,)},
    {"t_end": 1e7}, {"chunk_steps": 0}, {"init_std": 0.0},
])
def test_bad_configs_raise_validation_errors(bad):
    with pytest.raises(ValidationError):
        FlowConfig(**bad).validate()


def test_kl_floor_is_the_mean_kl_of_iid_histograms():
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(64, generator=gen, dtype=torch.float64) ** 3
    p /= p.sum()
    for n in (50, 5000):  # exact binomial sums (small n p) and the expansion (n p > 1000)
        kls = torch.tensor([histogram_kl(torch.bincount(
            torch.multinomial(p, n, True, generator=gen), minlength=64).double(), p)
            for _ in range(2000)], dtype=torch.float64)
        # 2000 independent replicates: the Monte Carlo mean is within 4 standard errors.
        se = float(kls.std()) / math.sqrt(len(kls))
        assert abs(float(kls.mean()) - kl_floor(n, p)) < 4 * se, n


def test_sgld_histograms_follow_rho_t_within_the_finite_sample_floor():
    target = make_target("gaussian")
    eps, chains = 0.005, 20_000
    cfg = SampleConfig(step_size=eps, steps=200, chains=chains, init="gaussian",
                       init_point=START, init_std=START_STD, dtype="float64", seed=3)
    trace = sample(target, cfg)
    rows = list(compare_run(target, trace, grid=128, bins=32))
    assert [r.step for r in rows] == trace.steps.tolist()
    # tv for N iid draws is the floor plus fluctuations whose sd is at most
    # 0.5 / sqrt(N) (each bin's |count / N - P| has variance <= P / N); SGLD's
    # O(eps) bias and the solver's O(dt + h^2) error are far below that here.
    slack = 4 * 0.5 / math.sqrt(chains)
    for r in rows:
        assert r.tv < r.tv_floor + slack, (r.step, r.tv, r.tv_floor)
    # The check has power: the same histograms against rho at twice their time fail.
    wrong = list(compare_run(target, dataclasses.replace(
        trace, config=dataclasses.replace(cfg, step_size=2 * eps)), grid=128, bins=32))
    assert max(w.tv - w.tv_floor for w in wrong) > 5 * slack


def test_large_eps_histogram_stalls_at_the_exact_sgld_bias():
    # At eps = 1 the SGLD chain on N(0, S) is stationary at N(0, S_eps) (exact, see
    # sgld_stationary_cov), so KL(histogram || p) tends to KL(N(0, S_eps) || N(0, S))
    # plus the finite-sample floor, while the exact flow's KL tends to 0.
    target = make_target("gaussian")
    eps, chains = 1.0, 20_000
    cfg = SampleConfig(step_size=eps, steps=40, chains=chains, init="gaussian",
                       init_point=START, init_std=START_STD, dtype="float64", seed=4)
    trace = sample(target, cfg)
    s_eps = sgld_stationary_cov(SIGMA, eps)
    closed = 0.5 * float(torch.trace(torch.linalg.solve(SIGMA, s_eps)) - 2
                         + torch.logdet(SIGMA) - torch.logdet(s_eps))
    p = bin_masses(stationary_density(target, 128).prob, 32)
    counts, inside, _ = histogram(trace.x, target.box, 32)
    excess = histogram_kl(counts, p) - kl_floor(inside, p)
    # sd of a histogram KL ~ sqrt(2 KL / N) = 0.004 here; binning (bins of a third of
    # the smallest std) loses a few percent of the KL.
    assert abs(excess - closed) < 0.02, (excess, closed)
    flow = flow_frames(target, FlowConfig(times=(40.0,), dt=0.1, grid=128, init="gaussian",
                                          init_point=START, init_std=START_STD))[-1]
    assert flow.kl < 1e-4 < closed / 100


@pytest.mark.parametrize(("name", "target"), list(_all_targets()), ids=lambda v: str(v)[:12])
def test_drift_field_points_down_the_energy_with_log_scaled_lengths(name, target):
    from ebmcore.targets.field import drift_field

    f = drift_field(target, arrows=12)
    assert f.x.shape == f.u.shape == (144,)
    length = torch.hypot(f.u, f.v)
    assert float(length.max()) == pytest.approx(f.spacing) and bool((length >= 0).all())
    # Monotone in the true magnitude, and along -grad E: one step down the arrow lowers E.
    order = torch.argsort(f.magnitude)
    assert bool((length[order].diff() >= -1e-12).all())
    pts = torch.stack([f.x, f.y], 1)
    e0 = target(pts).double()
    e1 = target(pts + 1e-4 * torch.stack([f.u, f.v], 1) / f.spacing).double()
    moving = f.magnitude > 1e-6
    assert bool((e1[moving] < e0[moving]).all()), name


def test_drift_field_of_a_gaussian_is_minus_a_x():
    from ebmcore.targets.field import drift_field

    f = drift_field(make_target("gaussian"), arrows=4)
    g = torch.stack([f.x, f.y], 1) @ torch.linalg.inv(SIGMA)
    assert torch.allclose(f.magnitude, g.norm(dim=1), atol=1e-12)
    direction = torch.stack([f.u, f.v], 1) / torch.hypot(f.u, f.v)[:, None]
    assert torch.allclose(direction, -g / g.norm(dim=1, keepdim=True), atol=1e-12)
    with pytest.raises(ValidationError):
        drift_field(make_target("gaussian"), arrows=1)


def test_side_by_side_panels_share_one_scale_and_integrate_to_one():
    from ebmcore.exact.flow_compare import side_by_side

    target = make_target("mixture")
    frame = flow_frames(target, FlowConfig(times=(0.5,), grid=64))[-1]
    samples = target.sample(5000, torch.Generator().manual_seed(0))
    panels = side_by_side(frame.rho, samples, target.box, bins=16)
    x0, x1, y0, y1 = target.box
    area = (x1 - x0) * (y1 - y0) / 16**2
    assert float(panels.exact.sum()) * area == pytest.approx(1.0, abs=1e-12)
    assert float(panels.particles.sum()) * area == pytest.approx(1.0, abs=1e-12)  # box: 1 - 1e-8
    assert panels.zmax == max(float(panels.exact.max()), float(panels.particles.max()))
