"""Branch-free float32 elementary functions that LLVM vectorises over a loop of chains.

numba has no vector ``exp``/``log``/``sin`` here (no SVML): ``math.exp`` is a scalar libm call
per element, which keeps a loop scalar.  These are Cephes' float32 polynomials with their
range reductions written without branches (selects and bit casts only), so a loop calling
them runs on 8 or 16 chains at once.  Arguments outside the stated ranges never trap:
:func:`exp32` gives wrong but finite-or-inf results there (its callers clamp, or use
:func:`exp32f`, which is IEEE-like over every input), :func:`sincos32x` gives NaN (a chain
that far out has diverged; a finite but wrong sine could hide it).  Errors are measured against
float64 numpy on float32 arguments (``tests/test_compiled_math32.py``), in float32 ulps of
the result (``np.spacing``), with ``contract`` (fused multiply-adds) as the kernels use them.
"""

from __future__ import annotations

import numpy as np

from ebmcore.sampling.compiled_jit import bits_from_f32, f32_from_bits, fma32, njit

__all__ = ["EXP_HIGH", "EXP_LOW", "SINCOS_RANGE", "exp32", "exp32c", "exp32f", "log32",
           "sincos32", "sincos32x", "sincos_pi4"]

_F = np.float32
_ONE, _HALF = _F(1.0), _F(0.5)
_LOG2E, _LN2_HI, _LN2_LO = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_E0, _E1, _E2 = _F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3)
_E3, _E4, _E5 = _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1)
EXP_LOW, EXP_HIGH = _F(-87.0), _F(88.0)
"""exp32's range: e^-87 = 1.6e-38 is just above float32's smallest normal, e^88 = 1.7e38."""
_SQRTHF = _F(0.707106781186547524)
_L = tuple(_F(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                           -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                           2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_S1, _S2, _S3 = _F(-1.6666654611e-1), _F(8.3321608736e-3), _F(-1.9515295891e-4)
_C1, _C2, _C3 = _F(4.166664568298827e-2), _F(-1.388731625493765e-3), _F(2.443315711809948e-5)
# pi/2 = _P1 + _P2 + _P3 + 1e-23 (each the float32 nearest the rest); 2/pi; 1.5 * 2^23,
# whose ulp is 1: adding it rounds to an integer, kept in its low mantissa bits.
_P1, _P2, _P3 = _F(1.5707963705062866), _F(-4.371138828673793e-08), _F(-1.7151245100058819e-15)
_TWO_OVER_PI, _MAGIC = _F(0.6366197466850281), _F(12582912.0)
SINCOS_RANGE = _F(2.0**21)
"""sincos32x's range: beyond ``|x| = 2^21`` its results are NaN."""
_NAN, _INF, _ZERO = _F(np.nan), _F(np.inf), _F(0.0)


@njit(inline=True, contract=True)
def exp32(x):
    """Cephes' ``expf``: ``e^x`` in float32 for ``EXP_LOW <= x <= EXP_HIGH`` (no overflow or
    denormal handling).  Measured within 1 ulp (6.0e-8 relative, as libm's)."""
    t = x * _LOG2E + _HALF
    i = np.int32(t)  # rounds toward 0; floor(t) below (np.floor is a call: not vectorised)
    i = np.int32(i - np.int32(1)) if _F(i) > t else i  # int32: numba's int arithmetic is
    # int64, whose conversion to float AVX2 lacks (scalar code: exp32 was 3x slower there)
    n = _F(i)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    y = (((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5) * (r * r) + r + _ONE
    return y * f32_from_bits(np.int32((i + np.int32(127)) << np.int32(23)))


@njit(inline=True, contract=True)
def exp32c(x):
    """:func:`exp32` of ``x`` clamped to ``[EXP_LOW, EXP_HIGH]`` (so any finite ``x`` is safe;
    below ``EXP_LOW`` it gives 1.6e-38 for 0, above ``EXP_HIGH`` 1.7e38 for inf)."""
    c = x if x > EXP_LOW else EXP_LOW
    return exp32(c if c < EXP_HIGH else EXP_HIGH)


@njit(inline=True, contract=True)
def exp32f(x):
    """``e^x`` in float32 for every ``x``: :func:`exp32` on its range, 0 below ``EXP_LOW``
    (where ``e^x`` is a denormal or 0: off by < 1.6e-38), inf above ``EXP_HIGH`` (early:
    float32 reaches ``e^88.7``), NaN for NaN.  Selects only."""
    c = x if x > EXP_LOW else EXP_LOW
    y = exp32(c if c < EXP_HIGH else EXP_HIGH)
    y = y if x >= EXP_LOW else _ZERO
    y = y if x <= EXP_HIGH else _INF
    return y if x == x else x


@njit(inline=True, contract=True)
def log32(x):
    """Cephes' ``logf`` for a positive normal float32 ``x`` (no special values).  Measured
    within 1 ulp of the result (absolute 6e-8 where it is near 0, at ``x`` near 1)."""
    bits = bits_from_f32(x)
    e = (bits >> np.int32(23)) - np.int32(126)
    m = f32_from_bits((bits & np.int32(0x007FFFFF)) | np.int32(0x3F000000))  # in [0.5, 1)
    low = m < _SQRTHF
    e = e - np.int32(1) if low else e
    m = (m + m - _ONE) if low else (m - _ONE)
    z = m * m
    y = ((((((((_L[0] * m + _L[1]) * m + _L[2]) * m + _L[3]) * m + _L[4]) * m + _L[5]) * m
            + _L[6]) * m + _L[7]) * m + _L[8])
    fe = _F(e)
    y = y * m * z + fe * _LN2_LO - _HALF * z
    return (m + y) + fe * _LN2_HI


@njit(inline=True, contract=True)
def sincos_pi4(a):
    """``(sin a, cos a)`` for ``|a| <= pi/4`` (Cephes' ``sinf``/``cosf`` polynomials): within
    1 ulp; to ``|a| = 0.9`` (where :func:`sincos32`'s rounded quotient can put it) 2."""
    t = a * a
    s = a + a * t * (_S1 + t * (_S2 + t * _S3))
    c = _ONE - _HALF * t + t * t * (_C1 + t * (_C2 + t * _C3))
    return s, c


@njit(inline=True, contract=True)
def sincos32x(x, dx):
    """``(sin, cos)`` of ``x + dx`` in float32, for ``|x| <= 2^21`` and ``|dx|`` at most a few
    ulp of ``x`` (the rounding error of a product that made ``x``: see :func:`sincos32`).

    Cody-Waite reduction ``r = x - j pi/2`` by fused multiply-adds with ``pi/2`` in three parts
    (the first is exact: ``x`` and ``j P1`` agree to their last bits), then the quadrant
    ``j mod 4`` swaps and negates the polynomials' results by selects.  Measured within
    1.2e-7 absolute of float64 ``sin``/``cos`` over ``|x| <= 2^21`` (2 ulp of 1); beyond, where
    the rounded quotient ``j`` would lose the quadrant (finite garbage up to 6e6), both are
    NaN, as they are for NaN and inf.
    """
    k = x * _TWO_OVER_PI + _MAGIC
    j = k - _MAGIC
    q = bits_from_f32(k)
    r = fma32(-j, _P1, x)
    r = fma32(-j, _P2, r)
    r = fma32(-j, _P3, r) + dx
    s, c = sincos_pi4(r)
    odd = (q & np.int32(1)) != np.int32(0)
    sn = c if odd else s
    cs = s if odd else c
    sn = -sn if (q & np.int32(2)) != np.int32(0) else sn
    cs = -cs if ((q + np.int32(1)) & np.int32(2)) != np.int32(0) else cs
    out = abs(x) > SINCOS_RANGE
    return (_NAN if out else sn), (_NAN if out else cs)


@njit(inline=True, contract=True)
def sincos32(x):
    """``(sin x, cos x)`` in float32 for ``|x| <= 2^21``: :func:`sincos32x` with ``dx = 0``."""
    return sincos32x(x, _F(0.0))
