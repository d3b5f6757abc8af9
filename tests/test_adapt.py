"""Automatic step sizes against exact answers; view boxes and modes against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import quadrature
from ebmcore.exact.view import chains_in_modes, modes, view_box
from ebmcore.sampling.adapt import (
    SGLD_FRACTION,
    TARGET_ACCEPT,
    da_final,
    da_init,
    da_update,
    hessian_lambda_max,
    run_auto,
    sgld_step_size,
)
from ebmcore.sampling.kernels import hmc_step, init_state, mala_step
from ebmcore.sampling.runner import SampleConfig
from ebmcore.targets.registry import make_target


def iso_gaussian(sigma: float) -> Target:
    """N(0, sigma^2 I) with its box at 8 sigma."""
    prec = 1.0 / sigma**2

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * prec * (x**2).sum(1)

    def grad(x: torch.Tensor) -> torch.Tensor:
        return prec * x

    h = 8.0 * sigma
    return Target("iso", energy, (-h, h, -h, h), grad=grad)


def stationary_acceptance(target: Target, sampler: str, eps: float, sigma: float,
                          n: int = 400_000) -> float:
    """E[accept prob] of one step from exact stationary draws: the exact mean acceptance.

    With 4e5 iid starting points its standard error is < 1e-3 (a probability's sd <= 0.5).
    """
    gen = torch.Generator().manual_seed(123)
    x = sigma * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    st = init_state(target.energy, x, target.grad)
    step = mala_step if sampler == "mala" else hmc_step
    _, info = step(target.energy, st, gen, step_size=eps, grad=target.grad)
    return float(info.accept_prob.mean())


def optimal_eps(target: Target, sampler: str, sigma: float) -> float:
    """Bisection in log eps for the step whose exact mean acceptance is the target one.

    The bracket follows each sampler's scale: MALA's eps is a time step (~ sigma^2), HMC's a
    leapfrog length (~ sigma, unstable beyond 2 sigma).
    """
    scale, top = (sigma**2, 10.0) if sampler == "mala" else (sigma, 2.0)
    lo, hi = math.log(1e-3 * scale), math.log(top * scale)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if stationary_acceptance(target, sampler, math.exp(mid), sigma) > TARGET_ACCEPT[sampler]:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
@pytest.mark.parametrize("sigma", [0.1, 1.0, 10.0])
def test_dual_averaging_finds_the_step_of_the_target_acceptance(sampler, sigma):
    target = iso_gaussian(sigma)
    cfg = SampleConfig(sampler=sampler, steps=700, burn_in=500, chains=500, init="gaussian",
                       init_std=sigma, dtype="float64", seed=1)
    res = run_auto(target, cfg, quadrature(target.energy, target.box, 128))
    # The exact mean acceptance at the frozen eps (standard error < 1e-3) is the target:
    # with 500 chains the acceptance dual averaging follows has sd < 0.5 / sqrt(500) per
    # step and the averaged iterate smooths ~100 of them, so it is off by < 0.01 (3 sd).
    exact = stationary_acceptance(target, sampler, res.step_size, sigma)
    assert exact == pytest.approx(TARGET_ACCEPT[sampler], abs=0.02)
    if sampler == "mala":
        # MALA's acceptance falls monotonically with eps on a Gaussian, so the root is unique
        # and the optimum known; HMC's oscillates with eps * n_leapfrog and has several roots.
        assert abs(math.log(res.step_size / optimal_eps(target, sampler, sigma))) < 0.10
    # After freezing, the realised acceptance (500 chains x 200 steps, sd < 0.005) follows.
    assert res.trace.acceptance == pytest.approx(exact, abs=0.02)
    assert res.trace.config.burn_in == 0 and res.trace.done == 200


def test_optimal_step_scales_with_the_target():
    # MALA's acceptance depends on eps / sigma^2 only, HMC's on eps / sigma (dimensionless
    # dynamics), so the exact optima must scale that way: a check of the bisection itself.
    e1 = optimal_eps(iso_gaussian(1.0), "mala", 1.0)
    assert optimal_eps(iso_gaussian(3.0), "mala", 3.0) == pytest.approx(9 * e1, rel=0.02)
    h1 = optimal_eps(iso_gaussian(1.0), "hmc", 1.0)
    assert optimal_eps(iso_gaussian(3.0), "hmc", 3.0) == pytest.approx(3 * h1, rel=0.02)


def test_dual_averaging_moves_the_right_way_and_validates():
    s = da_init(1.0, 0.6)
    assert da_final(s) == 1.0
    assert da_update(s, 0.0).step_size < da_update(s, 1.0).step_size
    assert da_update(s, math.nan) == da_update(s, 0.0)  # a NaN acceptance is a rejection
    low, high = s, s
    for _ in range(50):  # persistent rejection shrinks eps below the start, acceptance grows it
        low, high = da_update(low, 0.0), da_update(high, 1.0)
    assert da_final(low) < 1.0 < da_final(high)
    with pytest.raises(ValidationError):
        da_init(0.0, 0.6)
    with pytest.raises(ValidationError):
        da_init(1.0, 1.0)


def test_sgld_curvature_step_on_a_gaussian_is_exact():
    # cov [[2, 1], [1, 2]] has eigenvalues 1 and 3, so the precision's largest is exactly 1.
    t = make_target("gaussian")
    assert hessian_lambda_max(t) == pytest.approx(1.0, rel=1e-9)
    eps, why = sgld_step_size(t)
    assert eps == pytest.approx(SGLD_FRACTION, rel=1e-9)
    assert "lambda_max" in why


def test_sgld_curvature_step_on_a_banana_uses_the_bend():
    # E = x^2/2 + (y - b x^2)^2 / (2 s^2) (shifted); its Hessian has entries growing like x^2,
    # so lambda_max exceeds the y-curvature 1/s^2 = 4.
    t = make_target("banana")
    lam = hessian_lambda_max(t)
    assert lam > 4.0
    assert sgld_step_size(t)[0] == pytest.approx(SGLD_FRACTION / lam)


def test_view_box_of_a_standard_gaussian_is_the_exact_square():
    # For N(0, I) the smallest box holding mass m is the square of half side a with
    # (2 Phi(a) - 1)^2 = m (product density, symmetric and log-concave in each axis).
    t = iso_gaussian(1.0)
    gd = quadrature(t.energy, t.box, 256)
    x0, x1, y0, y1 = view_box(gd)
    a = math.sqrt(2.0) * torch.erfinv(torch.tensor(math.sqrt(0.995), dtype=torch.float64))
    cell = 16.0 / 128  # the search runs on 128 cells per side
    for lo, hi in ((x0, x1), (y0, y1)):
        assert lo == pytest.approx(-float(a), abs=cell) and hi == pytest.approx(float(a), abs=cell)
    # and it really holds the mass (exact by quadrature on the fine grid)
    inside = ((gd.xs >= x0) & (gd.xs <= x1))[None, :] & ((gd.ys >= y0) & (gd.ys <= y1))[:, None]
    assert float(gd.prob[inside].sum()) >= 0.995 - 1e-9


def test_view_box_frames_banana_inside_its_tall_box():
    t = make_target("banana")
    gd = quadrature(t.energy, t.box, 256)
    x0, x1, y0, y1 = view_box(gd)
    bx0, bx1, by0, by1 = t.box
    assert (y1 - y0) < 0.3 * (by1 - by0)  # 42 units tall box, the mass spans about 10
    assert bx0 <= x0 < x1 <= bx1 and by0 <= y0 < y1 <= by1


def test_double_well_barrier_is_its_height():
    # E = h (x^2 - 1)^2 + y^2/2: the wells at x = ±1 (E = 0) meet at the saddle (0, 0), E = h.
    for h in (3.0, 8.0):
        t = make_target("double_well", barrier=h)
        m = modes(quadrature(t.energy, t.box, 256))
        assert len(m.significant()) == 2
        assert m.max_barrier() == pytest.approx(h, abs=0.05)  # grid cells off the exact points


def test_chains_in_separate_wells_are_reported_in_words():
    t = make_target("double_well", barrier=12.0)
    gd = quadrature(t.energy, t.box, 256)
    x = torch.tensor([[-1.0, 0.0]] * 50 + [[1.0, 0.0]] * 50)
    rep = chains_in_modes(x, gd)
    assert rep.separated and rep.occupied == 2 and "separate modes" in rep.message
    one = chains_in_modes(torch.tensor([[-1.0, 0.0]] * 100), gd)
    assert not one.separated and one.occupied == 1
    g = make_target("gaussian")
    rep = chains_in_modes(torch.zeros(10, 2), quadrature(g.energy, g.box, 256))
    assert not rep.separated and rep.message == "the density has one mode"


def test_auto_events_tune_first_then_run_on_from_the_burnt_in_chains():
    from ebmcore.sampling.adapt import Adapting, auto_events
    target = make_target("gaussian")
    gd = quadrature(target.energy, target.box, 128)
    cfg = SampleConfig(sampler="mala", steps=600, burn_in=300, chains=200, init="gaussian")
    events = list(auto_events(target, cfg, gd))
    first_run = next(i for i, e in enumerate(events) if not isinstance(e, Adapting))
    tuning, running = events[:first_run], events[first_run:]
    assert all(isinstance(e, Adapting) and e.trace is None for e in tuning)
    assert not any(isinstance(e, Adapting) for e in running)
    frozen = tuning[-1]
    assert frozen.done and frozen.step == 300 and not any(e.done for e in tuning[:-1])
    # the progress runs on from the burn-in to the requested length, at the frozen eps
    assert 300 < running[0].step and running[-1].step == 600 and running[-1].finished
    tr = running[-1].trace
    assert tr.config.step_size == frozen.step_size and tr.config.burn_in == 0
    assert tr.done == 300  # post-adaptation steps only
    res = run_auto(target, cfg, gd)  # the drained generator: the same numbers
    assert res.step_size == frozen.step_size and torch.equal(res.trace.x, tr.x)
    assert "dual averaging" in frozen.explanation and frozen.explanation == res.explanation
