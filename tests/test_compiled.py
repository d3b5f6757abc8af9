"""The compiled (numba) kernels: every registry target is compiled, its energy and gradient
match the target's own, and runs through them match the torch paths from the same seed."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ebmcore.energies import Target
from ebmcore.sampling import compiled_run
from ebmcore.sampling.compiled import compiled_target, energy_grad, grad_block
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.registry import TARGETS, make_target

SAMPLERS = ("sgld", "mala", "hmc", "underdamped")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_compiles_and_matches_its_energy_and_gradient(name, dtype):
    t = make_target(name)
    spec = compiled_target(t, dtype)
    assert spec is not None, f"{name} falls back to torch"
    kind, p = spec
    # Exact samples reach the tails, where the softmax weights underflow.
    pts = t.sample(500, torch.Generator().manual_seed(3))
    got = np.array([energy_grad(kind, p, float(u), float(v), True) for u, v in pts.numpy()])
    with torch.no_grad():
        e, g = t.energy(pts).numpy(), t.grad(pts).numpy()
    # Both in float64: they differ only by rounding of a few operations (~1e-15 relative).
    np.testing.assert_allclose(got[:, 0], e, rtol=1e-12, atol=1e-12 * (np.abs(e).max() + 1))
    np.testing.assert_allclose(got[:, 1:], g, rtol=1e-12, atol=1e-12 * (np.abs(g).max() + 1))


@pytest.mark.parametrize("name", list(TARGETS))
def test_grad_block_equals_the_pointwise_energy_and_gradient(name):
    # The kernels' per-block loop (one branch on the target per block) against energy_grad
    # one point at a time: the same float64 operations, so equal exactly; with and without
    # the energy, on a block shorter than the scratch vectors (m < len).
    t = make_target(name)
    kind, p = compiled_target(t, torch.float64)
    pts = t.sample(300, torch.Generator().manual_seed(4)).numpy()
    u, v, m = pts[:, 0].copy(), pts[:, 1].copy(), 257
    ref = np.array([energy_grad(kind, p, a, b, True) for a, b in pts[:m]])
    for want_e in (True, False):
        e, g0, g1 = np.full(300, 7.0), np.full(300, 7.0), np.full(300, 7.0)
        grad_block(kind, p, u, v, m, want_e, e, g0, g1, np.empty((4, 300)))
        np.testing.assert_array_equal(np.stack([g0, g1], 1)[:m], ref[:, 1:])
        np.testing.assert_array_equal(e[:m], ref[:, 0] if want_e else 0.0)
        assert (g0[m:] == 7.0).all() and (e[m:] == 7.0).all()  # nothing past m written


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(TARGETS))
def test_a_runs_starting_state_is_the_blocks_energy_and_gradient(name, dtype):
    # compiled_run.initial_state over 600 chains (two full blocks and a partial one) gives,
    # chain by chain, what grad_block gives for that chain's block: the values the kernels
    # compute from there on; the float64 ones are the target's own to rounding (above).
    from ebmcore.sampling.compiled_loops import BLOCK

    t = make_target(name)
    spec = compiled_target(t, dtype)
    x = t.sample(600, torch.Generator().manual_seed(5)).to(dtype)
    state = compiled_run.initial_state(spec, x)
    assert state.energy.dtype == dtype and torch.equal(state.x, x)
    for n0 in range(0, 600, BLOCK):
        blk = x[n0:n0 + BLOCK].numpy()
        m = len(blk)
        e, g0, g1 = (np.empty(BLOCK, blk.dtype) for _ in range(3))
        u, v = np.zeros(BLOCK, blk.dtype), np.zeros(BLOCK, blk.dtype)
        u[:m], v[:m] = blk[:, 0], blk[:, 1]
        grad_block(spec[0], spec[1], u, v, m, True, e, g0, g1, np.empty((4, BLOCK), blk.dtype))
        np.testing.assert_array_equal(state.energy[n0:n0 + m].numpy(), e[:m])
        np.testing.assert_array_equal(state.grad[n0:n0 + m].numpy(), np.stack([g0, g1], 1)[:m])
    if dtype == torch.float64:
        with torch.no_grad():
            ref = t.energy(x).numpy()
        np.testing.assert_allclose(state.energy.numpy(), ref, rtol=1e-12,
                                   atol=1e-12 * (np.abs(ref).max() + 1))


@pytest.mark.parametrize("sampler", ("sgld", "mala", "hmc"))
def test_compiled_runs_start_from_the_compiled_state_not_torchs(sampler, monkeypatch):
    from ebmcore.sampling import runner

    def torch_init(*args, **kwargs):
        raise AssertionError("a compiled run evaluated its start with torch")

    monkeypatch.setattr(runner, "init_state", torch_init)
    tr = sample(make_target("u4"), SampleConfig(sampler=sampler, chains=300, steps=20,
                                                step_size=0.01))
    assert tr.alive.all() and torch.isfinite(tr.mean_energy).all()


def test_a_target_whose_parameters_mean_something_else_falls_back():
    ref = make_target("banana")

    def energy(x):
        return 0.5 * (x**2).sum(1)

    def grad(x):
        return x.clone()

    other = Target("banana", energy, ref.box, dict(ref.params), grad)
    assert compiled_target(other, torch.float64) is None
    tr = sample(other, SampleConfig(steps=20, chains=10, step_size=0.1))
    assert tr.n_diverged == 0 and bool(torch.isfinite(tr.positions).all())


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_runs_use_the_compiled_kernels_and_match_the_torch_paths(sampler, monkeypatch):
    # The runner with compiled kernels against itself without them (in-place torch loop for
    # SGLD, the chunked reference kernels otherwise): same seed, same stream, float64 rounding.
    t = make_target("banana")
    cfg = SampleConfig(steps=120, chains=300, dtype="float64", keep_paths=4, seed=5,
                       step_size=2e-3, sampler=sampler, n_leapfrog=4, burn_in=30)
    calls = []
    real = compiled_run.run_compiled

    def spy(*args, **kw):
        calls.append(1)
        yield from real(*args, **kw)

    monkeypatch.setattr("ebmcore.sampling.runner.run_compiled", spy)
    a = sample(t, cfg)
    assert calls, "the compiled kernels were not used"
    monkeypatch.setattr("ebmcore.sampling.runner.compiled_spec", lambda *a: None)
    b = sample(t, cfg)
    assert len(calls) == 1
    for field in ("x", "positions", "paths", "mean_energy"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=1e-10)
    if sampler in ("mala", "hmc"):
        assert abs(a.acceptance - b.acceptance) < 1e-12 and a.acceptance < 1.0


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_float32_runs_agree_with_the_reference_to_rounding(sampler):
    # Per step both round to float32 (2^-24 relative, |x| < 10: 6e-7); on this Gaussian the
    # dynamics contracts by (1 - eps lambda_min) = 0.97 per step (eps 0.1, lambda_min 1/3),
    # so SGLD's accumulated difference stays below 6e-7 / 0.03 = 2e-5; HMC (3 leapfrog steps)
    # and BAOAB round up to 3x as many moves per step: 6e-5 < 1e-4.  An accept decision flips
    # on such a difference only with probability ~1e-5 per chain-step: none here.
    t = make_target("gaussian")
    cfg = SampleConfig(steps=100, chains=64, seed=9, step_size=0.1, sampler=sampler,
                       n_leapfrog=3)
    a, b = sample(t, cfg), sample(t, dataclasses.replace(cfg, fused=False))
    torch.testing.assert_close(a.positions, b.positions, rtol=0, atol=1e-4)
    torch.testing.assert_close(a.mean_energy, b.mean_energy, rtol=1e-5, atol=1e-5)
    if sampler in ("mala", "hmc"):
        # The same decisions (above), so the acceptance probabilities differ by the rounding
        # of log alpha: its terms are below ~10 here, so 10 x 2^-24 x a few operations.
        assert abs(a.acceptance - b.acceptance) < 1e-5


def test_warm_up_loads_every_kernel_once():
    from ebmcore.sampling import compiled_loops as loops

    compiled_run._WARM.clear()
    assert compiled_run.warm_up(background=False) is None and compiled_run._WARM.is_set()
    for kernel in (loops.sgld_chunk, loops.mala_chunk, loops.hmc_chunk, loops.baoab_chunk):
        dtypes = {sig[2].dtype.name for sig in kernel.signatures}  # the positions' dtype
        assert {"float32", "float64"} <= dtypes
    assert compiled_run.warm_up() is None  # once per process


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_runs_of_every_size_and_dtype_are_compiled(sampler):
    for name in TARGETS:
        for dtype in ("float32", "float64"):
            big = SampleConfig(sampler=sampler, chains=1_000_000, steps=10, dtype=dtype)
            assert compiled_run.compiled_spec(make_target(name), big) is not None, name
    unfused = SampleConfig(sampler=sampler, fused=False)
    assert compiled_run.compiled_spec(make_target("banana"), unfused) is None


def test_float32_mixture_block_agrees_with_float64_to_float32_rounding():
    # mixture_block32 computes in float32: each of its ~k + 4 rounded operations on a chain
    # errs by at most 2^-24 of operands bounded by |x| + radius (the weighted mean of the
    # centres is a convex combination of them; exp32 is within 1 ulp), and the gradient
    # divides by var; the energy's terms are bounded by |dmin / 2 var| + |const| + log k.
    t = make_target("mixture")
    kind, p = compiled_target(t, torch.float32)
    k, var, radius = int(p[0]), p[1], t.params["radius"]
    pts = t.sample(300, torch.Generator().manual_seed(6)).numpy().astype(np.float32)
    u, v, m = pts[:, 0].copy(), pts[:, 1].copy(), 257
    ref = np.array([energy_grad(kind, p, float(a), float(b), True) for a, b in pts[:m]])
    e, g0, g1 = (np.full(300, 7.0, np.float32) for _ in range(3))
    grad_block(kind, p, u, v, m, True, e, g0, g1, np.empty((4, 300), np.float32))
    ulp = (k + 4) * 2.0**-24
    bound = ulp * (np.abs(pts[:m]).max(1) + radius) / var
    assert (np.abs(g0[:m] - ref[:, 1]) <= bound).all()
    assert (np.abs(g1[:m] - ref[:, 2]) <= bound).all()
    assert (np.abs(e[:m] - ref[:, 0]) <= ulp * (np.abs(ref[:, 0]) + 2 * abs(p[2]) + 1)).all()
    assert (e[m:] == 7.0).all()


def test_exp32_is_within_one_ulp_of_exp():
    from ebmcore.sampling.compiled_vec import exp32

    x = np.linspace(-87.0, 10.0, 20001, dtype=np.float32)
    got = np.array([exp32(a) for a in x], dtype=np.float64)
    ref = np.exp(x.astype(np.float64))
    assert (np.abs(got - ref) <= 2.0**-23 * ref).all()  # float32 rounding (2^-24) x 2


def test_float32_mala_accept_decides_as_log_u_below_log_alpha():
    # mala_accept32 tests u < alpha (alpha = exp32(log alpha), within 1 ulp) where the
    # reference kernels test log(u) < log alpha: on random cases the decisions agree except
    # where u lies within a few ulps of alpha (none among these 20,000: each has probability
    # ~1e-7).  Edge cases: NaN and -inf reject; below e^-87 only u = 0 accepts (log 0 = -inf);
    # dead chains keep their state and add nothing to the acceptance.
    from ebmcore.sampling.compiled_vec import mala_accept32

    rng = np.random.default_rng(11)
    m = 20_000
    st = np.zeros((5, m), np.float32)
    pr = np.zeros((5, m), np.float32)
    pr[0], pr[1] = 1.0, 2.0  # the proposal's position: moved or not
    # eps = 0 and equal positions' gradients: log alpha = -(E_y - E_x) / T
    la = rng.uniform(-30.0, 5.0, m).astype(np.float32)
    st[2], pr[2] = 0.0, -la
    unif = rng.random(m, dtype=np.float32)
    edge = {0: np.nan, 1: -np.inf, 2: -100.0, 3: -100.0, 4: 0.0}
    for i, value in edge.items():
        pr[2, i] = -value
    unif[2], unif[3], unif[4] = 0.0, 1e-30, 0.0
    live = np.ones(m, bool)
    live[5] = False
    accv = np.zeros(m)
    mala_accept32(st, pr, m, unif, live, 0.0, 1.0, 1.0, 1.0, accv)
    la64 = -pr[2].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = (np.log(unif.astype(np.float64)) < np.nan_to_num(la64, nan=-np.inf)) & live
    took = st[0] == 1.0
    np.testing.assert_array_equal(took, ref)
    assert list(took[:5]) == [False, False, True, False, True]
    assert st[2, 5] == 0.0 and accv[5] == 0.0  # the dead chain
    alpha = np.exp(np.minimum(np.nan_to_num(la64, nan=-np.inf), 0.0)) * live
    np.testing.assert_allclose(accv, alpha, rtol=2.0**-22, atol=1e-37)


def _divergent_run(sampler: str, dtype: str):
    # Chains started at x = 30 on banana blow up at eps = 0.05 (as in test_fused); those at
    # the mode mostly do not, so the run has both a replayed span and accepted ones.
    t = make_target("banana")
    x0 = torch.zeros(300, 2, dtype=getattr(torch, dtype))
    x0[:7, 0] = 30.0
    cfg = SampleConfig(sampler=sampler, step_size=0.05, steps=400, chains=300, dtype=dtype,
                       keep_paths=9, n_leapfrog=2, seed=5, burn_in=50)
    return sample(t, cfg, x0=x0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_spans_of_many_checks_give_the_check_by_check_run(sampler, dtype, monkeypatch):
    # The compiled run advances many checks' worth of steps per call and replays a span check
    # by check when a chain failed one; with spans of one check it is the check-by-check run.
    # The stream is counter-based, so both must agree bit for bit.
    many = _divergent_run(sampler, dtype)
    monkeypatch.setattr(compiled_run, "CHUNK_CHAIN_STEPS", 1)
    one = _divergent_run(sampler, dtype)
    assert many.n_diverged == one.n_diverged
    # Some chains diverge, not all (MALA and HMC reject the moves that would: none there).
    assert 0 < many.n_diverged < 300 if sampler in ("sgld", "underdamped") else many.n_diverged == 0
    assert many.first_diverged_step == one.first_diverged_step
    for field in ("x", "alive", "positions", "paths", "mean_energy", "steps", "path_steps"):
        assert torch.equal(getattr(many, field), getattr(one, field)), field
    if sampler in ("mala", "hmc"):  # the same terms, summed per span: to rounding
        assert math.isclose(many.acceptance, one.acceptance, rel_tol=1e-12)
