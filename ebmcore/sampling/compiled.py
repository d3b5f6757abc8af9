"""Closed-form energies and gradients of the registry targets, compiled with numba.

The multi-step kernels of :mod:`ebmcore.sampling.compiled_loops` advance one chain through
a whole chunk of steps while it sits in registers; they call :func:`energy_grad` for the
target named by an integer *kind* with its parameters packed in a float64 vector.  One
compiled function serves every target, so the on-disk cache holds a handful of kernels
(one per sampler and dtype), not one per target.

:func:`compiled_target` packs a :class:`~ebmcore.energies.Target` and accepts the packing
only if the compiled energy and gradient agree with the target's own on probe points, so a
target rebuilt with other meanings for its parameters falls back to the torch paths.
Everything here is computed in float64 whatever the dtype of the chains, but for the
mixture and the transcendental targets (radial, funnel, squiggle, u1-u4) on float32 chains,
which :func:`grad_block` computes in vectorised float32 (:mod:`ebmcore.sampling.compiled_vec`,
:mod:`ebmcore.sampling.compiled_targets32`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ebmcore.energies import Target
from ebmcore.sampling.compiled_jit import AVAILABLE, is_f32, njit, round_like
from ebmcore.sampling.compiled_targets32 import (
    funnel_block32,
    radial_block32,
    squiggle_block32,
    strip_block32,
    u1_block32,
)
from ebmcore.sampling.compiled_vec import mixture_block32

__all__ = ["AVAILABLE", "KINDS", "compiled_target", "energy_grad", "grad_block", "njit",
           "round_like"]

KINDS = ("gaussian", "mixture", "banana", "radial", "funnel", "squiggle", "double_well",
         "u1", "u2", "u3", "u4")
"""Kind index -> the family it computes (donut and rings share ``radial``)."""
_KIND = {name: i for i, name in enumerate(KINDS)}
# Softmax weights below e^-40 of the largest (4e-18, invisible even in float64) are dropped:
# exp of very negative numbers is slow and they change nothing.
_CUT = -40.0
HALF_PI = 0.5 * math.pi


@njit(inline=True)
def _logsumexp_grad(lg0, lg1, use1):
    """``(logsumexp, w1)`` of two logits (the second used only if ``use1``), w1 its weight."""
    if not use1:
        return lg0, 0.0
    m = max(lg0, lg1)
    a, b = math.exp(lg0 - m), math.exp(lg1 - m)
    return m + math.log(a + b), b / (a + b)


@njit(inline=True)
def _strip(kind, wall, u, v, want_e):
    """U2-U4: ``-logsumexp_c(-(v - m_c(u))^2 / 2 tau_c^2) + wall(u)`` and its gradient."""
    s1 = math.sin(HALF_PI * u)
    d1 = HALF_PI * math.cos(HALF_PI * u)
    if kind == 8:  # u2: one component
        t0, t1, m1, dm1, two = 0.4, 1.0, 0.0, 0.0, False
    elif kind == 9:  # u3: the sine minus a Gaussian bump
        z = (u - 1.0) / 0.6
        w2 = 3.0 * math.exp(-0.5 * z * z)
        t0, t1, m1, dm1, two = 0.35, 0.35, s1 - w2, d1 - w2 * (-(u - 1.0) / 0.36), True
    else:  # u4: the sine minus a sigmoid step
        sg = 1.0 / (1.0 + math.exp(-(u - 1.0) / 0.3))
        t0, t1, m1, dm1, two = 0.4, 0.35, s1 - 3.0 * sg, d1 - (3.0 / 0.3) * sg * (1.0 - sg), True
    r0 = (v - s1) / t0
    r1 = (v - m1) / t1
    lse, w1 = _logsumexp_grad(-0.5 * r0 * r0, -0.5 * r1 * r1, two)
    w0 = 1.0 - w1
    wr0, wr1 = w0 * r0 / t0, w1 * r1 / t1
    out = max(abs(u) - 4.0, 0.0)
    sign = 1.0 if u > 0 else (-1.0 if u < 0 else 0.0)
    g0 = out * sign / (wall * wall) - (wr0 * d1 + wr1 * dm1)
    g1 = wr0 + wr1
    e = 0.5 * (out / wall) ** 2 - lse if want_e else 0.0
    return e, g0, g1


@njit(inline=True)
def _gaussian(p, u, v, want_e):  # p = (m0, m1, P00, P01, P11)
    du, dv = u - p[0], v - p[1]
    e = 0.5 * (p[2] * du * du + 2.0 * p[3] * du * dv + p[4] * dv * dv) if want_e else 0.0
    return e, p[2] * du + p[3] * dv, p[3] * du + p[4] * dv


@njit(inline=True)
def _mixture(p, u, v, want_e):  # p = (k, var, log k + log 2 pi var, mu_x..., mu_y...)
    k = int(p[0])
    c = -0.5 / p[1]
    dmin = math.inf
    for j in range(k):
        a, b = u - p[3 + j], v - p[3 + k + j]
        dmin = min(dmin, a * a + b * b)
    s = sx = sy = 0.0
    for j in range(k):
        a, b = u - p[3 + j], v - p[3 + k + j]
        lg = (a * a + b * b - dmin) * c
        if lg > _CUT:
            w = math.exp(lg)
            s += w
            sx += w * p[3 + j]
            sy += w * p[3 + k + j]
    e = p[2] - (dmin * c + math.log(s)) if want_e else 0.0
    return e, (u - sx / s) / p[1], (v - sy / s) / p[1]


@njit(inline=True)
def _banana(p, u, v, want_e):  # p = (a2, s2, b, 1 / a2, 1 / s2); products, not divisions
    q = v - p[2] * (u * u - p[0])
    r = q * p[4]
    e = 0.5 * (u * u * p[3] + q * r) if want_e else 0.0
    return e, u * p[3] - 2.0 * p[2] * u * r, r


@njit(inline=True)
def _radial(p, u, v, want_e):  # radial rings: p = (var, tiny, n, r_1..r_n)
    rho = math.sqrt(u * u + v * v + p[1])
    n = int(p[2])
    c = -0.5 / p[0]
    lmax = -math.inf
    for j in range(n):
        lmax = max(lmax, (rho - p[3 + j]) ** 2 * c)
    s = sr = 0.0
    for j in range(n):
        lg = (rho - p[3 + j]) ** 2 * c - lmax
        if lg > _CUT:
            w = math.exp(lg)
            s += w
            sr += w * p[3 + j]
    pull = (rho - sr / s) / (p[0] * rho)
    e = -(lmax + math.log(s)) if want_e else 0.0
    return e, u * pull, v * pull


@njit(inline=True)
def _funnel(p, u, v, want_e):  # p = (var,); |u|^k e^-v in log space as the torch energy does
    s1 = 0.0 if u == 0 else math.exp(math.log(abs(u)) - v)
    s2 = 0.0 if u == 0 else math.exp(2.0 * math.log(abs(u)) - v)
    e = 0.5 * (v * v / p[0] + s2 + v) if want_e else 0.0
    return e, s1 if u > 0 else -s1, v / p[0] + 0.5 - 0.5 * s2


@njit(inline=True)
def _squiggle(p, u, v, want_e):  # p = (ax, s2, freq)
    q = v - math.sin(p[2] * u)
    r = q / p[1]
    e = 0.5 * (u * u / p[0] + q * q / p[1]) if want_e else 0.0
    return e, u / p[0] - p[2] * math.cos(p[2] * u) * r, r


@njit(inline=True)
def _double_well(p, u, v, want_e):  # p = (h,)
    q = u * u - 1.0
    e = p[0] * q * q + 0.5 * v * v if want_e else 0.0
    return e, 4.0 * p[0] * u * q, v


@njit(inline=True)
def _u1(p, u, v, want_e):  # p = (tiny,)
    rho = math.sqrt(u * u + v * v + p[0])
    w_right = 1.0 / (1.0 + math.exp(-4.0 * u / 0.36))
    ring = (rho - 2.0) / (0.16 * rho)
    e = 0.0
    if want_e:
        a, b = -0.5 * ((u - 2.0) / 0.6) ** 2, -0.5 * ((u + 2.0) / 0.6) ** 2
        e = 0.5 * ((rho - 2.0) / 0.4) ** 2 - _logsumexp_grad(a, b, True)[0]
    return e, u * ring + (u - 2.0 * (2.0 * w_right - 1.0)) / 0.36, v * ring


@njit(inline=True)
def energy_grad(kind, p, u, v, want_e):
    """``(E, dE/du, dE/dv)`` at ``(u, v)`` for target ``kind`` with packed parameters ``p``.

    ``want_e`` False skips the energy (SGLD needs only the gradient).  For one point at a
    time (the probe, HMC's leapfrog); the kernels evaluate a block of chains at once with
    :func:`grad_block`, where the branch on ``kind`` is taken once per block, not per chain.
    """
    if kind == 0:
        return _gaussian(p, u, v, want_e)
    if kind == 1:
        return _mixture(p, u, v, want_e)
    if kind == 2:
        return _banana(p, u, v, want_e)
    if kind == 3:
        return _radial(p, u, v, want_e)
    if kind == 4:
        return _funnel(p, u, v, want_e)
    if kind == 5:
        return _squiggle(p, u, v, want_e)
    if kind == 6:
        return _double_well(p, u, v, want_e)
    if kind == 7:
        return _u1(p, u, v, want_e)
    return _strip(kind, p[0], u, v, want_e)  # u2, u3, u4: p = (wall,)


@njit
def grad_block(kind, p, u, v, m, want_e, e, g0, g1, work):
    """``e[i], g0[i], g1[i] = energy_grad(kind, p, u[i], v[i], want_e)`` for ``i < m``.

    One loop per kind, so that each is compiled for its target alone (the branch on the
    kind hoisted out of the chains' loop; branch-free targets vectorise): a run-time kind
    inside the loop cost banana 8x.  Outputs are stored in their arrays' dtype, as the
    reference kernels store energies and gradients.  On float32 chains the mixture
    (:func:`~ebmcore.sampling.compiled_vec.mixture_block32`) and the targets of
    :mod:`ebmcore.sampling.compiled_targets32` are computed in float32, to vectorise (the
    mixture and rings in ``work``, ``(4, >= m)`` scratch of the chains' dtype).
    """
    if kind == 0:
        for i in range(m):
            e[i], g0[i], g1[i] = _gaussian(p, u[i], v[i], want_e)
    elif kind == 1:
        if is_f32(u):
            mixture_block32(p, u, v, m, want_e, e, g0, g1, work)
        else:
            for i in range(m):
                e[i], g0[i], g1[i] = _mixture(p, u[i], v[i], want_e)
    elif kind == 2:
        for i in range(m):
            e[i], g0[i], g1[i] = _banana(p, u[i], v[i], want_e)
    elif kind == 3:
        if is_f32(u):
            radial_block32(p, u, v, m, want_e, e, g0, g1, work)
        else:
            for i in range(m):
                e[i], g0[i], g1[i] = _radial(p, u[i], v[i], want_e)
    elif kind == 4:
        if is_f32(u):
            funnel_block32(p, u, v, m, want_e, e, g0, g1)
        else:
            for i in range(m):
                e[i], g0[i], g1[i] = _funnel(p, u[i], v[i], want_e)
    elif kind == 5:
        if is_f32(u):
            squiggle_block32(p, u, v, m, want_e, e, g0, g1)
        else:
            for i in range(m):
                e[i], g0[i], g1[i] = _squiggle(p, u[i], v[i], want_e)
    elif kind == 6:
        for i in range(m):
            e[i], g0[i], g1[i] = _double_well(p, u[i], v[i], want_e)
    elif kind == 7:
        if is_f32(u):
            u1_block32(p, u, v, m, want_e, e, g0, g1)
        else:
            for i in range(m):
                e[i], g0[i], g1[i] = _u1(p, u[i], v[i], want_e)
    elif is_f32(u):
        strip_block32(kind, p, u, v, m, want_e, e, g0, g1)
    else:
        for i in range(m):
            e[i], g0[i], g1[i] = _strip(kind, p[0], u[i], v[i], want_e)


def _pack(target: Target, tiny: float) -> tuple[int, np.ndarray] | None:
    p = target.params
    name = target.name
    if name == "gaussian":
        a, b, _, d = (float(c) for c in p["cov"])
        det = a * d - b * b
        return 0, np.array([*map(float, p["mean"]), d / det, -b / det, a / det])
    if name == "mixture":
        k, radius, var = int(p["k"]), float(p["radius"]), float(p["std"]) ** 2
        ang = [2.0 * math.pi * j / k for j in range(k)]
        return 1, np.array([k, var, math.log(k) + math.log(2.0 * math.pi * var),
                            *(radius * math.cos(t) for t in ang),
                            *(radius * math.sin(t) for t in ang)])
    if name == "banana":
        a2, s2 = float(p["x_std"]) ** 2, float(p["y_std"]) ** 2
        return 2, np.array([a2, s2, float(p["bend"]) * float(p["y_std"]) / a2, 1.0 / a2,
                            1.0 / s2])
    if name in ("donut", "rings"):
        if name == "donut":
            radii, s = [float(p["radius"])], float(p["width"])
        else:
            radii = [float(p["spacing"]) * (j + 1) for j in range(int(p["n_rings"]))]
            s = float(p["width"])
        return 3, np.array([s * s, tiny, len(radii), *radii])
    if name == "funnel":
        return 4, np.array([float(p["sigma"]) ** 2])
    if name == "squiggle":
        return 5, np.array([float(p["x_std"]) ** 2, float(p["y_std"]) ** 2, float(p["freq"])])
    if name == "double_well":
        return 6, np.array([float(p["barrier"])])
    if name == "u1":
        return 7, np.array([tiny])
    if name in ("u2", "u3", "u4"):
        return _KIND[name], np.array([float(p["wall"])])
    return None


@njit
def _probe(kind, p, pts, out):
    for i in range(pts.shape[0]):
        e, g0, g1 = energy_grad(kind, p, pts[i, 0], pts[i, 1], True)
        out[i, 0], out[i, 1], out[i, 2] = e, g0, g1


def compiled_target(target: Target, dtype: torch.dtype) -> tuple[int, np.ndarray] | None:
    """``(kind, params)`` for the compiled kernels, or None (numba absent, or no match).

    ``dtype`` is the chains' dtype: the radial targets' guard against ``|x| = 0`` uses its
    smallest normal number, as their torch energy does.
    """
    if not AVAILABLE or target.grad is None:
        return None
    try:
        packed = _pack(target, float(torch.finfo(dtype).tiny))
    except (KeyError, TypeError, ValueError):
        return None
    if packed is None:
        return None
    kind, p = packed
    x0, x1, y0, y1 = target.box
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(64, 2, generator=gen, dtype=torch.float64)
    pts = torch.stack([x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]], 1)
    out = np.empty((pts.shape[0], 3))
    _probe(kind, p, pts.numpy(), out)
    with torch.no_grad():
        e_ref, g_ref = target.energy(pts).numpy(), target.grad(pts).numpy()
    scale_e = 1e-9 * (np.abs(e_ref).max() + 1.0)
    scale_g = 1e-9 * (np.abs(g_ref).max() + 1.0)
    if np.abs(out[:, 0] - e_ref).max() > scale_e or np.abs(out[:, 1:] - g_ref).max() > scale_g:
        return None
    return kind, p
