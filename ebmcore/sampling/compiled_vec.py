"""float32 gradients written to vectorise: loops over the chains of a block, innermost.

numba has no vector ``exp`` here (no SVML), so a scalar ``math.exp`` per chain and
component kept the mixture at ~70 ns per chain-step.  ``exp32`` (Cephes' ``expf``, in
:mod:`ebmcore.sampling.compiled_math32`, re-exported here) is within 1 ulp of float32 and
branch-free, so LLVM runs it on 8 chains at once.  These loops may fuse multiply-adds
(``contract``): exp32's polynomial is a chain of them (the mixture's weights 30% faster).
"""

from __future__ import annotations

import numpy as np

from ebmcore.sampling.compiled_jit import njit
from ebmcore.sampling.compiled_math32 import EXP_LOW, exp32, log32

__all__ = ["exp32", "mala_accept32", "mixture_block32"]

_F = np.float32
_ONE, _ZERO = _F(1.0), _F(0.0)
_LOW = EXP_LOW  # exp32's lowest argument: e^-87 = 1.6e-38, float32's smallest normal
_CUT32 = _F(-40.0)  # as compiled._CUT: weights below e^-40 of the largest change nothing


@njit(contract=True)
def _nearest32(u, v, m, mx, my, dmin):
    for i in range(m):
        a, b = u[i] - mx, v[i] - my
        d = a * a + b * b
        dmin[i] = np.minimum(d, dmin[i])  # not a conditional store (see compiled_loops)


@njit(contract=True)
def _weigh32(u, v, m, mx, my, c, dmin, s, sx, sy):
    for i in range(m):
        a, b = u[i] - mx, v[i] - my
        lg = (a * a + b * b - dmin[i]) * c
        w = exp32(lg if lg > _CUT32 else _CUT32)
        s[i] += w
        sx[i] += w * mx
        sy[i] += w * my


@njit(contract=True)
def mixture_block32(p, u, v, m, want_e, e, g0, g1, work):
    """The mixture's ``(E, grad E)`` for chains ``i < m`` in float32 (``p``: its packing in
    :mod:`ebmcore.sampling.compiled`; ``work``: ``(4, >= m)`` float32 scratch).

    Two passes over the components, each a loop over the chains: the nearest centre's
    squared distance, then the softmax weights shifted by it (the largest is exactly 1,
    the smallest clamped at e^-40) and their sums.  Each pass over the chains is its own
    function: inside one, LLVM left most of the loops scalar.
    """
    k = int(p[0])
    c, inv_var, const = _F(-0.5 / p[1]), _F(1.0 / p[1]), _F(p[2])
    dmin, s, sx, sy = work[0], work[1], work[2], work[3]
    dmin[:m], s[:m], sx[:m], sy[:m] = np.inf, 0.0, 0.0, 0.0
    for j in range(k):
        _nearest32(u, v, m, _F(p[3 + j]), _F(p[3 + k + j]), dmin)
    for j in range(k):
        _weigh32(u, v, m, _F(p[3 + j]), _F(p[3 + k + j]), c, dmin, s, sx, sy)
    for i in range(m):
        r = _ONE / s[i]
        g0[i] = (u[i] - sx[i] * r) * inv_var
        g1[i] = (v[i] - sy[i] * r) * inv_var
    if want_e:
        for i in range(m):
            e[i] = const - (dmin[i] * c + log32(s[i]))  # s >= 1
    else:
        e[:m] = 0.0


@njit(contract=True)
def mala_accept32(st, pr, m, unif, live, eps, inv_t, inv_2s2, count, accv):
    """MALA's accept step for chains ``i < m`` in float32, branch-free: the state
    ``st = (x0, x1, E, g0, g1)`` takes the proposal ``pr`` where ``unif[i] < alpha``.

    ``log(unif) < log alpha`` (the reference kernels' test) is ``unif < alpha``: equal but
    where the two roundings straddle ``unif`` (~1e-7 of the chain-steps).  Below
    ``alpha = e^-87`` (or NaN) only ``unif = 0`` accepts, as ``log 0 = -inf < log alpha``.
    ``count`` (1 or 0) times ``alpha`` is added to ``accv[i]`` (float64) where the chain is
    live: a multiplier, as a run-time flag in the loop halved its speed.
    """
    eps, inv_t, inv_2s2 = _F(eps), _F(inv_t), _F(inv_2s2)
    for i in range(m):
        u, v, ee, g0, g1 = st[0, i], st[1, i], st[2, i], st[3, i], st[4, i]
        y0, y1, ey, h0, h1 = pr[0, i], pr[1, i], pr[2, i], pr[3, i], pr[4, i]
        f0, f1 = (y0 - u) + eps * g0, (y1 - v) + eps * g1
        b0, b1 = (u - y0) + eps * h0, (v - y1) + eps * h1
        la = -(ey - ee) * inv_t - ((b0 * b0 + b1 * b1) - (f0 * f0 + f1 * f1)) * inv_2s2
        ok = la > _LOW  # False for NaN
        lc = la if la < _ZERO else _ZERO
        w = exp32(lc if lc > _LOW else _LOW)  # computed for every chain: no branch
        w = w if ok else _ZERO
        take = live[i] and (unif[i] < w if ok else (unif[i] == _ZERO and la > -np.inf))
        accv[i] += (w if live[i] else _ZERO) * count  # a store every time: no branch
        st[0, i] = y0 if take else u
        st[1, i] = y1 if take else v
        st[2, i] = ey if take else ee
        st[3, i] = h0 if take else g0
        st[4, i] = h1 if take else g1
