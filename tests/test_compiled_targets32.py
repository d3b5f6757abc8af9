"""The float32 block functions of the transcendental targets against float64 and torch.

The bound.  A float32 evaluation of a smooth function is, to first order, the exact function
of inputs and intermediates each perturbed by a relative 2^-24 per rounding.  Its
intermediates here are of the order of the inputs or of 1 (sines, softmax weights, ratios),
so an error in them acts like an input perturbation of ``2^-24 (|x_j| + 1)``: the gradient's
error is at most ``K 2^-24 c_i`` with the condition ``c_i = |g_i| + sum_j |H_ij| (|x_j| + 1)``
(``H`` the Hessian, by central differences of the float64 gradient), the energy's with
``c = |E| + sum_j |g_j| (|x_j| + 1)``, and ``K`` the number of roundings that pile up along
the longest chain of operations: <= 16 here (a sine's reduction and polynomial, a residual,
two scalings, a softmax).  The energies are sums of terms of order 1 (log-sum-exp's parts,
squared residuals) that may cancel, each rounded absolutely: their ``c`` adds 1.  The worst
measured ratios are 5.6 (rings' gradient) and 1.5 (u3's energy), printed by the failure
message, while a wrong constant or a lost quadrant is off by 1e3 or more of these units.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

numba = pytest.importorskip("numba")

from ebmcore.sampling import compiled_targets32 as t32  # noqa: E402
from ebmcore.sampling.compiled import _probe, compiled_target, grad_block  # noqa: E402
from ebmcore.sampling.compiled_math32 import SINCOS_RANGE  # noqa: E402
from ebmcore.sampling.compiled_vec import mixture_block32  # noqa: E402
from ebmcore.sampling.runner import SampleConfig, _far_limit, sample  # noqa: E402
from ebmcore.targets.registry import make_target  # noqa: E402

VECTORISED = ("u2", "u3", "u4", "squiggle", "funnel", "u1", "donut", "rings", "mixture")
EPS32, K = 2.0**-24, 16.0
F32_BIG = 1e37  # conditions below this are compared; results above 4e38 must be non-finite
TINY32 = float(np.finfo(np.float32).tiny)


def _points(t, n, seed):
    """``n`` float32 points: half uniform on the target's box, half exact samples."""
    gen = torch.Generator().manual_seed(seed)
    x0, x1, y0, y1 = t.box
    r = torch.rand(n // 2, 2, generator=gen, dtype=torch.float64)
    box = torch.stack([x0 + (x1 - x0) * r[:, 0], y0 + (y1 - y0) * r[:, 1]], 1)
    pts = torch.cat([box, t.sample(n - n // 2, gen)])
    return pts.to(torch.float32).to(torch.float64).numpy()  # float32 values, held in float64


def _block(kind, p, pts, dtype, want_e=True):
    n = pts.shape[0]
    u, v = (np.ascontiguousarray(pts[:, k], dtype=dtype) for k in (0, 1))
    e, g0, g1 = (np.full(n, 7.0, dtype) for _ in range(3))
    grad_block(kind, p, u, v, n, want_e, e, g0, g1, np.empty((4, n), dtype))
    return e.astype(np.float64), np.stack([g0, g1], 1).astype(np.float64)


def _conditions(kind, p, pts, e, g):
    """The conditions ``c`` of the energy and of each gradient component (module docstring)."""
    scale = np.abs(pts) + 1.0
    h = 1e-6 * scale
    hess = np.zeros((pts.shape[0], 2, 2))
    for j in range(2):
        step = np.zeros_like(pts)
        step[:, j] = h[:, j]
        gp, gm = (_block(kind, p, pts + d, np.float64)[1] for d in (step, -step))
        hess[:, :, j] = (gp - gm) / (2.0 * h[:, j:j + 1])
    c_e = np.abs(e) + 1.0 + (np.abs(g) * scale).sum(1)
    c_g = np.abs(g) + (np.abs(hess) * scale[:, None, :]).sum(2)
    return c_e, c_g


@pytest.mark.parametrize("name", VECTORISED)
def test_float32_block_agrees_with_float64_and_torch_within_its_condition(name):
    t = make_target(name)
    kind, p = compiled_target(t, torch.float32)
    pts = _points(t, 4000, seed=7)
    e32, g32 = _block(kind, p, pts, np.float32)
    e64, g64 = _block(kind, p, pts, np.float64)
    with torch.no_grad():
        x = torch.from_numpy(pts)
        e_t, g_t = t.energy(x).numpy(), t.grad(x).numpy()
    x = torch.from_numpy(pts).requires_grad_(True)
    g_auto = torch.autograd.grad(t.energy(x).sum(), x)[0].numpy()
    c_e, c_g = _conditions(kind, p, pts, e64, g64)
    for ref_e, ref_g in ((e64, g64), (e_t, g_t), (e_t, g_auto)):
        ratio_e = np.abs(e32 - ref_e) / (EPS32 * c_e)
        ratio_g = np.abs(g32 - ref_g) / (EPS32 * c_g)
        assert ratio_e.max() <= K, f"energy off by {ratio_e.max():.1f} x 2^-24 c"
        assert ratio_g.max() <= K, f"gradient off by {ratio_g.max():.1f} x 2^-24 c"


@pytest.mark.parametrize("name", VECTORISED)
def test_float32_block_writes_m_chains_and_zero_energies_without_want_e(name):
    t = make_target(name)
    kind, p = compiled_target(t, torch.float32)
    pts = _points(t, 300, seed=8).astype(np.float32)
    u, v, m = pts[:, 0].copy(), pts[:, 1].copy(), 201  # not a multiple of any vector width
    full_e, full_g = _block(kind, p, pts[:m].astype(np.float64), np.float32)
    for want_e in (True, False):
        e, g0, g1 = (np.full(300, 7.0, np.float32) for _ in range(3))
        grad_block(kind, p, u, v, m, want_e, e, g0, g1, np.empty((4, 300), np.float32))
        np.testing.assert_array_equal(np.stack([g0, g1], 1)[:m], full_g)  # same code, same bits
        np.testing.assert_array_equal(e[:m], full_e if want_e else 0.0)
        assert (g0[m:] == 7.0).all() and (g1[m:] == 7.0).all() and (e[m:] == 7.0).all()


def _far_points(t, n, seed):
    """Points from the box's edge out to 1e5 (the far limit, 100x the box, is ~1e3; the sines
    stay within their range to |u| = 8e5): log-spaced radii in random directions.  The
    funnel's ``v`` spans +-170 instead, where ``e^(-v/2)`` is still a float32."""
    rng = np.random.default_rng(seed)
    half = max(abs(b) for b in t.box)
    r = np.geomspace(half, 1e5, n)
    a = rng.uniform(0.0, 2.0 * np.pi, n)
    pts = np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if t.name == "funnel":
        pts[:, 1] = rng.uniform(-170.0, 170.0, n)
        pts[: n // 2, 0] = rng.choice([-1.0, 1.0], n // 2) * np.geomspace(1e-20, 1e3, n // 2)
    return pts.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("name", VECTORISED)
def test_float32_block_far_out_is_as_good_as_torch_float32_or_overflows_with_float64(name):
    # Far out the bound above does not hold alone: softmax logits, squared residuals of
    # 1e5 to 1e10, are intermediates far from order 1, and each one's rounding (2^-24 of it)
    # moves the weights more than any input perturbation does (u3 and the mixture reach 60
    # and 500 of c's units).  torch's float32 evaluation, what fused=False runs, rounds them
    # alike: so the block is held to the larger of K and twice torch's worst ratio on the same
    # points.  Results below float32's smallest normal (the funnel's e^-v at v ~ 170) are
    # held to it absolutely: denormal or 0.  A lost quadrant, a clamp or an inf / inf shows
    # as errors of order the result itself, or as non-finite values where torch's are finite.
    t = make_target(name)
    kind, p = compiled_target(t, torch.float32)
    pts = _far_points(t, 4000, seed=9)
    assert np.abs(pts).max() > 50 * _far_limit(t.box) or name == "funnel"
    e32, g32 = _block(kind, p, pts, np.float32)
    e64, g64 = _block(kind, p, pts, np.float64)
    with torch.no_grad():
        x = torch.from_numpy(pts).to(torch.float32)
        e_t, g_t = t.energy(x).double().numpy(), t.grad(x).double().numpy()
    c_e, c_g = _conditions(kind, p, pts, e64, g64)
    ok_e = np.isfinite(c_e) & (c_e < F32_BIG) & np.isfinite(e_t)
    ok_g = (np.isfinite(c_g) & (c_g < F32_BIG) & np.isfinite(g_t)).all(1)
    assert ok_g.mean() > 0.5, "the far points should mostly be comparable"
    for got, ref, tor, c, ok, what in ((e32, e64, e_t, c_e, ok_e, "energy"),
                                       (g32, g64, g_t, c_g, ok_g, "gradient")):
        unit = EPS32 * c[ok] + TINY32
        ours, theirs = np.abs(got - ref)[ok] / unit, np.abs(tor - ref)[ok] / unit
        bound = max(K, 2.0 * theirs.max())
        assert ours.max() <= bound, f"{what} off by {ours.max():.1f} of c's units > {bound:.1f}"
    over = np.abs(g64) > 4e38  # beyond float32: overflow shows, never a finite value
    assert not np.isfinite(g32[over]).any()


NON_FINITE = [(np.nan, 0.5), (0.5, np.nan), (np.nan, np.nan), (np.inf, 0.5), (-np.inf, 0.5),
              (0.5, np.inf), (0.5, -np.inf), (0.0, np.nan), (0.0, -np.inf), (np.inf, np.inf)]


@pytest.mark.parametrize("name", VECTORISED)
def test_float32_block_gives_non_finite_results_for_non_finite_chains(name):
    # A chain that blew up must stay visible: some gradient component and the energy are
    # NaN or inf (exp32c maps NaN to a finite number: another path must carry it).
    t = make_target(name)
    kind, p = compiled_target(t, torch.float32)
    pts = np.array(NON_FINITE * 2)  # 20 points: a vector's tail included
    e32, g32 = _block(kind, p, pts, np.float32)
    assert not np.isfinite(g32).all(1).any(), pts[np.isfinite(g32).all(1)]
    assert not np.isfinite(e32).any(), pts[np.isfinite(e32)]


@pytest.mark.parametrize("name", ["u2", "u3", "u4", "squiggle"])
def test_float32_block_is_nan_where_its_sine_leaves_its_range(name):
    # sin(pi u / 2) or sin(freq u) beyond 2^21 would have lost its quadrant: NaN, a chain
    # frozen as diverged at the next check, not a wrong pull back into the box.
    t = make_target(name)
    kind, p = compiled_target(t, torch.float32)
    freq = float(p[2]) if name == "squiggle" else 0.5 * np.pi
    edge = float(SINCOS_RANGE) / freq
    u = np.array([1.01, 2.0, 1e3, 1e30]) * edge
    pts = np.stack([np.concatenate([u, -u]), np.full(8, 0.3)], 1)
    e32, g32 = _block(kind, p, pts, np.float32)
    assert np.isnan(g32[:, 0]).all() and np.isnan(e32).all()
    e32, g32 = _block(kind, p, np.array([[0.99 * edge, 0.3], [-0.99 * edge, 0.3]]), np.float32)
    assert np.isfinite(g32).all() and np.isfinite(e32).all()


def _direct(name, kind, p, u, v, m, want_e, e, g0, g1, work):
    """The float32 block function of ``name`` called by itself, not through grad_block."""
    if name in ("u2", "u3", "u4"):
        t32.strip_block32(kind, p, u, v, m, want_e, e, g0, g1)
    elif name in ("donut", "rings"):
        t32.radial_block32(p, u, v, m, want_e, e, g0, g1, work)
    elif name == "mixture":
        mixture_block32(p, u, v, m, want_e, e, g0, g1, work)
    else:
        {"squiggle": t32.squiggle_block32, "funnel": t32.funnel_block32,
         "u1": t32.u1_block32}[name](p, u, v, m, want_e, e, g0, g1)


@pytest.mark.parametrize("name", VECTORISED)
def test_grad_block_takes_the_float32_block_on_float32_and_the_scalar_kernel_on_float64(name):
    t = make_target(name)
    kind, p = compiled_target(t, torch.float32)
    pts = _points(t, 500, seed=10)
    n = pts.shape[0]
    u, v = (np.ascontiguousarray(pts[:, k], np.float32) for k in (0, 1))
    out = [np.zeros(n, np.float32) for _ in range(3)]
    _direct(name, kind, p, u, v, n, True, *out, np.empty((4, n), np.float32))
    e32, g32 = _block(kind, p, pts, np.float32)
    np.testing.assert_array_equal(e32, out[0])  # bit for bit: the same function ran
    np.testing.assert_array_equal(g32, np.stack(out[1:], 1))
    # and not the float64 loop rounded to float32, which differs in some last bits
    e64, g64 = _block(kind, p, pts, np.float64)
    assert (g32 != g64.astype(np.float32)).any()
    # float64: the per-point kernel (energy_grad) exactly, as before the float32 blocks
    ref = np.empty((n, 3))
    _probe(kind, p, pts, ref)
    np.testing.assert_array_equal(e64, ref[:, 0])
    np.testing.assert_array_equal(g64, ref[:, 1:])


@pytest.mark.parametrize(("name", "sampler"), [("u4", "sgld"), ("u3", "mala"),
                                               ("squiggle", "sgld"), ("rings", "mala"),
                                               ("funnel", "sgld"), ("u1", "mala"),
                                               ("donut", "sgld"), ("u2", "mala")])
def test_fused_float32_runs_agree_with_the_reference_kernels(name, sampler):
    # fused=False evaluates torch's float32 energy and autograd gradient; fused=True the
    # vectorised block.  Per step the two differ by eps times the gradients' difference
    # (measured on the typical set: <= 2e-5 (|g| + 1), |g| <= 20 there: 4e-4, times
    # eps = 1e-3: 4e-7) plus, once the positions differ, the moves' own float32 roundings
    # (2^-24 |x| each run: 1e-6 at |x| = 8).  Summed over 50 steps and grown at most by
    # (1 + eps |lambda_min|)^50 (the most negative curvature, ~1/0.35^2 = 8 across the
    # bands: 1.5x), that is 50 x 1.4e-6 x 1.5 = 1e-4 plus 50 x 2^-23 x 1.5 |x| = 1e-5 |x|
    # (the funnel's chains reach |x| ~ 20).  MALA's accept decisions flip only where
    # log alpha is within ~1e-5 of log u: ~1e-5 of ~3e4 chain-steps, so none; then the
    # acceptances differ by the rounding of log alpha (terms <= 10: 10 x 2^-24 x a few).
    t = make_target(name)
    cfg = SampleConfig(steps=50, chains=600, seed=3, step_size=1e-3, sampler=sampler)
    a, b = sample(t, cfg), sample(t, dataclasses.replace(cfg, fused=False))
    assert a.positions.dtype == torch.float32
    torch.testing.assert_close(a.positions, b.positions, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(a.mean_energy, b.mean_energy, rtol=1e-5, atol=1e-5)
    if sampler == "mala":
        assert abs(a.acceptance - b.acceptance) < 1e-5
