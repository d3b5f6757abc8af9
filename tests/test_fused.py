"""The fused run (in-place SGLD between checks) against the per-step reference kernels.

Both draw the same random numbers from the same seed, so in float64 they must agree to
rounding: 1e-10 over a few hundred steps of contractive dynamics (errors of 1e-16 per step
grow by at most (1 + eps L) per step, far below the tolerance at these step sizes).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from ebmcore.sampling.runner import CHECK_EVERY, SampleConfig, run, sample
from ebmcore.targets.registry import TARGETS, make_target

# Small steps keep every chain started uniformly over each box stable (the steepest box
# corners, banana's and funnel's, have |grad E| L eps < 1 there).
EPS = 2e-4


def _pair(name: str, sampler: str = "sgld", **kw) -> tuple:
    t = make_target(name)
    cfg = SampleConfig(steps=150, chains=40, dtype="float64", keep_paths=5, seed=11,
                       step_size=EPS, sampler=sampler, n_leapfrog=3, **kw)
    return sample(t, cfg), sample(t, dataclasses.replace(cfg, fused=False))


@pytest.mark.parametrize("sampler", ["sgld", "mala", "hmc", "underdamped"])
@pytest.mark.parametrize("name", list(TARGETS))
def test_fused_run_equals_reference_kernels_on_every_target(name, sampler):
    a, b = _pair(name, sampler)
    assert a.n_diverged == b.n_diverged == 0
    for field in ("x", "positions", "paths", "mean_energy", "steps", "path_steps"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=1e-10)
    assert a.thin == b.thin
    if sampler in ("mala", "hmc"):
        assert math.isclose(a.acceptance, b.acceptance, rel_tol=1e-12)


def test_thinned_frames_and_paths_agree():
    # max_points forces thin > 1 and 6000 steps forces thinned paths (path_thin = 2).
    t = make_target("gaussian")
    cfg = SampleConfig(steps=6000, chains=300, dtype="float64", keep_paths=3, seed=2,
                       max_points=100_000, step_size=0.1)
    a, b = sample(t, cfg), sample(t, dataclasses.replace(cfg, fused=False))
    assert a.thin > 1 and int(a.path_steps[1]) == 2
    for field in ("x", "positions", "paths", "mean_energy", "steps", "path_steps"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=1e-10)


def test_divergence_is_reported_within_check_every_steps():
    t = make_target("gaussian")
    cfg = SampleConfig(step_size=3.0, steps=500, chains=50, seed=1)
    a, b = sample(t, cfg), sample(t, dataclasses.replace(cfg, fused=False))
    assert a.n_diverged == b.n_diverged == 50
    first = b.first_diverged_step  # the reference checks every step: the exact first step
    assert first <= a.first_diverged_step < first + CHECK_EVERY
    assert "50 of 50 chains diverged (first seen at step" in a.divergence_message()
    assert torch.isfinite(a.positions).all() and torch.isfinite(a.mean_energy).all()
    assert torch.isfinite(a.paths).all()


def test_partial_divergence_freezes_bad_chains_in_recorded_frames():
    # Chains started at x = 30 on banana blow up at eps = 0.05; those at the mode do not.
    t = make_target("banana")
    x0 = torch.zeros(20, 2, dtype=torch.float64)
    x0[:4, 0] = 30.0
    cfg = SampleConfig(step_size=0.05, steps=200, chains=20, dtype="float64", keep_paths=6)
    tr = sample(t, cfg, x0=x0)
    assert tr.n_diverged == 4 and not bool(tr.alive[:4].any()) and bool(tr.alive[4:].all())
    assert torch.isfinite(tr.positions).all() and torch.isfinite(tr.mean_energy).all()
    assert torch.isfinite(tr.paths).all() and tr.kept().shape[1] == 16
    # A frozen chain stays at one finite point in every frame after it was caught.
    last = tr.positions[-1, :4]
    assert torch.equal(tr.positions[-2, :4], last) and torch.equal(tr.x[:4], last)


def test_events_carry_the_trace_so_far_and_same_seed_same_numbers():
    t = make_target("mixture")
    cfg = SampleConfig(steps=100, chains=30, report_every=10, seed=4, step_size=0.01)
    steps = [ev.step for ev in run(t, cfg)]
    assert steps == list(range(10, 101, 10))
    a, b = sample(t, cfg), sample(t, cfg)
    assert torch.equal(a.positions, b.positions) and torch.equal(a.paths, b.paths)


def test_finite_position_with_non_finite_energy_is_frozen_and_reported():
    # The energy is +inf right of x = 3 while its closed-form gradient stays finite and pulls
    # every chain to x = 10: the fused loop's position check passes, the frame energies catch it.
    from ebmcore.energies import Target

    def energy(x):
        e = 0.5 * ((x[:, 0] - 10.0) ** 2 + x[:, 1] ** 2)
        return torch.where(x[:, 0] > 3.0, torch.full_like(e, math.inf), e)

    def grad(x):
        return torch.stack((x[:, 0] - 10.0, x[:, 1]), 1)

    t = Target("inf-right", energy, (-5.0, 5.0, -5.0, 5.0), {}, grad)
    # Gradient descent: x_t = 10 - (10 - x_0) 0.999^t.  From 2.9 the wall is crossed by step
    # 20; from -3 the chains reach only -1.76 in 100 steps.
    x0 = torch.zeros(10, 2, dtype=torch.float64)
    x0[:5, 0], x0[5:, 0] = 2.9, -3.0
    cfg = SampleConfig(steps=100, chains=10, dtype="float64", step_size=1e-3, noise=False)
    tr = sample(t, cfg, x0=x0)
    assert tr.n_diverged == 5 and not bool(tr.alive[:5].any()) and bool(tr.alive[5:].all())
    assert torch.isfinite(tr.mean_energy).all() and torch.isfinite(tr.positions).all()
    assert 0 < tr.first_diverged_step <= 20 + CHECK_EVERY
