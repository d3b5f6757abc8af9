"""The kernels' branch-free float32 functions against float64 numpy, in float32 ulps.

A correctly rounded float32 result is within 0.5 ulp of the exact value; Cephes' polynomials
add about as much again (their own error bound is ~1 ulp), and the range reductions' fused
multiply-adds round once more: so 2 ulp is the bound each function is held to (a wrong
coefficient or a lost quadrant is off by far more).  The ulp is ``np.spacing`` of the float32
result's magnitude; for sin/cos at |x| near 2^21 the reduced argument itself carries an
absolute error of ~2^-24, so there they are held to an absolute 1.2e-7 (2 ulp of 1).
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from ebmcore.sampling.compiled_jit import njit  # noqa: E402
from ebmcore.sampling.compiled_math32 import (  # noqa: E402
    EXP_HIGH,
    EXP_LOW,
    exp32,
    exp32c,
    exp32f,
    log32,
    sincos32,
    sincos32x,
    sincos_pi4,
)

_F = np.float32


@njit(contract=True)
def _apply(x, out):  # every function on every point, in one vectorisable loop each
    for i in range(x.shape[0]):
        out[0, i] = exp32c(x[i])
    for i in range(x.shape[0]):
        out[1, i] = log32(abs(x[i]))
    for i in range(x.shape[0]):
        out[2, i], out[3, i] = sincos32(x[i])
    for i in range(x.shape[0]):
        out[4, i], out[5, i] = sincos_pi4(x[i])
    for i in range(x.shape[0]):
        out[6, i] = exp32(x[i])
    for i in range(x.shape[0]):
        out[7, i] = exp32f(x[i])


def _run(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((8, x.size), np.float32)
    _apply(x, out)
    return x.astype(np.float64), out.astype(np.float64)


def _ulps(got, ref):
    """|got - ref| in ulps of the float32 nearest ``ref`` (the smallest denormal at 0)."""
    return np.abs(got - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)


def _edges(lo, hi, n):
    """``n`` points spread over ``[lo, hi]`` plus the ends and their float32 neighbours."""
    lo, hi = _F(lo), _F(hi)
    ends = [lo, hi, np.nextafter(lo, hi), np.nextafter(hi, lo)]
    return np.concatenate([np.linspace(lo, hi, n, dtype=np.float32), np.array(ends, _F)])


def test_exp32_within_two_ulp_over_its_range_and_clamped_beyond():
    x, out = _run(_edges(EXP_LOW, EXP_HIGH, 400_001))
    ref = np.exp(x)
    assert _ulps(out[6], ref).max() <= 2.0 and _ulps(out[0], ref).max() <= 2.0
    x, out = _run(np.array([-1e30, -200.0, -87.5, 88.5, 300.0, 3e38], _F))
    lo, hi = np.exp(np.float64(EXP_LOW)), np.exp(np.float64(EXP_HIGH))
    np.testing.assert_allclose(out[0], [lo, lo, lo, hi, hi, hi], rtol=2**-22)


def test_exp32f_is_exp32_on_its_range_and_zero_inf_nan_beyond():
    _, out = _run(_edges(EXP_LOW, EXP_HIGH, 100_001))
    np.testing.assert_array_equal(out[7], out[6])
    _, out = _run(np.array([-np.inf, -1e30, -103.0, np.nextafter(EXP_LOW, _F(-np.inf)),
                            np.nextafter(EXP_HIGH, _F(np.inf)), 88.7, 1e30, np.inf, np.nan], _F))
    np.testing.assert_array_equal(out[7], [0.0] * 4 + [np.inf] * 4 + [np.nan])


def test_log32_within_two_ulp_on_every_binade_of_normal_floats():
    tiny, big = np.finfo(_F).tiny, np.finfo(_F).max
    x = np.concatenate([np.geomspace(tiny, big, 300_001).astype(_F),
                        _edges(0.5, 2.0, 200_001),  # near 1 the result is near 0: relative
                        _edges(0.70, 0.71, 10_001),  # the mantissa's switch at sqrt(1/2)
                        np.array([tiny, big, 1.0], _F)])
    x, out = _run(x)
    ref = np.log(x)
    assert (out[1][x == 1.0] == 0.0).all()
    assert _ulps(out[1], ref).max() <= 2.0


def test_sincos32_within_two_ulp_near_zero_and_1p2e7_absolute_to_2_pow_21():
    small = np.concatenate([_edges(-8.0, 8.0, 400_001), np.geomspace(1e-30, 1.0, 1001)])
    x, out = _run(small)
    assert _ulps(out[2], np.sin(x)).max() <= 2.0 and _ulps(out[3], np.cos(x)).max() <= 2.0
    # The quadrants' edges: multiples of pi/2 and their neighbours (sin or cos near 0 there).
    k = np.arange(-4000, 4001)
    mult = (k * (np.pi / 2)).astype(_F)
    x, out = _run(np.concatenate([mult, np.nextafter(mult, _F(np.inf)),
                                  np.nextafter(mult, _F(-np.inf))]))
    assert np.abs(out[2] - np.sin(x)).max() <= 1.2e-7
    assert np.abs(out[3] - np.cos(x)).max() <= 1.2e-7
    x, out = _run(np.concatenate([_edges(-2.0**21, 2.0**21, 400_001),
                                  np.geomspace(1.0, 2.0**21, 100_001)]))
    assert np.abs(out[2] - np.sin(x)).max() <= 1.2e-7
    assert np.abs(out[3] - np.cos(x)).max() <= 1.2e-7


def test_sincos32_is_nan_beyond_its_range_and_for_nan_and_inf():
    # Beyond 2^21 the quadrant would be lost: a finite wrong sine could hide a diverged chain.
    top = _F(2.0**21)
    far = [np.nextafter(top, _F(np.inf)), 3e6, 1e20, 3e38, np.inf, np.nan]
    _, out = _run(np.array(far + [-f for f in far], _F))
    assert np.isnan(out[2]).all() and np.isnan(out[3]).all()
    x, out = _run(np.array([top, -top], _F))
    assert np.abs(out[2] - np.sin(x)).max() <= 1.2e-7
    assert np.abs(out[3] - np.cos(x)).max() <= 1.2e-7


def test_sincos_pi4_within_two_ulp_on_its_interval():
    x, out = _run(_edges(-np.pi / 4, np.pi / 4, 200_001))
    assert _ulps(out[4], np.sin(x)).max() <= 2.0 and _ulps(out[5], np.cos(x)).max() <= 2.0


@njit(contract=True)
def _prod_sincos(a, b, out):
    for i in range(a.shape[0]):
        h = a[i] * b[i]
        lo = np.float32(np.float64(a[i]) * np.float64(b[i]) - np.float64(h))  # exact
        out[0, i], out[1, i] = sincos32x(h, lo)


def test_sincos32x_takes_the_rounding_of_a_product_into_account():
    # sin(a b) of the exact product: without dx the rounding of a b (up to 2^-24 |ab| = 1e-6
    # at |ab| = 20) would show in the result; with it the error stays within 2 ulp.
    rng = np.random.default_rng(0)
    a = rng.uniform(0.0, 6.0, 100_000).astype(_F)
    b = rng.uniform(-4.0, 4.0, 100_000).astype(_F)
    out = np.empty((2, a.size), _F)
    _prod_sincos(a, b, out)
    ab = a.astype(np.float64) * b.astype(np.float64)  # exact: 48 bits
    assert np.abs(out[0] - np.sin(ab)).max() <= 1.2e-7
    assert np.abs(out[1] - np.cos(ab)).max() <= 1.2e-7
    rounded = np.sin((a * b).astype(np.float64))
    assert np.abs(rounded - np.sin(ab)).max() > 1e-7  # the case this guards is real
