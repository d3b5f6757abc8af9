"""Compiled multi-step kernels: SGLD, MALA, HMC and BAOAB over a chunk of steps.

Each kernel draws its random numbers where it uses them, from the run's
:class:`~ebmcore.sampling.noise.NoiseStream` (``seed``, and ``pos``, its position at the
chunk's start): a block's noise at step ``s`` is the block's rows of the ``normal(N, 2)``
(then ``uniform(N)``, for an accept test) that the reference kernels draw at that step,
computed from the outputs' indices alone (:func:`~ebmcore.sampling.noise.block_normals`).
So the random stream is the reference kernels' one draw for draw, from the same seed the
chains agree with :mod:`ebmcore.sampling.kernels` to rounding, and no chunk of noise is
ever stored (at 1e6 chains, 32 steps of it were 256 MB written and read back).
The caller advances the stream by :func:`step_outputs` per step.  Each kernel runs block
by block: a block of :data:`BLOCK` chains is copied into scratch
vectors that stay in the L1 cache through all the chunk's steps, and each step is a few
loops over the block, the gradient evaluated for the whole block at once by
:func:`ebmcore.sampling.compiled.grad_block` (one branch on the target per block, so each
target's loop is compiled for it alone; a run-time target inside a per-chain loop made
banana's SGLD 8x slower).
Every value the reference kernels store (positions, energies, gradients, velocities) is
stored in a scratch vector of the chains' dtype where they store it, so it is rounded
as theirs is.  On float32 chains MALA's accept step runs in float32 too, branch-free
(:func:`ebmcore.sampling.compiled_vec.mala_accept32`): a loop with a branch, a run-time
flag or a conditional store in it is not vectorised.

Every kernel is compiled once per dtype and cached on disk, under the stamp of all the
kernel modules (:mod:`ebmcore.sampling.compiled_jit`); the target is a run-time ``kind``
(see :func:`ebmcore.sampling.compiled.energy_grad`).

Each kernel advances the chains ``lo <= n < hi`` (``lo`` a multiple of :data:`BLOCK`): the
blocks are independent (each draws its own rows of the stream), so two threads running
halves of the chains at once give the one-thread run's positions bit for bit
(:func:`ebmcore.sampling.compiled_run.run_compiled`); only the float64 energy sums add up
in another order.

Chains with ``alive[n]`` False are not moved (they stay frozen).  After each step ``s``
with ``check_of[s]`` the live chains are checked (``|x| < far``, false for NaN), and the
first such ``s`` where one fails is returned (-1: none): the caller, which runs many
checks' worth of steps in one call, then replays the chunk up to that check (see
:mod:`ebmcore.sampling.compiled_run`).
What a run records is written as it goes: ``frames[frame_of[s], n]`` after step ``s``
where ``frame_of[s] >= 0`` (live chains), the first ``paths.shape[0]`` chains into
``paths[n, path_of[s]]``, and the live chains' energies summed into ``esum[frame_of[s]]``
(float64).
"""

from __future__ import annotations

import math

import numpy as np

from ebmcore.sampling.compiled import grad_block, njit, round_like
from ebmcore.sampling.compiled_jit import is_f32
from ebmcore.sampling.compiled_vec import mala_accept32
from ebmcore.sampling.noise import _U, block_normals, block_uniforms, uniform_outputs

__all__ = ["BLOCK", "baoab_chunk", "energy_grad_all", "hmc_chunk", "mala_chunk", "sgld_chunk",
           "step_outputs"]

BLOCK = 256  # chains advanced together: their scratch vectors fit in L1 (even: see _u_at)


def step_outputs(n: int, f32: bool, accept: bool) -> int:
    """The stream outputs one step of ``n`` chains takes: ``normal(N, 2)`` (``n``), then for
    an accept test ``uniform(N)`` (``ceil(n / 2)`` in float32, ``n`` in float64)."""
    return n + (uniform_outputs(n, np.float32 if f32 else np.float64) if accept else 0)


@njit(inline=True)
def _n_at(pos, s, stride, n0):
    """Output index of chain ``n0``'s normals at chunk step ``s``."""
    return pos + _U(s * stride + n0)


@njit(inline=True)
def _u_at(pos, s, stride, n, n0, f32):
    """Output index of chain ``n0``'s uniform at chunk step ``s`` (``n0`` even: a float32
    block starts on an output's first value)."""
    return pos + _U(s * stride + n + (n0 // 2 if f32 else n0))


@njit(inline=True)
def _load(x, n0, m, alive, u, v, live):
    for i in range(m):
        u[i], v[i], live[i] = x[n0 + i, 0], x[n0 + i, 1], alive[n0 + i]


@njit(inline=True)
def _store(x, n0, m, u, v):
    for i in range(m):
        x[n0 + i, 0], x[n0 + i, 1] = u[i], v[i]


@njit(inline=True)
def _bad(m, u, v, live, far):
    """Whether a live chain of the block left the finite world: ``|x| < far`` fails (NaN too)."""
    k = 0
    for i in range(m):
        k += live[i] and not (abs(u[i]) < far and abs(v[i]) < far)
    return k > 0


@njit(inline=True)
def _record(f, q, n0, m, u, v, e, live, frames, paths, esum):
    """Frame ``f`` (live chains, their energies summed) and path column ``q``; -1: none."""
    if f >= 0:
        tot = 0.0
        for i in range(m):
            if live[i]:
                frames[f, n0 + i, 0], frames[f, n0 + i, 1] = u[i], v[i]
                tot += e[i]
        esum[f] += tot
    if q >= 0:
        for i in range(min(m, paths.shape[0] - n0)):
            paths[n0 + i, q, 0], paths[n0 + i, q, 1] = u[i], v[i]


@njit(inline=True)
def _record_drifting(f, q, n0, m, u, v, e, live, x, frames, paths, esum):
    """:func:`_record` where frozen chains drift in the scratch vectors: their frames and
    paths are taken from ``x`` (where they stay frozen), their energies left out."""
    if f >= 0:
        tot = 0.0
        for i in range(m):
            frames[f, n0 + i, 0] = u[i] if live[i] else x[n0 + i, 0]
            frames[f, n0 + i, 1] = v[i] if live[i] else x[n0 + i, 1]
            tot += e[i] if live[i] else 0.0
        esum[f] += tot
    if q >= 0:
        for i in range(min(m, paths.shape[0] - n0)):
            paths[n0 + i, q, 0] = u[i] if live[i] else x[n0 + i, 0]
            paths[n0 + i, q, 1] = v[i] if live[i] else x[n0 + i, 1]


@njit(inline=True)
def _store_live(x, n0, m, u, v, live):
    for i in range(m):
        if live[i]:
            x[n0 + i, 0], x[n0 + i, 1] = u[i], v[i]


@njit
def energy_grad_all(kind, p, x, e, g):
    """``e[n], g[n] = E(x[n]), grad E(x[n])`` for every chain, block by block (a run's
    starting state: at 1e6 chains torch took 0.2 s of u4's 1.1 s run for it)."""
    dt = x.dtype
    u, v, eb = np.empty(BLOCK, dt), np.empty(BLOCK, dt), np.empty(BLOCK, dt)
    g0, g1, work = np.empty(BLOCK, dt), np.empty(BLOCK, dt), np.empty((4, BLOCK), dt)
    n = x.shape[0]
    for n0 in range(0, n, BLOCK):
        m = min(n - n0, BLOCK)
        for i in range(m):
            u[i], v[i] = x[n0 + i, 0], x[n0 + i, 1]
        grad_block(kind, p, u, v, m, True, eb, g0, g1, work)
        for i in range(m):
            e[n0 + i], g[n0 + i, 0], g[n0 + i, 1] = eb[i], g0[i], g1[i]


@njit
def sgld_chunk(kind, p, x, seed, pos, noisy, eps, scale, alive, frames, frame_of, paths,
               path_of, esum, check_of, far, lo, hi):
    """``x <- x - eps grad E(x) + scale xi`` for each step of the chunk (``noisy`` False: no xi);
    returns the first step that failed a check (see the module docstring)."""
    dt = x.dtype
    eps, scale = round_like(eps, x), round_like(scale, x)  # the dtype's arithmetic, as torch's
    u, v, e = np.empty(BLOCK, dt), np.empty(BLOCK, dt), np.empty(BLOCK, dt)
    g0, g1 = np.empty(BLOCK, dt), np.empty(BLOCK, dt)  # the gradient, rounded as the reference's
    z0, z1 = np.empty(BLOCK, dt), np.empty(BLOCK, dt)  # the block's noise at a step
    live = np.empty(BLOCK, np.bool_)
    work = np.empty((4, BLOCK), dt)  # grad_block's scratch
    n, first = x.shape[0], -1
    for n0 in range(lo, hi, BLOCK):
        m = min(hi - n0, BLOCK)
        _load(x, n0, m, alive, u, v, live)
        grad_block(kind, p, u, v, m, False, e, g0, g1, work)
        for s in range(frame_of.shape[0]):
            f = frame_of[s]
            # Two loops, each without a branch or a conditional store: a run-time flag inside
            # one keeps it from vectorising, and ``u[i] = a if live[i] else u[i]`` becomes a
            # masked store, which AMD's cores run ~10x slower than a plain one.  So frozen
            # chains move on in the scratch vectors, and are taken from ``x`` where recorded.
            if noisy:
                block_normals(seed, _n_at(pos, s, n, n0), m, z0, z1)
                for i in range(m):
                    u[i] = (u[i] - eps * g0[i]) + scale * z0[i]
                    v[i] = (v[i] - eps * g1[i]) + scale * z1[i]
            else:
                for i in range(m):
                    u[i], v[i] = u[i] - eps * g0[i], v[i] - eps * g1[i]
            grad_block(kind, p, u, v, m, f >= 0, e, g0, g1, work)  # the energy only where recorded
            _record_drifting(f, path_of[s], n0, m, u, v, e, live, x, frames, paths, esum)
            if check_of[s] and (first < 0 or s < first) and _bad(m, u, v, live, far):
                first = s
        _store_live(x, n0, m, u, v, live)
    return first


@njit(inline=True)
def _accept_prob(la):
    return 1.0 if la >= 0.0 else math.exp(la)


@njit
def mala_chunk(kind, p, x, en, g, seed, pos, eps, temperature, acc_from, alive, frames,
               frame_of, paths, path_of, esum, check_of, far, lo, hi):
    """MALA steps on the cached state ``(x, en, g)``; returns the summed acceptance
    probabilities of steps ``s >= acc_from`` and the first step that failed a check."""
    dt = x.dtype
    s2 = 2.0 * eps * temperature
    sd = math.sqrt(s2)
    inv_t, inv_2s2 = 1.0 / temperature, 1.0 / (2.0 * s2)  # products in the loop, not divisions
    eps, sd = round_like(eps, x), round_like(sd, x)  # the proposal in the dtype's arithmetic
    st, pr = np.empty((5, BLOCK), dt), np.empty((5, BLOCK), dt)
    u, v, ee, g0, g1 = st[0], st[1], st[2], st[3], st[4]  # the state
    y0, y1, ey, h0, h1 = pr[0], pr[1], pr[2], pr[3], pr[4]  # the proposal
    live = np.empty(BLOCK, np.bool_)
    work = np.empty((4, BLOCK), dt)  # grad_block's scratch
    accv = np.zeros(BLOCK)  # float32 chains: each one's summed acceptance probabilities
    z0, z1, ub = np.empty(BLOCK, dt), np.empty(BLOCK, dt), np.empty(BLOCK, dt)  # its noise
    acc, first = 0.0, -1
    n, f32 = x.shape[0], is_f32(x)
    stride = n + ((n + 1) // 2 if f32 else n)
    for n0 in range(lo, hi, BLOCK):
        m = min(hi - n0, BLOCK)
        _load(x, n0, m, alive, u, v, live)
        for i in range(m):
            ee[i], g0[i], g1[i] = en[n0 + i], g[n0 + i, 0], g[n0 + i, 1]
        for s in range(frame_of.shape[0]):
            block_normals(seed, _n_at(pos, s, stride, n0), m, z0, z1)
            block_uniforms(seed, _u_at(pos, s, stride, n, n0, f32), m, ub)
            for i in range(m):
                y0[i] = (u[i] - eps * g0[i]) + sd * z0[i]
                y1[i] = (v[i] - eps * g1[i]) + sd * z1[i]
            grad_block(kind, p, y0, y1, m, True, ey, h0, h1, work)
            if is_f32(x):  # branch-free, so that it vectorises
                mala_accept32(st, pr, m, ub[:m], live, eps, inv_t, inv_2s2,
                              1.0 if s >= acc_from else 0.0, accv)
            else:
                for i in range(m):
                    if not live[i]:
                        continue
                    f0, f1 = (y0[i] - u[i]) + eps * g0[i], (y1[i] - v[i]) + eps * g1[i]
                    b0, b1 = (u[i] - y0[i]) + eps * h0[i], (v[i] - y1[i]) + eps * h1[i]
                    la = (-(ey[i] - ee[i]) * inv_t
                          - ((b0 * b0 + b1 * b1) - (f0 * f0 + f1 * f1)) * inv_2s2)
                    if math.isnan(la):
                        la = -math.inf  # a NaN proposal is rejected
                    if s >= acc_from:
                        acc += _accept_prob(la)
                    # rand() < 1, so log(u) < 0 <= la: the log is needed only for la < 0
                    if la >= 0.0 or math.log(ub[i]) < la:
                        u[i], v[i], ee[i], g0[i], g1[i] = y0[i], y1[i], ey[i], h0[i], h1[i]
            _record(frame_of[s], path_of[s], n0, m, u, v, ee, live, frames, paths, esum)
            if check_of[s] and (first < 0 or s < first) and _bad(m, u, v, live, far):
                first = s
        _store(x, n0, m, u, v)
        for i in range(m):
            en[n0 + i], g[n0 + i, 0], g[n0 + i, 1] = ee[i], g0[i], g1[i]
            acc += accv[i]
            accv[i] = 0.0
    return acc, first


@njit
def hmc_chunk(kind, p, x, en, g, seed, pos, eps, n_leapfrog, temperature, acc_from, alive,
              frames, frame_of, paths, path_of, esum, check_of, far, lo, hi):
    """HMC steps (unit mass, ``n_leapfrog`` leapfrog steps) on the cached state ``(x, en, g)``;
    returns the summed acceptance probabilities of steps ``s >= acc_from`` and the first
    step that failed a check."""
    dt = x.dtype
    st, tr = np.empty((5, BLOCK), dt), np.empty((5, BLOCK), dt)
    u, v, ee, g0, g1 = st[0], st[1], st[2], st[3], st[4]  # the state
    y0, y1, ey, a0, a1 = tr[0], tr[1], tr[2], tr[3], tr[4]  # the trajectory
    w0, w1 = np.empty(BLOCK, dt), np.empty(BLOCK, dt)  # its momentum
    h0 = np.empty(BLOCK)  # the starting Hamiltonian, float64 as the kernels compute it
    z0, z1, ub = np.empty(BLOCK, dt), np.empty(BLOCK, dt), np.empty(BLOCK, dt)  # its noise
    live = np.empty(BLOCK, np.bool_)
    work = np.empty((4, BLOCK), dt)  # grad_block's scratch
    acc, first = 0.0, -1
    n, f32 = x.shape[0], is_f32(x)
    stride = n + ((n + 1) // 2 if f32 else n)
    for n0 in range(lo, hi, BLOCK):
        m = min(hi - n0, BLOCK)
        _load(x, n0, m, alive, u, v, live)
        for i in range(m):
            ee[i], g0[i], g1[i] = en[n0 + i], g[n0 + i, 0], g[n0 + i, 1]
        for s in range(frame_of.shape[0]):
            block_normals(seed, _n_at(pos, s, stride, n0), m, z0, z1)
            block_uniforms(seed, _u_at(pos, s, stride, n, n0, f32), m, ub)
            for i in range(m):
                p0, p1 = z0[i], z1[i]
                h0[i] = ee[i] / temperature + 0.5 * (p0 * p0 + p1 * p1)
                y0[i], y1[i], ey[i], a0[i], a1[i] = u[i], v[i], ee[i], g0[i], g1[i]
                w0[i] = p0 - 0.5 * eps * a0[i] / temperature
                w1[i] = p1 - 0.5 * eps * a1[i] / temperature
            for j in range(n_leapfrog):
                for i in range(m):
                    y0[i], y1[i] = y0[i] + eps * w0[i], y1[i] + eps * w1[i]
                grad_block(kind, p, y0, y1, m, True, ey, a0, a1, work)
                if j < n_leapfrog - 1:
                    for i in range(m):
                        w0[i] = w0[i] - eps * a0[i] / temperature
                        w1[i] = w1[i] - eps * a1[i] / temperature
            for i in range(m):
                w0[i] = w0[i] - 0.5 * eps * a0[i] / temperature
                w1[i] = w1[i] - 0.5 * eps * a1[i] / temperature
                if not live[i]:
                    continue
                la = h0[i] - (ey[i] / temperature + 0.5 * (w0[i] * w0[i] + w1[i] * w1[i]))
                if math.isnan(la):
                    la = -math.inf
                if s >= acc_from:
                    acc += _accept_prob(la)
                if la >= 0.0 or math.log(ub[i]) < la:
                    u[i], v[i], ee[i], g0[i], g1[i] = y0[i], y1[i], ey[i], a0[i], a1[i]
            _record(frame_of[s], path_of[s], n0, m, u, v, ee, live, frames, paths, esum)
            if check_of[s] and (first < 0 or s < first) and _bad(m, u, v, live, far):
                first = s
        _store(x, n0, m, u, v)
        for i in range(m):
            en[n0 + i], g[n0 + i, 0], g[n0 + i, 1] = ee[i], g0[i], g1[i]
    return acc, first


@njit
def baoab_chunk(kind, p, x, v, g, seed, pos, noisy, half, c, sd, alive, frames, frame_of,
                paths, path_of, esum, check_of, far, lo, hi):
    """BAOAB steps of length ``2 half`` on ``(x, v, g)``: O is ``v <- c v + sd xi``; returns
    the first step that failed a check (-1: none)."""
    dt = x.dtype
    half, c, sd = round_like(half, x), round_like(c, x), round_like(sd, x)
    q0, q1, e = np.empty(BLOCK, dt), np.empty(BLOCK, dt), np.empty(BLOCK, dt)
    buf = np.empty((4, BLOCK), dt)
    w0, w1, g0, g1 = buf[0], buf[1], buf[2], buf[3]
    z0, z1 = np.empty(BLOCK, dt), np.empty(BLOCK, dt)  # the block's noise at a step
    live = np.empty(BLOCK, np.bool_)
    work = np.empty((4, BLOCK), dt)  # grad_block's scratch
    n, first = x.shape[0], -1
    for n0 in range(lo, hi, BLOCK):
        m = min(hi - n0, BLOCK)
        _load(x, n0, m, alive, q0, q1, live)
        for i in range(m):
            w0[i], w1[i], g0[i], g1[i] = v[n0 + i, 0], v[n0 + i, 1], g[n0 + i, 0], g[n0 + i, 1]
        for s in range(frame_of.shape[0]):
            f = frame_of[s]
            # No branch on live chains (see sgld_chunk): frozen ones move on in the scratch.
            for i in range(m):
                w0[i], w1[i] = w0[i] - half * g0[i], w1[i] - half * g1[i]
                q0[i], q1[i] = q0[i] + half * w0[i], q1[i] + half * w1[i]
                w0[i], w1[i] = c * w0[i], c * w1[i]
            if noisy:
                block_normals(seed, _n_at(pos, s, n, n0), m, z0, z1)
                for i in range(m):
                    w0[i], w1[i] = w0[i] + sd * z0[i], w1[i] + sd * z1[i]
            for i in range(m):
                q0[i], q1[i] = q0[i] + half * w0[i], q1[i] + half * w1[i]
            grad_block(kind, p, q0, q1, m, f >= 0, e, g0, g1, work)
            for i in range(m):
                w0[i], w1[i] = w0[i] - half * g0[i], w1[i] - half * g1[i]
            _record_drifting(f, path_of[s], n0, m, q0, q1, e, live, x, frames, paths, esum)
            if check_of[s] and (first < 0 or s < first) and _bad(m, q0, q1, live, far):
                first = s
        _store_live(x, n0, m, q0, q1, live)
        for i in range(m):
            if live[i]:
                v[n0 + i, 0], v[n0 + i, 1] = w0[i], w1[i]
                g[n0 + i, 0], g[n0 + i, 1] = g0[i], g1[i]
    return first
