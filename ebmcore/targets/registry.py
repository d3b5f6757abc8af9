"""The registry of 2D targets: ``TARGETS`` (in menu order) and ``make_target``.

Each entry names its parameters (defaults, bounds, one-line docs) and builds a
:class:`~ebmcore.energies.Target` whose box holds all but < 1e-8 of the mass
(the bound is derived beside each box) and is also the quadrature domain.
All targets carry exact moments and ``log_z``: in closed form, or from 1D
Gauss-Legendre integrals exact to ~1e-12 (double_well, u1, and the y-moments
of u3/u4).  All carry exact samplers (CPU generator, float64).

Example:
    >>> import torch
    >>> t = make_target("mixture", k=4)
    >>> t(torch.zeros(3, 2)).shape
    torch.Size([3])
"""

from __future__ import annotations

from ebmcore.energies import Param, Target, TargetSpec, ValidationError, quote
from ebmcore.targets.potentials import (
    build_banana,
    build_double_well,
    build_funnel,
    build_gaussian,
    build_mixture,
    build_squiggle,
)
from ebmcore.targets.rezende import build_u1, build_u2, build_u3, build_u4
from ebmcore.targets.rings import build_donut, build_rings

__all__ = ["TARGETS", "make_target"]

_WALL = Param(0.25, "width of the soft wall that confines |x| > 4", low=0.05, high=2.0)

_SPECS = [
    TargetSpec(
        "gaussian", "correlated Gaussian N(mean, cov)",
        {
            "mean": Param((0.0, 0.0), "mean (x, y)", low=-10.0, high=10.0),
            "cov": Param((2.0, 1.0, 1.0, 2.0), "covariance, row-major 2x2", low=-50.0,
                         high=50.0, positive_definite=True),
        },
        build_gaussian, has_sampler=True, has_grad=True,
    ),
    TargetSpec(
        "mixture", "k equal Gaussians evenly spaced on a ring",
        {
            "k": Param(8, "number of components", low=1, high=64, integer=True),
            "radius": Param(2.0, "radius of the ring of centres", low=0.0, high=8.0),
            "std": Param(0.25, "standard deviation of each component", low=0.05, high=5.0),
        },
        build_mixture, has_sampler=True, has_grad=True,
    ),
    TargetSpec(
        "banana", "twisted Gaussian: y bends with x²",
        {
            "x_std": Param(1.0, "standard deviation of x", low=0.2, high=5.0),
            "bend": Param(2.0, "depth of the bend at x = 0, in units of y_std", low=-8.0,
                          high=8.0),
            "y_std": Param(0.5, "standard deviation of y around the curve", low=0.05, high=5.0),
        },
        build_banana, has_sampler=True, has_grad=True,
    ),
    TargetSpec(
        "donut", "a ring: E = (|x| - r)² / 2w²",
        {
            "radius": Param(2.0, "ring radius", low=0.0, high=8.0),
            "width": Param(0.3, "ring width (radial standard deviation)", low=0.1, high=3.0),
        },
        build_donut, has_sampler=True, has_grad=True,
    ),
    TargetSpec(
        "funnel", "Neal's funnel: v ~ N(0, σ²) vertical, x | v ~ N(0, e^v)",
        {
            # σ <= 1 keeps the neck resolved by 256 cells on a box holding 1 - 1e-8 of the
            # mass: the midpoint rule's log Z is then off by < 4e-6 (8e-4 at σ = 1.2).
            "sigma": Param(0.9, "standard deviation of v (the neck axis)", low=0.1, high=1.0),
        },
        build_funnel, has_sampler=True, has_grad=True,
    ),
    TargetSpec(
        "squiggle", "y = sin(ω x) plus noise, x Gaussian",
        {
            "x_std": Param(1.0, "standard deviation of x", low=0.2, high=4.0),
            "freq": Param(2.5, "angular frequency ω of the sine", low=0.0, high=6.0),
            "y_std": Param(0.2, "standard deviation of y around the sine", low=0.05, high=3.0),
        },
        build_squiggle, has_sampler=True, has_grad=True,
    ),
    TargetSpec(
        "double_well", "E = h (x² - 1)² + y² / 2: two wells at x = ±1",
        {"barrier": Param(3.0, "barrier height h at x = 0 (in kT)", low=0.25, high=25.0)},
        build_double_well, has_sampler=True, has_grad=True,
    ),
    TargetSpec(
        "rings", "concentric rings of radii spacing·(1, ..., n)",
        {
            "n_rings": Param(3, "number of rings", low=1, high=6, integer=True),
            "spacing": Param(1.0, "radius of the first ring and gap between rings", low=0.5,
                             high=2.0),
            "width": Param(0.15, "ring width (radial standard deviation)", low=0.1, high=1.0),
        },
        build_rings, has_sampler=True, has_grad=True,
    ),
    TargetSpec("u1", "Rezende & Mohamed U1: ring with two lobes", {}, build_u1,
               has_sampler=True, has_grad=True),
    TargetSpec("u2", "Rezende & Mohamed U2: sine band", {"wall": _WALL}, build_u2,
               has_sampler=True, has_grad=True),
    TargetSpec("u3", "Rezende & Mohamed U3: sine split by a bump", {"wall": _WALL}, build_u3,
               has_sampler=True, has_grad=True),
    TargetSpec("u4", "Rezende & Mohamed U4: sine split by a step", {"wall": _WALL}, build_u4,
               has_sampler=True, has_grad=True),
]

TARGETS: dict[str, TargetSpec] = {s.name: s for s in _SPECS}
"""Registry name -> spec, in menu order."""


def make_target(name: str, **params: object) -> Target:
    """Build target ``name`` with its defaults overridden by ``params``.

    Raises:
        ValidationError: unknown target or parameter, or an invalid value.
    """
    spec = TARGETS.get(name)
    if spec is None:
        raise ValidationError(f"unknown target {quote(name)}; known targets: {', '.join(TARGETS)}")
    return spec.make(**params)
