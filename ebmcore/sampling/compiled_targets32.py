"""float32 energies and gradients of the transcendental registry targets, written to vectorise.

:func:`ebmcore.sampling.compiled.grad_block` calls these on float32 chains instead of its
float64 loops, whose scalar libm ``sin``/``exp``/``log`` per chain kept u4's SGLD at ~100 ns
per chain-step.  Each is a loop over the chains of a block, its body branch-free (selects,
clamps and :mod:`ebmcore.sampling.compiled_math32`), so LLVM runs it on a vector of chains;
every pass over the chains is a function of its own (with several in one, LLVM left them
scalar), and a loop that does not store the energy has it removed as dead code.  Where
``want_e`` is False the energies are set to 0, as the float64 loops set them.

Accuracy: each result is within a few float32 roundings of the float64 one, scaled by the
condition of the function (``tests/test_compiled_targets32.py`` derives the bound): the sines'
arguments ``pi u / 2`` and ``freq * u`` are passed as exact products ``hi + lo``, so their
rounding adds nothing; softmax weights below e^-40 of the largest are clamped there, as the
float64 loops drop them.  The parameters ``p`` are the float64 packings of
:mod:`ebmcore.sampling.compiled`, rounded to float32 once per block.

Non-finite and far inputs: NaN or inf in ``u`` or ``v`` gives a non-finite gradient (exp32c's
clamps map NaN to a finite value, so every NaN reaches the result by another path too: a
sine, a residual, ``rho``); the sines are NaN beyond ``|arg| = 2^21`` (``|u| > 1.3e6`` for
U2-U4, ``|u| > 2^21 / freq`` for the squiggle), where float32 cannot resolve them, so a
chain flung that far is frozen as diverged at the next check rather than moved by a wrong
gradient.  Squares overflow to inf past ``|x| ~ 1.8e19`` (NaN gradients), as torch's
float32 does.
"""

from __future__ import annotations

import math

import numpy as np

from ebmcore.sampling.compiled_jit import fma32, njit
from ebmcore.sampling.compiled_math32 import exp32, exp32c, exp32f, log32, sincos32x

__all__ = ["funnel_block32", "radial_block32", "squiggle_block32", "strip_block32",
           "u1_block32"]

_F = np.float32
_ZERO, _HALF, _ONE, _TWO, _FOUR = _F(0.0), _F(0.5), _F(1.0), _F(2.0), _F(4.0)
_HP = _F(0.5 * math.pi)
_HP_LO = _F(0.5 * math.pi - float(_HP))  # pi/2 = _HP + _HP_LO to 2e-23
_CUT32 = _F(-40.0)  # as compiled._CUT: weights below e^-40 of the largest change nothing


@njit(inline=True, contract=True)
def _sin_prod(a, b):
    """``(sin ab, cos ab)`` of the exact product of float32 ``a`` and ``b``."""
    h = a * b
    return sincos32x(h, fma32(a, b, -h))


@njit(inline=True, contract=True)
def _sine(u):
    """``sin(pi u / 2)`` and its derivative, the argument exact to float32's 2^-48."""
    h = _HP * u
    s, c = sincos32x(h, fma32(_HP, u, -h) + _HP_LO * u)
    return s, _HP * c


@njit(inline=True, contract=True)
def _lse2(a, b):
    """``(log(e^a + e^b), e^b / (e^a + e^b))`` without a branch (the smaller's weight
    clamped at e^-87)."""
    big = a > b
    hi = a if big else b
    w = exp32c((b - a) if big else (a - b))
    t = _ONE / (_ONE + w)
    return hi + log32(_ONE + w), (w * t) if big else t


@njit(inline=True, contract=True)
def _wall(u):
    """``sign(u) max(|u| - 4, 0)``: how far ``u`` is past the walls at +-4."""
    a = u - _FOUR
    b = u + _FOUR
    return (a if a > _ZERO else _ZERO) + (b if b < _ZERO else _ZERO)


@njit(inline=True, contract=True)
def _strip(u, v, s1, d1, m1, dm1, it0, it1, iw2):
    """Two components ``N(v; s1, t0^2)``, ``N(v; m1, t1^2)`` (``it``: 1/t) and the wall."""
    r0 = (v - s1) * it0
    r1 = (v - m1) * it1
    lse, w1 = _lse2(-_HALF * r0 * r0, -_HALF * r1 * r1)
    wr0 = (_ONE - w1) * r0 * it0
    wr1 = w1 * r1 * it1
    o = _wall(u)
    return (_HALF * o * o * iw2 - lse, o * iw2 - (wr0 * d1 + wr1 * dm1), wr0 + wr1)


@njit(inline=True, contract=True)
def _u2(u, v, iw2):
    s1, d1 = _sine(u)
    r0 = (v - s1) * _F(1.0 / 0.4)
    wr0 = r0 * _F(1.0 / 0.4)
    o = _wall(u)
    return _HALF * (o * o * iw2 + r0 * r0), o * iw2 - wr0 * d1, wr0


@njit(inline=True, contract=True)
def _u3(u, v, iw2):
    s1, d1 = _sine(u)
    z = (u - _ONE) * _F(1.0 / 0.6)
    w2 = _F(3.0) * exp32c(-_HALF * z * z)
    return _strip(u, v, s1, d1, s1 - w2, d1 + w2 * (u - _ONE) * _F(1.0 / 0.36),
                  _F(1.0 / 0.35), _F(1.0 / 0.35), iw2)


@njit(inline=True, contract=True)
def _u4(u, v, iw2):
    s1, d1 = _sine(u)
    sg = _ONE / (_ONE + exp32c((_ONE - u) * _F(1.0 / 0.3)))
    return _strip(u, v, s1, d1, s1 - _F(3.0) * sg, d1 - _F(3.0 / 0.3) * sg * (_ONE - sg),
                  _F(1.0 / 0.4), _F(1.0 / 0.35), iw2)


@njit(contract=True)
def strip_block32(kind, p, u, v, m, want_e, e, g0, g1):
    """U2 (``kind`` 8), U3 (9), U4 (10) for chains ``i < m``; ``p = (wall,)``."""
    iw2 = _F(1.0 / (p[0] * p[0]))
    if kind == 8:
        _u2_block(u, v, m, want_e, iw2, e, g0, g1)
    elif kind == 9:
        _u3_block(u, v, m, want_e, iw2, e, g0, g1)
    else:
        _u4_block(u, v, m, want_e, iw2, e, g0, g1)


@njit(contract=True)
def _u2_block(u, v, m, want_e, iw2, e, g0, g1):
    if want_e:
        for i in range(m):
            e[i], g0[i], g1[i] = _u2(u[i], v[i], iw2)
    else:
        for i in range(m):
            _, g0[i], g1[i] = _u2(u[i], v[i], iw2)
        e[:m] = _ZERO


@njit(contract=True)
def _u3_block(u, v, m, want_e, iw2, e, g0, g1):
    if want_e:
        for i in range(m):
            e[i], g0[i], g1[i] = _u3(u[i], v[i], iw2)
    else:
        for i in range(m):
            _, g0[i], g1[i] = _u3(u[i], v[i], iw2)
        e[:m] = _ZERO


@njit(contract=True)
def _u4_block(u, v, m, want_e, iw2, e, g0, g1):
    if want_e:
        for i in range(m):
            e[i], g0[i], g1[i] = _u4(u[i], v[i], iw2)
    else:
        for i in range(m):
            _, g0[i], g1[i] = _u4(u[i], v[i], iw2)
        e[:m] = _ZERO


@njit(inline=True, contract=True)
def _squiggle(u, v, iax, is2, fr):
    s, c = _sin_prod(fr, u)
    q = v - s
    r = q * is2
    return _HALF * (u * u * iax + q * r), u * iax - fr * c * r, r


@njit(contract=True)
def squiggle_block32(p, u, v, m, want_e, e, g0, g1):
    """Squiggle for chains ``i < m``; ``p = (ax, s2, freq)``."""
    iax, is2, fr = _F(1.0 / p[0]), _F(1.0 / p[1]), _F(p[2])
    if want_e:
        for i in range(m):
            e[i], g0[i], g1[i] = _squiggle(u[i], v[i], iax, is2, fr)
    else:
        for i in range(m):
            _, g0[i], g1[i] = _squiggle(u[i], v[i], iax, is2, fr)
        e[:m] = _ZERO


@njit(inline=True, contract=True)
def _funnel(u, v, ivar):
    """``|u|^k e^-v`` as products (not in log space: in float32 ``exp(2 log|u| - v)`` would
    round its argument to ~1e-6 of e^-v) of ``t = |u| e^(-v/2)``: ``s2 = t^2``, ``s1 = t e^(-v/2)``.
    ``e^(-v/2)`` is in float32's range for ``|v| < 174`` (``e^-v`` only to 87: clamped there,
    it made ``s1`` wrong by ``e^(|v| - 87)``, inside the funnel's far limit of 5645), where
    the products over- or underflow only as their exact values do; beyond, ``exp32f`` gives
    0 or inf (and NaN for NaN), so a non-finite ``v`` gives a non-finite gradient."""
    h = exp32f(-_HALF * v)
    t = abs(u) * h
    s1 = t * h
    s2 = t * t
    return (_HALF * (v * v * ivar + s2 + v), s1 if u > _ZERO else -s1,
            v * ivar + _HALF - _HALF * s2)


@njit(contract=True)
def funnel_block32(p, u, v, m, want_e, e, g0, g1):
    """Neal's funnel for chains ``i < m``; ``p = (var,)``."""
    ivar = _F(1.0 / p[0])
    if want_e:
        for i in range(m):
            e[i], g0[i], g1[i] = _funnel(u[i], v[i], ivar)
    else:
        for i in range(m):
            _, g0[i], g1[i] = _funnel(u[i], v[i], ivar)
        e[:m] = _ZERO


@njit(inline=True, contract=True)
def _u1(u, v, tiny):
    rho = math.sqrt(u * u + v * v + tiny)
    w = _ONE / (_ONE + exp32c(u * _F(-4.0 / 0.36)))
    ring = (rho - _TWO) * _F(1.0 / 0.16) / rho
    a = (u - _TWO) * _F(1.0 / 0.6)
    b = (u + _TWO) * _F(1.0 / 0.6)
    z = (rho - _TWO) * _F(1.0 / 0.4)
    e = _HALF * z * z - _lse2(-_HALF * a * a, -_HALF * b * b)[0]
    return e, u * ring + (u - _TWO * (_TWO * w - _ONE)) * _F(1.0 / 0.36), v * ring


@njit(contract=True)
def u1_block32(p, u, v, m, want_e, e, g0, g1):
    """Rezende & Mohamed's U1 for chains ``i < m``; ``p = (tiny,)``."""
    tiny = _F(p[0])
    if want_e:
        for i in range(m):
            e[i], g0[i], g1[i] = _u1(u[i], v[i], tiny)
    else:
        for i in range(m):
            _, g0[i], g1[i] = _u1(u[i], v[i], tiny)
        e[:m] = _ZERO


@njit(inline=True, contract=True)
def _donut(u, v, tiny, r, ivar):
    rho = math.sqrt(u * u + v * v + tiny)
    d = rho - r
    pull = d * ivar / rho
    return _HALF * d * d * ivar, u * pull, v * pull


@njit(contract=True)
def _donut_block(u, v, m, want_e, tiny, r, ivar, e, g0, g1):
    if want_e:
        for i in range(m):
            e[i], g0[i], g1[i] = _donut(u[i], v[i], tiny, r, ivar)
    else:
        for i in range(m):
            _, g0[i], g1[i] = _donut(u[i], v[i], tiny, r, ivar)
        e[:m] = _ZERO


@njit(contract=True)
def _rho_block(u, v, m, tiny, rho):
    for i in range(m):
        rho[i] = math.sqrt(u[i] * u[i] + v[i] * v[i] + tiny)


@njit(contract=True)
def _nearest_ring(rho, m, r, dmin):
    for i in range(m):
        d = abs(rho[i] - r)
        dmin[i] = np.minimum(d, dmin[i])  # not a conditional store (see compiled_loops)


@njit(contract=True)
def _weigh_ring(rho, m, r, c, dmin, s, sr):
    # (d^2 - dmin^2) as (d - dmin)(d + dmin): exactly 0 for the nearest ring, whose weight is
    # then exactly 1.  d * d - dmin^2 fused into one multiply-add is not: far out (rho ~ 1e4,
    # squares ~ 1e8, rounded by ~4) that weight was e^+-88, and inf / inf gave NaN gradients.
    for i in range(m):
        d = abs(rho[i] - r)
        lg = (d - dmin[i]) * (d + dmin[i]) * c
        w = exp32(lg if lg > _CUT32 else _CUT32)
        s[i] += w
        sr[i] += w * r


@njit(contract=True)
def _rings_grad(u, v, m, ivar, rho, s, sr, g0, g1):
    for i in range(m):
        pull = (rho[i] - sr[i] / s[i]) * ivar / rho[i]
        g0[i] = u[i] * pull
        g1[i] = v[i] * pull


@njit(contract=True)
def _rings_energy(m, c, dmin, s, e):
    for i in range(m):
        e[i] = -(dmin[i] * dmin[i] * c + log32(s[i]))  # s >= 1: the nearest ring's weight is 1


@njit(contract=True)
def radial_block32(p, u, v, m, want_e, e, g0, g1, work):
    """Donut and rings for chains ``i < m``; ``p = (var, tiny, n, r_1..r_n)``, ``work``:
    ``(4, >= m)`` float32 scratch.  One ring in one pass; more as the mixture is done
    (:func:`~ebmcore.sampling.compiled_vec.mixture_block32`): the nearest ring's distance,
    then the softmax weights shifted by it, each a pass over the chains."""
    n = int(p[2])
    ivar, tiny, c = _F(1.0 / p[0]), _F(p[1]), _F(-0.5 / p[0])
    if n == 1:
        _donut_block(u, v, m, want_e, tiny, _F(p[3]), ivar, e, g0, g1)
        return
    rho, dmin, s, sr = work[0], work[1], work[2], work[3]
    _rho_block(u, v, m, tiny, rho)
    dmin[:m], s[:m], sr[:m] = np.inf, 0.0, 0.0
    for j in range(n):
        _nearest_ring(rho, m, _F(p[3 + j]), dmin)
    for j in range(n):
        _weigh_ring(rho, m, _F(p[3 + j]), c, dmin, s, sr)
    _rings_grad(u, v, m, ivar, rho, s, sr, g0, g1)
    if want_e:
        _rings_energy(m, c, dmin, s, e)
    else:
        e[:m] = _ZERO
