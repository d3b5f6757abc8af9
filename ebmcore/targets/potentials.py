"""Builders for the classic 2D targets: energies, closed-form gradients, exact samplers, moments.

Every ``build_*`` takes validated keyword parameters and returns a
:class:`~ebmcore.energies.Target`.  Energies map ``(N, 2) -> (N,)`` in the dtype
and device of their input; samplers draw ``(n, 2)`` float64 on the CPU from the
given generator only.  Boxes hold all but < 1e-8 of the mass (bounds beside
each box) and are also the quadrature domain.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ebmcore.energies import Target, ValidationError

__all__ = [
    "build_banana",
    "build_double_well",
    "build_funnel",
    "build_gaussian",
    "build_mixture",
    "build_squiggle",
]

TWO_PI = 2.0 * math.pi
SQRT_2PI = math.sqrt(TWO_PI)
TAIL = 6.0  # box margin in standard deviations: one side holds Phi(-6) = 9.9e-10, four < 4e-9
# Largest |correlation| of the Gaussian: on its +-6 sd box the 256-cell midpoint rule's aliasing
# error is about exp(-(2π 256 / 12)² (1 - |corr|)) = e^{-90} there.
MAX_CORR = 0.995

Moments = tuple[tuple[float, float], tuple[tuple[float, float], tuple[float, float]]]


def norm_cdf(z: float) -> float:
    """Standard normal CDF, accurate in both tails."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def pair(gx: Tensor, gy: Tensor) -> Tensor:
    """Stack two ``(N,)`` columns into ``(N, 2)``."""
    return torch.stack((gx, gy), dim=-1)


def randn(n: int, g: torch.Generator) -> Tensor:
    """``(n,)`` float64 standard normals from ``g``."""
    return torch.randn(n, generator=g, dtype=torch.float64)


def rand(n: int, g: torch.Generator) -> Tensor:
    """``(n,)`` float64 uniforms on [0, 1) from ``g``."""
    return torch.rand(n, generator=g, dtype=torch.float64)


def moments(mean: tuple[float, float], cov: tuple[float, float, float]) -> Moments:
    """``(mean, cov)`` records from a mean and ``(var_x, cov_xy, var_y)``."""
    vx, cxy, vy = (float(c) for c in cov)
    return (float(mean[0]), float(mean[1])), ((vx, cxy), (cxy, vy))


def gauss_legendre(edges: np.ndarray, order: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights ``(P * order,)`` on panels ``edges``.

    Exact to double precision for the smooth 1D integrands used here (nodes per
    panel far exceed the integrands' oscillation and decay scales).
    """
    t, w = np.polynomial.legendre.leggauss(order)
    a, b = edges[:-1, None], edges[1:, None]
    return ((a + b) / 2 + (b - a) / 2 * t).ravel(), ((b - a) / 2 * w).ravel()


def rejection(
    n: int, g: torch.Generator, propose: Callable[[int], tuple[Tensor, Tensor]]
) -> Tensor:
    """Collect ``n`` accepted rows from ``propose(m) -> (candidates (m, ...), accepted (m,))``."""
    out, got = [], 0
    while got < n:
        cand, ok = propose(max(2 * (n - got), 256))
        out.append(cand[ok])
        got += int(ok.sum())
    return torch.cat(out)[:n]


# --- Gaussian --------------------------------------------------------------------------------


def build_gaussian(mean: tuple[float, ...], cov: tuple[float, ...]) -> Target:
    """N(mean, cov): E = (x - m)ᵀ cov⁻¹ (x - m) / 2; log Z = log 2π + log|cov| / 2."""
    m0, m1 = mean
    a, b, _, d = cov
    corr = b / math.sqrt(a * d)
    if abs(corr) > MAX_CORR:
        raise ValidationError(
            f"cov: correlation {corr:.4f} is too close to ±1 to resolve on the grid "
            f"(need |corr| <= {MAX_CORR})"
        )
    det = a * d - b * b
    p00, p01, p11 = d / det, -b / det, a / det  # precision matrix
    l00 = math.sqrt(a)  # Cholesky factor of cov
    l10 = b / l00
    l11 = math.sqrt(d - l10 * l10)

    def energy(x: Tensor) -> Tensor:
        dx, dy = x[..., 0] - m0, x[..., 1] - m1
        return 0.5 * (p00 * dx * dx + 2.0 * p01 * dx * dy + p11 * dy * dy)

    def grad(x: Tensor) -> Tensor:
        dx, dy = x[..., 0] - m0, x[..., 1] - m1
        return pair(p00 * dx + p01 * dy, p01 * dx + p11 * dy)

    def sampler(n: int, g: torch.Generator) -> Tensor:
        z0, z1 = randn(n, g), randn(n, g)
        return pair(m0 + l00 * z0, m1 + l10 * z0 + l11 * z1)

    sx, sy = math.sqrt(a), math.sqrt(d)
    box = (m0 - TAIL * sx, m0 + TAIL * sx, m1 - TAIL * sy, m1 + TAIL * sy)  # marginal tails
    mu, sigma = moments(mean, (a, b, d))
    return Target("gaussian", energy, box, {"mean": mean, "cov": cov}, grad, sampler,
                  mu, sigma, math.log(TWO_PI) + 0.5 * math.log(det))


# --- Mixture of Gaussians on a ring ------------------------------------------------------------


def build_mixture(k: int, radius: float, std: float) -> Target:
    """Equal-weight mixture of k isotropic Gaussians on a ring; E = -log p exactly (log Z = 0)."""
    ang = [TWO_PI * j / k for j in range(k)]
    centres = [(radius * math.cos(t), radius * math.sin(t)) for t in ang]
    var = std * std
    const = math.log(k) + math.log(TWO_PI * var)

    def logits(x: Tensor) -> tuple[Tensor, Tensor]:
        mu = torch.tensor(centres, dtype=x.dtype, device=x.device)  # (k, 2)
        d2 = (x[..., None, :] - mu).square().sum(-1)  # (N, k)
        return -d2 / (2.0 * var), mu

    def energy(x: Tensor) -> Tensor:
        # Logits laid out (k, N): logsumexp along the long axis is ~10x faster on the CPU
        # than over a short last axis.
        flat = x.reshape(-1, 2)
        mu = torch.tensor(centres, dtype=x.dtype, device=x.device)
        d2 = (flat[:, 0] - mu[:, :1]).square() + (flat[:, 1] - mu[:, 1:]).square()  # (k, N)
        return (const - torch.logsumexp(d2 * (-0.5 / var), dim=0)).reshape(x.shape[:-1])

    def grad(x: Tensor) -> Tensor:
        lg, mu = logits(x)
        return (x - torch.softmax(lg, dim=-1) @ mu) / var

    def sampler(n: int, g: torch.Generator) -> Tensor:
        j = torch.randint(k, (n,), generator=g)
        mu = torch.tensor(centres, dtype=torch.float64)
        return mu[j] + std * torch.randn(n, 2, generator=g, dtype=torch.float64)

    c = np.array(centres)
    mean = c.mean(0)
    mean[np.abs(mean) < 1e-12 * max(radius, 1.0)] = 0.0  # sum of roots of unity, exactly 0
    cc = (c - mean).T @ (c - mean) / k
    cc[np.abs(cc) < 1e-12 * max(radius * radius, 1.0)] = 0.0
    h = radius + TAIL * std  # every component's +-6 sd square lies inside
    mu, sigma = moments(tuple(mean), (cc[0, 0] + var, cc[0, 1], cc[1, 1] + var))
    return Target("mixture", energy, (-h, h, -h, h), {"k": k, "radius": radius, "std": std},
                  grad, sampler, mu, sigma, 0.0)


# --- Banana (twisted Gaussian) ------------------------------------------------------------------


def build_banana(x_std: float, bend: float, y_std: float) -> Target:
    """x ~ N(0, a²), y | x ~ N(b (x² - a²), s²), b = bend s / a²: the curve dips bend·s at x=0."""
    a2, s2 = x_std * x_std, y_std * y_std
    b = bend * y_std / a2

    def energy(x: Tensor) -> Tensor:
        u, v = x[..., 0], x[..., 1]
        r = v - b * (u * u - a2)
        return 0.5 * (u * u / a2 + r * r / s2)

    def grad(x: Tensor) -> Tensor:  # elementwise, no autograd: used for speed benchmarks
        u, v = x[..., 0], x[..., 1]
        r = (v - b * (u * u - a2)) / s2
        return pair(u / a2 - 2.0 * b * u * r, r)

    def sampler(n: int, g: torch.Generator) -> Tensor:
        u = x_std * randn(n, g)
        return pair(u, b * (u * u - a2) + y_std * randn(n, g))

    # |x| <= 6a and |y - b(x² - a²)| <= 6s hold but for 4 Phi(-6) < 4e-9; then y lies between
    # -b a² and b (36 - 1) a² (either order), widened by 6s.
    lo, hi = sorted((-b * a2, 35.0 * b * a2))
    box = (-TAIL * x_std, TAIL * x_std, lo - TAIL * y_std, hi + TAIL * y_std)
    # E[x² - a²] = 0, E[x (x² - a²)] = 0, Var(x²) = 2 a⁴.
    mu, sigma = moments((0.0, 0.0), (a2, 0.0, s2 + 2.0 * b * b * a2 * a2))
    params = {"x_std": x_std, "bend": bend, "y_std": y_std}
    return Target("banana", energy, box, params, grad, sampler, mu, sigma,
                  math.log(TWO_PI * x_std * y_std))


# --- Neal's funnel --------------------------------------------------------------------------


def _funnel_halfwidth(sigma: float, budget: float = 5e-9) -> float:
    """Smallest X with P(|x| > X, |v| < 6σ) <= budget; the |v| cut adds 2 Phi(-6) = 2e-9."""
    v, w = gauss_legendre(np.linspace(-TAIL * sigma, TAIL * sigma, 25))
    v_t = torch.from_numpy(v)
    pw = torch.from_numpy(w * np.exp(-0.5 * (v / sigma) ** 2) / (sigma * SQRT_2PI))

    def tail(x_half: float) -> float:  # E_v[2 Phi(-X e^{-v/2})] over |v| < 6σ
        return float((pw * torch.special.erfc(x_half * torch.exp(-v_t / 2) / math.sqrt(2))).sum())

    lo, hi = 0.0, TAIL * math.exp(TAIL * sigma / 2)  # at hi every slice has tail <= 2 Phi(-6)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tail(mid) > budget else (lo, mid)
    return hi


def build_funnel(sigma: float) -> Target:
    """Neal's funnel: v ~ N(0, σ²) (vertical), x | v ~ N(0, e^v); normalised, log Z = log 2πσ."""
    var = sigma * sigma

    # u² e^{-v} and u e^{-v} in log space, so that u = 0 gives 0 rather than 0 * inf = nan
    # (also under autograd); they overflow to inf only where the exact value exceeds the dtype.
    def scaled(x: Tensor, power: float) -> Tensor:  # |u|^power e^{-v}
        u, v = x[..., 0], x[..., 1]
        zero = u == 0
        log_u = torch.log(torch.where(zero, torch.ones_like(u), u).abs())
        return torch.where(zero, torch.zeros_like(u), torch.exp(power * log_u - v))

    def energy(x: Tensor) -> Tensor:
        v = x[..., 1]
        return 0.5 * (v * v / var + scaled(x, 2.0) + v)

    def grad(x: Tensor) -> Tensor:
        v = x[..., 1]
        gx = torch.sign(x[..., 0]) * scaled(x, 1.0)
        return pair(gx, v / var + 0.5 - 0.5 * scaled(x, 2.0))

    def sampler(n: int, g: torch.Generator) -> Tensor:
        v = sigma * randn(n, g)
        return pair(torch.exp(0.5 * v) * randn(n, g), v)

    half = _funnel_halfwidth(sigma)
    box = (-half, half, -TAIL * sigma, TAIL * sigma)
    mu, cov = moments((0.0, 0.0), (math.exp(var / 2), 0.0, var))  # E[x²] = E[e^v]
    return Target("funnel", energy, box, {"sigma": sigma}, grad, sampler, mu, cov,
                  math.log(TWO_PI * sigma))


# --- Squiggle ---------------------------------------------------------------------------------


def build_squiggle(x_std: float, freq: float, y_std: float) -> Target:
    """x ~ N(0, s_x²), y | x ~ N(sin(ω x), s²); normalised, log Z = log 2π s_x s."""
    ax, s2 = x_std * x_std, y_std * y_std

    def energy(x: Tensor) -> Tensor:
        u, v = x[..., 0], x[..., 1]
        r = v - torch.sin(freq * u)
        return 0.5 * (u * u / ax + r * r / s2)

    def grad(x: Tensor) -> Tensor:
        u, v = x[..., 0], x[..., 1]
        r = (v - torch.sin(freq * u)) / s2
        return pair(u / ax - freq * torch.cos(freq * u) * r, r)

    def sampler(n: int, g: torch.Generator) -> Tensor:
        u = x_std * randn(n, g)
        return pair(u, torch.sin(freq * u) + y_std * randn(n, g))

    # |x| <= 6 s_x and |y - sin ωx| <= 6 s but for 4 Phi(-6); |sin ωx| <= sin(min(6 ω s_x, π/2)).
    amp = math.sin(min(TAIL * freq * x_std, math.pi / 2))
    box = (-TAIL * x_std, TAIL * x_std, -amp - TAIL * y_std, amp + TAIL * y_std)
    q = freq * freq * ax
    cov_xy = freq * ax * math.exp(-q / 2)  # E[x sin ωx] (Stein: s_x² ω E[cos ωx])
    var_y = s2 + 0.5 * (1.0 - math.exp(-2.0 * q))  # s² + E[sin² ωx]
    mu, cov = moments((0.0, 0.0), (ax, cov_xy, var_y))
    params = {"x_std": x_std, "freq": freq, "y_std": y_std}
    return Target("squiggle", energy, box, params, grad, sampler, mu, cov,
                  math.log(TWO_PI * x_std * y_std))


# --- Double well ------------------------------------------------------------------------------


def build_double_well(barrier: float) -> Target:
    """E = h (x² - 1)² + y² / 2: wells at x = ±1 separated by a barrier of height h at x = 0."""
    h = barrier

    def energy(x: Tensor) -> Tensor:
        u, v = x[..., 0], x[..., 1]
        q = u * u - 1.0
        return h * q * q + 0.5 * v * v

    def grad(x: Tensor) -> Tensor:
        u, v = x[..., 0], x[..., 1]
        return pair(4.0 * h * u * (u * u - 1.0), v)

    def sampler(n: int, g: torch.Generator) -> Tensor:
        # For u >= 0, (u + 1)² >= 1 so e^{-h (u² - 1)²} <= e^{-h (u - 1)²}: propose |x| from
        # N(1, 1 / 2h), accept with the ratio e^{-h (u - 1)² ((u + 1)² - 1)}; then a random sign.
        def propose(m: int) -> tuple[Tensor, Tensor]:
            u = 1.0 + randn(m, g) / math.sqrt(2.0 * h)
            log_ratio = -h * (u - 1.0) ** 2 * ((u + 1.0) ** 2 - 1.0)
            ok = (u >= 0) & (rand(m, g) < torch.exp(log_ratio))
            return u, ok

        u = rejection(n, g, propose)
        sign = torch.where(rand(n, g) < 0.5, -1.0, 1.0).to(torch.float64)
        return pair(sign * u, randn(n, g))

    # For x >= 1, (x + 1)² >= 4: the tail beyond X is <= ∫_X^∞ e^{-4h (x-1)²} = √(π/h) erfc(2√h
    # (X - 1)) / 4 per side.  Z_x and E[x²] by Gauss-Legendre (exact to ~1e-14).
    xs, w = gauss_legendre(np.linspace(0.0, 1.0 + 12.0 / math.sqrt(h), 33))
    px = w * np.exp(-h * (xs * xs - 1.0) ** 2)
    z_x = 2.0 * px.sum()
    var_x = 2.0 * (px * xs * xs).sum() / z_x

    def tail(x_half: float) -> float:
        return 2.0 * math.sqrt(math.pi / h) * math.erfc(2.0 * math.sqrt(h) * (x_half - 1.0)) / 4

    lo, hi = 1.0, 1.0 + 12.0 / math.sqrt(h)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tail(mid) > 3e-9 * z_x else (lo, mid)
    box = (-hi, hi, -TAIL, TAIL)  # plus 2 Phi(-6) = 2e-9 in y
    mu, cov = moments((0.0, 0.0), (var_x, 0.0, 1.0))
    return Target("double_well", energy, box, {"barrier": barrier}, grad, sampler, mu, cov,
                  math.log(z_x) + 0.5 * math.log(TWO_PI))
