"""Compiled multi-step kernels: SGLD, MALA, HMC and BAOAB over a chunk of steps.

Each kernel takes the random numbers of the chunk already drawn by torch from the run's
generator (``noise[s]`` is the ``randn(N, 2)`` of step ``s``, ``unif[s]`` the ``rand(N)`` of
its accept test), so the random stream is the reference kernels' one draw for draw, and
from the same seed the chains agree with :mod:`ebmcore.sampling.kernels` to rounding.
Then it runs block by block: a block of :data:`BLOCK` chains stays in the L1 cache through
all the chunk's steps (chain by chain, each chain's steps would stride over the noise of the
whole chunk, a new page at every step).
Every value the reference kernels store (positions, energies, gradients, velocities) is
rounded to the chains' dtype where they store it (:func:`ebmcore.sampling.compiled.round_like`).

Every kernel is compiled once per dtype and cached on disk; the target is a run-time
``kind`` (see :func:`ebmcore.sampling.compiled.energy_grad`).

Chains with ``alive[n]`` False are skipped (they stay frozen).  What a run records is
written as it goes: ``frames[frame_of[s], n]`` after step ``s`` where ``frame_of[s] >= 0``,
the first ``paths.shape[0]`` chains into ``paths[n, path_of[s]]``, and the live chains'
energies summed into ``esum[frame_of[s]]`` (float64).
"""

from __future__ import annotations

import math

import numpy as np

from ebmcore.sampling.compiled import energy_grad, njit, round_like

__all__ = ["BLOCK", "baoab_chunk", "hmc_chunk", "mala_chunk", "sgld_chunk"]

BLOCK = 256  # chains advanced together: their positions, gradients and noise fit in L1


@njit
def sgld_chunk(kind, p, x, noise, noisy, eps, scale, alive, frames, frame_of, paths, path_of,
               esum):
    """``x <- x - eps grad E(x) + scale xi`` for each step of the chunk (``noisy`` False: no xi)."""
    k = paths.shape[0]
    g = np.empty((BLOCK, 2), dtype=x.dtype)  # the gradient at x, rounded as the reference's
    for n0 in range(0, x.shape[0], BLOCK):
        n1 = min(x.shape[0], n0 + BLOCK)
        for n in range(n0, n1):
            _, g[n - n0, 0], g[n - n0, 1] = energy_grad(kind, p, x[n, 0], x[n, 1], False)
        for s in range(frame_of.shape[0]):
            f, q = frame_of[s], path_of[s]
            for n in range(n0, n1):
                if not alive[n]:
                    continue
                a, b = x[n, 0] - eps * g[n - n0, 0], x[n, 1] - eps * g[n - n0, 1]
                if noisy:
                    a, b = a + scale * noise[s, n, 0], b + scale * noise[s, n, 1]
                x[n, 0], x[n, 1] = a, b
                if f >= 0:  # the energy only where it is recorded
                    e, g[n - n0, 0], g[n - n0, 1] = energy_grad(kind, p, a, b, True)
                else:
                    e, g[n - n0, 0], g[n - n0, 1] = energy_grad(kind, p, x[n, 0], x[n, 1],
                                                                False)
                if f >= 0:
                    frames[f, n, 0], frames[f, n, 1] = x[n, 0], x[n, 1]
                    esum[f] += e
                if q >= 0 and n < k:
                    paths[n, q, 0], paths[n, q, 1] = x[n, 0], x[n, 1]


@njit
def mala_chunk(kind, p, x, en, g, noise, unif, eps, temperature, acc_from, alive, frames,
               frame_of, paths, path_of, esum):
    """MALA steps on the cached state ``(x, en, g)``; returns the summed acceptance
    probabilities of steps ``s >= acc_from``."""
    k = paths.shape[0]
    s2 = 2.0 * eps * temperature
    sd = math.sqrt(s2)
    inv_t, inv_2s2 = 1.0 / temperature, 1.0 / (2.0 * s2)  # products in the loop, not divisions
    acc = 0.0
    for n0 in range(0, x.shape[0], BLOCK):
        for s in range(frame_of.shape[0]):
            f, q = frame_of[s], path_of[s]
            for n in range(n0, min(x.shape[0], n0 + BLOCK)):
                if not alive[n]:
                    continue
                x0, x1, g0, g1 = x[n, 0], x[n, 1], g[n, 0], g[n, 1]
                y0 = round_like((x0 - eps * g0) + sd * noise[s, n, 0], x)
                y1 = round_like((x1 - eps * g1) + sd * noise[s, n, 1], x)
                ey, h0, h1 = energy_grad(kind, p, y0, y1, True)
                ey, h0, h1 = round_like(ey, x), round_like(h0, x), round_like(h1, x)
                f0, f1 = (y0 - x0) + eps * g0, (y1 - x1) + eps * g1
                b0, b1 = (x0 - y0) + eps * h0, (x1 - y1) + eps * h1
                la = -(ey - en[n]) * inv_t - ((b0 * b0 + b1 * b1) - (f0 * f0 + f1 * f1)) * inv_2s2
                if math.isnan(la):
                    la = -math.inf  # a NaN proposal is rejected
                acc += _accept_prob(la) if s >= acc_from else 0.0
                # rand() < 1, so log(u) < 0 <= la: the log is needed only for la < 0
                if la >= 0.0 or math.log(unif[s, n]) < la:
                    x[n, 0], x[n, 1], en[n], g[n, 0], g[n, 1] = y0, y1, ey, h0, h1
                if f >= 0:
                    frames[f, n, 0], frames[f, n, 1] = x[n, 0], x[n, 1]
                    esum[f] += en[n]
                if q >= 0 and n < k:
                    paths[n, q, 0], paths[n, q, 1] = x[n, 0], x[n, 1]
    return acc


@njit
def _accept_prob(la):
    return 1.0 if la >= 0.0 else math.exp(la)


@njit
def hmc_chunk(kind, p, x, en, g, noise, unif, eps, n_leapfrog, temperature, acc_from, alive,
              frames, frame_of, paths, path_of, esum):
    """HMC steps (unit mass, ``n_leapfrog`` leapfrog steps) on the cached state ``(x, en, g)``;
    returns the summed acceptance probabilities of steps ``s >= acc_from``."""
    k = paths.shape[0]
    acc = 0.0
    for n0 in range(0, x.shape[0], BLOCK):
        for s in range(frame_of.shape[0]):
            f, q = frame_of[s], path_of[s]
            for n in range(n0, min(x.shape[0], n0 + BLOCK)):
                if not alive[n]:
                    continue
                v0, v1 = noise[s, n, 0], noise[s, n, 1]
                h0 = en[n] / temperature + 0.5 * (v0 * v0 + v1 * v1)
                y0, y1, ey, a0, a1 = x[n, 0], x[n, 1], en[n], g[n, 0], g[n, 1]
                v0 = round_like(v0 - 0.5 * eps * a0 / temperature, x)
                v1 = round_like(v1 - 0.5 * eps * a1 / temperature, x)
                for i in range(n_leapfrog):
                    y0, y1 = round_like(y0 + eps * v0, x), round_like(y1 + eps * v1, x)
                    ey, a0, a1 = energy_grad(kind, p, y0, y1, True)
                    ey, a0, a1 = round_like(ey, x), round_like(a0, x), round_like(a1, x)
                    if i < n_leapfrog - 1:
                        v0 = round_like(v0 - eps * a0 / temperature, x)
                        v1 = round_like(v1 - eps * a1 / temperature, x)
                v0 = round_like(v0 - 0.5 * eps * a0 / temperature, x)
                v1 = round_like(v1 - 0.5 * eps * a1 / temperature, x)
                la = h0 - (ey / temperature + 0.5 * (v0 * v0 + v1 * v1))
                if math.isnan(la):
                    la = -math.inf
                acc += _accept_prob(la) if s >= acc_from else 0.0
                if la >= 0.0 or math.log(unif[s, n]) < la:
                    x[n, 0], x[n, 1], en[n], g[n, 0], g[n, 1] = y0, y1, ey, a0, a1
                if f >= 0:
                    frames[f, n, 0], frames[f, n, 1] = x[n, 0], x[n, 1]
                    esum[f] += en[n]
                if q >= 0 and n < k:
                    paths[n, q, 0], paths[n, q, 1] = x[n, 0], x[n, 1]
    return acc


@njit
def baoab_chunk(kind, p, x, v, g, noise, noisy, half, c, sd, alive, frames, frame_of, paths,
                path_of, esum):
    """BAOAB steps of length ``2 half`` on ``(x, v, g)``: O is ``v <- c v + sd xi``."""
    k = paths.shape[0]
    for n0 in range(0, x.shape[0], BLOCK):
        for s in range(frame_of.shape[0]):
            f, q = frame_of[s], path_of[s]
            for n in range(n0, min(x.shape[0], n0 + BLOCK)):
                if not alive[n]:
                    continue
                v[n, 0], v[n, 1] = v[n, 0] - half * g[n, 0], v[n, 1] - half * g[n, 1]
                x[n, 0], x[n, 1] = x[n, 0] + half * v[n, 0], x[n, 1] + half * v[n, 1]
                v[n, 0], v[n, 1] = c * v[n, 0], c * v[n, 1]
                if noisy:
                    v[n, 0] = v[n, 0] + sd * noise[s, n, 0]
                    v[n, 1] = v[n, 1] + sd * noise[s, n, 1]
                x[n, 0], x[n, 1] = x[n, 0] + half * v[n, 0], x[n, 1] + half * v[n, 1]
                if f >= 0:
                    e, g[n, 0], g[n, 1] = energy_grad(kind, p, x[n, 0], x[n, 1], True)
                else:
                    e, g[n, 0], g[n, 1] = energy_grad(kind, p, x[n, 0], x[n, 1], False)
                v[n, 0], v[n, 1] = v[n, 0] - half * g[n, 0], v[n, 1] - half * g[n, 1]
                if f >= 0:
                    frames[f, n, 0], frames[f, n, 1] = x[n, 0], x[n, 1]
                    esum[f] += e
                if q >= 0 and n < k:
                    paths[n, q, 0], paths[n, q, 1] = x[n, 0], x[n, 1]
