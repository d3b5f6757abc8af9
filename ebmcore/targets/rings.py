"""Radial targets: a donut and concentric rings, E = -log sum_j exp(-(|x| - r_j)² / 2s²).

The density is a mixture of rings whose weights are their masses Z_j, all in
closed form, and so are E|x|² and an exact rejection sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ebmcore.energies import Target
from ebmcore.targets.potentials import (
    SQRT_2PI,
    TWO_PI,
    moments,
    norm_cdf,
    pair,
    rand,
    randn,
    rejection,
)

__all__ = ["build_donut", "build_rings", "ring_sampler", "safe_norm"]

RING_TAIL = 6.5  # radial margin in ring widths: mass beyond it < 7e-10 (see ring_box)


def ring_masses(r: float, s: float) -> tuple[float, float]:
    """``(∫ e^{-(|x|-r)²/2s²} dx, ∫ |x|² e^{-(|x|-r)²/2s²} dx)`` over R².

    With u = |x| - r and g(u) = e^{-u²/2s²}, the moments over u > -r are
    M0 = s√(2π) Φ(r/s), M1 = s² g(r), M2 = s² M0 - r s² g(r), M3 = (r² + 2s²) s² g(r),
    and ∫ρ^k g(ρ - r) ρ dρ expands (u + r)^(k+1) into them.
    """
    g = math.exp(-0.5 * (r / s) ** 2)
    m0 = s * SQRT_2PI * norm_cdf(r / s)
    m1 = s * s * g
    m2 = s * s * m0 - r * s * s * g
    m3 = (r * r + 2.0 * s * s) * s * s * g
    z = TWO_PI * (m1 + r * m0)
    second = TWO_PI * (m3 + 3.0 * r * m2 + 3.0 * r * r * m1 + r**3 * m0)
    return z, second


def ring_box(radii: Sequence[float], s: float) -> tuple[float, float, float, float]:
    """Square holding all but < 7e-10 of the mass.

    With q = r/s, the fraction of a ring beyond |x| = r + t s is
    (e^{-t²/2} + q√(2π) Φ(-t)) / D(q), D(q) = e^{-q²/2} + q√(2π) Φ(q).  Φ(-t) <= φ(t)/t bounds
    the numerator by e^{-t²/2} (1 + q/t), and D(0) = 1, D' = √(2π) Φ(q) >= 1.25 > 1/t, so the
    fraction is <= e^{-t²/2} = 6.7e-10 at t = 6.5.  The square contains that disc.
    """
    h = max(radii) + RING_TAIL * s
    return (-h, h, -h, h)


def safe_norm(x: Tensor) -> Tensor:
    """|x| ``(N,)``; the tiny offset keeps x/|x| and autograd finite at the origin."""
    return torch.sqrt(x.square().sum(-1) + torch.finfo(x.dtype).tiny)


def ring_sampler(radii: Sequence[float], s: float) -> Callable[[int, torch.Generator], Tensor]:
    """Exact sampler for the ring mixture, by rejection.

    For one ring, |x| = r + u has density ∝ (u + r) g(u) on u > -r, bounded by the envelope
    r g(u) + max(u, 0) g(u): a normal of mass r s√(2π) plus a Rayleigh of mass s².  Accepting
    with (u + r)⁺ / (r + u⁺) (= 1 for u >= 0) gives the ring; proposing ring j with weight
    equal to its envelope mass makes the accepted ring index follow the masses Z_j.
    """
    r_all = torch.tensor(list(radii), dtype=torch.float64)
    env = r_all * s * SQRT_2PI + s * s  # envelope masses

    def sample(n: int, g: torch.Generator) -> Tensor:
        def propose(m: int) -> tuple[Tensor, Tensor]:
            r = r_all[torch.multinomial(env, m, replacement=True, generator=g)]
            normal = rand(m, g) * (r * s * SQRT_2PI + s * s) < r * s * SQRT_2PI
            rayleigh = s * torch.sqrt(-2.0 * torch.log1p(-rand(m, g)))
            u = torch.where(normal, s * randn(m, g), rayleigh)
            ratio = (u + r).clamp(min=0.0) / (r + u.clamp(min=0.0))
            return r + u, rand(m, g) < ratio

        rho = rejection(n, g, propose)
        theta = TWO_PI * rand(n, g)
        return pair(rho * torch.cos(theta), rho * torch.sin(theta))

    return sample


def _build(name: str, radii: Sequence[float], s: float, params: dict[str, object]) -> Target:
    var = s * s

    def scaled(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rho = safe_norm(x)
        r = torch.tensor(list(radii), dtype=x.dtype, device=x.device)
        return -(rho[..., None] - r).square() / (2.0 * var), rho, r  # (N, k) logits

    def energy(x: Tensor) -> Tensor:
        return -torch.logsumexp(scaled(x)[0], dim=-1)

    def grad(x: Tensor) -> Tensor:
        lg, rho, r = scaled(x)
        pull = (rho - torch.softmax(lg, dim=-1) @ r) / (var * rho)  # dE/dρ / ρ
        return x * pull[..., None]

    masses = [ring_masses(r, s) for r in radii]
    z = sum(m[0] for m in masses)
    half_r2 = 0.5 * sum(m[1] for m in masses) / z  # E[x²] = E[y²] = E|x|² / 2
    mu, cov = moments((0.0, 0.0), (half_r2, 0.0, half_r2))
    return Target(name, energy, ring_box(radii, s), params, grad, ring_sampler(radii, s),
                  mu, cov, math.log(z))


def build_donut(radius: float, width: float) -> Target:
    """A ring: E = (|x| - r)² / 2s²."""
    return _build("donut", (radius,), width, {"radius": radius, "width": width})


def build_rings(n_rings: int, spacing: float, width: float) -> Target:
    """Rings of radii spacing * (1, ..., n), each E = (|x| - r_j)² / 2s², combined by logsumexp."""
    radii = tuple(spacing * (j + 1) for j in range(n_rings))
    return _build("rings", radii, width, {"n_rings": n_rings, "spacing": spacing, "width": width})
