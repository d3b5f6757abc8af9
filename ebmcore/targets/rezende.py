"""The four 2D potentials of Rezende & Mohamed (2015, "Variational inference with normalizing
flows", Table 1), with exact samplers and normalisers.

U2-U4 do not confine x (the horizontal axis): on R² they are improper.  We keep them exactly as
published for |x| <= 4 and add a soft wall (|x| - 4)² / 2w² outside, which makes them proper
with a uniform-plus-Gaussian-tails x marginal; given x, y is a mixture of Gaussians.  Hence
log Z in closed form, exact samplers, and moments from 1D Gauss-Legendre integrals over x.
U1 (a ring with two lobes) is proper as published.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ebmcore.energies import Target
from ebmcore.targets.potentials import (
    SQRT_2PI,
    TAIL,
    TWO_PI,
    gauss_legendre,
    moments,
    pair,
    rand,
    randn,
    rejection,
)
from ebmcore.targets.rings import ring_sampler, safe_norm

__all__ = ["build_u1", "build_u2", "build_u3", "build_u4"]

STRIP = 4.0  # |x| up to which U2-U4 are as published; the wall acts beyond
Shift = Callable[[object, object], object]  # (x, array module) -> centre of a y-component


def _w1(x, xp):
    return xp.sin(0.5 * math.pi * x)  # sin(2π x / 4)


def _w2(x, xp):
    return 3.0 * xp.exp(-0.5 * ((x - 1.0) / 0.6) ** 2)


def _w3(x, xp):
    z = (x - 1.0) / 0.3
    return 3.0 * (torch.sigmoid(z) if xp is torch else 0.5 * (1.0 + np.tanh(z / 2)))


# Derivatives of the shifts (torch only): the closed-form gradients use them.
def _dw1(x: Tensor) -> Tensor:
    return 0.5 * math.pi * torch.cos(0.5 * math.pi * x)


def _dw2(x: Tensor) -> Tensor:
    return _w2(x, torch) * (-(x - 1.0) / 0.36)


def _dw3(x: Tensor) -> Tensor:
    s = torch.sigmoid((x - 1.0) / 0.3)
    return (3.0 / 0.3) * s * (1.0 - s)


def _strip(name: str, comps: list[tuple[Shift, float]], wall: float,
           slopes: list[Callable[[Tensor], Tensor]]) -> Target:
    """U(x, y) = -log sum_c exp(-(y - m_c(x))² / 2τ_c²) + wall(x), for comps ``[(m_c, τ_c)]``.

    ``slopes[c]`` is ``m_c'``: with ``r_c = (y - m_c) / τ_c`` and softmax weights ``w_c`` of
    the logits, ``dU/dy = Σ w_c r_c / τ_c`` and ``dU/dx = wall'(x) - Σ w_c r_c m_c' / τ_c``.
    """
    taus = [t for _, t in comps]
    tail_mass = wall * SQRT_2PI  # ∫ of e^{-(|x|-4)²/2w²} over |x| > 4
    z_x = 2.0 * STRIP + tail_mass  # ∫ of the x marginal's kernel

    def energy(x: Tensor) -> Tensor:
        u, v = x[..., 0], x[..., 1]
        logits = torch.stack([-0.5 * ((v - m(u, torch)) / t) ** 2 for m, t in comps], dim=-1)
        out = (u.abs() - STRIP).clamp(min=0.0) / wall
        return 0.5 * out * out - torch.logsumexp(logits, dim=-1)

    def grad(x: Tensor) -> Tensor:
        u, v = x[..., 0], x[..., 1]
        r = torch.stack([(v - m(u, torch)) / t for m, t in comps], dim=-1)  # (N, C)
        w = torch.softmax(-0.5 * r * r, dim=-1)
        inv_tau = torch.tensor([1.0 / t for t in taus], dtype=x.dtype, device=x.device)
        wr = w * r * inv_tau
        slope = torch.stack([d(u) for d in slopes], dim=-1)
        wall_du = (u.abs() - STRIP).clamp(min=0.0) * torch.sign(u) / (wall * wall)
        return pair(wall_du - (wr * slope).sum(-1), wr.sum(-1))

    def sampler(n: int, g: torch.Generator) -> Tensor:
        in_tail = rand(n, g) * z_x < tail_mass
        side = torch.where(rand(n, g) < 0.5, -1.0, 1.0).to(torch.float64)
        tail_u = side * (STRIP + wall * randn(n, g).abs())
        u = torch.where(in_tail, tail_u, STRIP * (2.0 * rand(n, g) - 1.0))
        c = torch.multinomial(torch.tensor(taus, dtype=torch.float64), n, True, generator=g)
        centre = torch.stack([m(u, torch) for m, _ in comps], dim=-1).gather(1, c[:, None])[:, 0]
        return pair(u, centre + torch.tensor(taus, dtype=torch.float64)[c] * randn(n, g))

    # Moments: component c has weight τ_c / Στ; integrate over the x marginal.
    far = STRIP + 12 * wall  # the wall beyond 12w holds e^{-72}
    edges = np.concatenate([np.linspace(-far, -STRIP, 9)[:-1], np.linspace(-STRIP, STRIP, 33),
                            np.linspace(STRIP, far, 9)[1:]])
    xs, w = gauss_legendre(edges)
    w = w * np.exp(-0.5 * (np.clip(np.abs(xs) - STRIP, 0.0, None) / wall) ** 2) / z_x
    pis = np.array(taus) / sum(taus)
    cent = np.stack([m(xs, np) for m, _ in comps])  # (C, nodes)
    m1 = pis @ cent
    m2 = pis @ (cent**2 + np.array(taus)[:, None] ** 2)
    ey = float(w @ m1)
    mu, cov = moments((0.0, ey), (float(w @ xs**2), float(w @ (xs * m1)), float(w @ m2) - ey**2))
    # |y - m_c(x)| <= 6 τ_c but for 2 Phi(-6); the x-wall beyond 6w holds < 1e-10.  Centres
    # are bounded on a grid of spacing <= 1.6e-3 where |m_c'| < 5: it misses them by < 0.004.
    grid = np.linspace(-STRIP - TAIL * wall, STRIP + TAIL * wall, 20001)
    lo = min(float(m(grid, np).min()) - TAIL * t for m, t in comps) - 0.01
    hi = max(float(m(grid, np).max()) + TAIL * t for m, t in comps) + 0.01
    half = STRIP + TAIL * wall
    box = (-half, half, min(lo, -STRIP), max(hi, STRIP))
    log_z = math.log(sum(taus) * SQRT_2PI * z_x)
    return Target(name, energy, box, {"wall": wall}, grad, sampler, mu, cov, log_z)


def build_u2(wall: float) -> Target:
    """U2: y = sin(πx/2) + 0.4 N(0, 1) over a (soft-walled) uniform x."""
    return _strip("u2", [(_w1, 0.4)], wall, [_dw1])


def build_u3(wall: float) -> Target:
    """U3: the sine of U2 split by a Gaussian bump near x = 1."""
    return _strip("u3", [(_w1, 0.35), (lambda x, xp: _w1(x, xp) - _w2(x, xp), 0.35)], wall,
                  [_dw1, lambda x: _dw1(x) - _dw2(x)])


def build_u4(wall: float) -> Target:
    """U4: the sine of U2 split by a sigmoid step at x = 1."""
    return _strip("u4", [(_w1, 0.4), (lambda x, xp: _w1(x, xp) - _w3(x, xp), 0.35)], wall,
                  [_dw1, lambda x: _dw1(x) - _dw3(x)])


def build_u1() -> Target:
    """U1: a ring of radius 2 (width 0.4) with two lobes at x = ±2 (width 0.6)."""
    lobe_max = 1.0 + math.exp(-0.5 * (2.0 / 0.6) ** 2)  # sup of the two-lobe factor

    def lobes(u):  # the two-lobe factor, numpy (>= 0, <= lobe_max)
        return np.exp(-0.5 * ((u - 2.0) / 0.6) ** 2) + np.exp(-0.5 * ((u + 2.0) / 0.6) ** 2)

    def energy(x: Tensor) -> Tensor:
        u = x[..., 0]
        lg = torch.stack((-0.5 * ((u - 2.0) / 0.6) ** 2, -0.5 * ((u + 2.0) / 0.6) ** 2), dim=-1)
        return 0.5 * ((safe_norm(x) - 2.0) / 0.4) ** 2 - torch.logsumexp(lg, dim=-1)

    def grad(x: Tensor) -> Tensor:
        # Ring: x (ρ - 2) / (0.16 ρ); lobes: d/du of -logsumexp is (u - Σ w_j c_j) / 0.36.
        u = x[..., 0]
        rho = safe_norm(x)
        w_right = torch.sigmoid(4.0 * u / 0.36)  # softmax of the lobe logits (centres ±2)
        lobe = (u - 2.0 * (2.0 * w_right - 1.0)) / 0.36
        ring = x * ((rho - 2.0) / (0.16 * rho))[..., None]
        return pair(ring[..., 0] + lobe, ring[..., 1])

    ring = ring_sampler((2.0,), 0.4)

    def sampler(n: int, g: torch.Generator) -> Tensor:
        # For u >= 0 the lobe at -2 is <= e^{-(2/0.6)²/2}, the other <= 1: lobe_max bounds both.
        def propose(m: int) -> tuple[Tensor, Tensor]:
            z = ring(m, g)
            f = torch.from_numpy(lobes(z[:, 0].numpy()))
            return z, rand(m, g) * lobe_max < f

        return rejection(n, g, propose)

    # Z, E[x²], E[y²] in polar coordinates: Gauss-Legendre in r, the (spectrally exact)
    # periodic trapezoid rule in θ.  Mean and E[xy] vanish by symmetry.
    r, wr = gauss_legendre(np.linspace(0.0, 2.0 + 12 * 0.4, 17))
    th = np.arange(512) * (TWO_PI / 512)
    x, y = r[:, None] * np.cos(th), r[:, None] * np.sin(th)
    dens = (wr * r * np.exp(-0.5 * ((r - 2.0) / 0.4) ** 2))[:, None] * lobes(x) * (TWO_PI / 512)
    z = float(dens.sum())
    mu, cov = moments((0.0, 0.0), (float((dens * x * x).sum()) / z, 0.0,
                                   float((dens * y * y).sum()) / z))
    # The density is <= lobe_max times the ring's, whose mass beyond r = 2 + 7 (0.4) is a fraction
    # <= e^{-49/2} = 2.3e-11 of the ring (see ring_box), i.e. < 1e-10 of U1's mass.
    half = 2.0 + 7.0 * 0.4
    return Target("u1", energy, (-half, half, -half, half), {}, grad, sampler, mu, cov,
                  math.log(z))
