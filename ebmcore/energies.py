"""The energy protocol and the record every 2D target is built into.

An energy is any callable mapping an ``(N, 2)`` tensor to ``(N,)`` energies,
with ``log p(x) = -E(x) - log Z``.  Plain functions and ``nn.Module`` s both
qualify; gradients come from autograd unless a target offers a closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from ebmcore.box import Box

__all__ = [
    "Box",
    "Energy",
    "Param",
    "Target",
    "TargetSpec",
    "ValidationError",
    "energy_and_grad",
    "quote",
]

QUOTE_LIMIT = 60  # characters of user text a message repeats


class Energy(Protocol):
    """Maps positions ``(N, 2)`` to energies ``(N,)``."""

    def __call__(self, x: Tensor) -> Tensor: ...


class ValidationError(ValueError):
    """Bad user input, with a message meant to be shown as it is."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters.

    Messages quote what the user typed; a value of 100 kB must not make a message of
    100 kB (pages re-render every message they show), so a long one is cut and its
    length said instead.
    """
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    head = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return f"{head}... ({len(text):,} characters)"


def energy_and_grad(
    energy: Energy, x: Tensor, grad: Callable[[Tensor], Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """Energies ``(N,)`` and their gradients ``(N, 2)`` at ``x``, detached.

    Uses the closed-form ``grad`` when given, autograd otherwise.  Works with
    energies that have parameters (the gradient is taken w.r.t. ``x`` only).
    """
    if grad is not None:
        with torch.no_grad():
            return energy(x), grad(x)
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        e = energy(xr)
        (g,) = torch.autograd.grad(e.sum(), xr)
    return e.detach(), g.detach()


@dataclass(frozen=True)
class Param:
    """One named, validated parameter of a target."""

    default: float | int | tuple[float, ...]  # scalar, or a flat tuple (vector, 2x2 matrix)
    doc: str  # one line shown in the UI and in ``targets``
    low: float | None = None  # smallest allowed value (inclusive), per element
    high: float | None = None  # largest allowed value (inclusive), per element
    integer: bool = False  # scalar must be a whole number
    positive_definite: bool = False  # a 2x2 matrix given as 4 numbers, row-major

    @property
    def size(self) -> int:
        """Number of scalars: 1, or the length of the default tuple."""
        return len(self.default) if isinstance(self.default, tuple) else 1

    def validate(self, name: str, value: object) -> float | int | tuple[float, ...]:
        """Coerce ``value`` (a number, a sequence or a ``"a,b"`` string) or raise."""
        if isinstance(value, str):
            try:
                parts = [float(p) for p in value.replace(";", ",").split(",") if p.strip()]
            except ValueError:
                raise ValidationError(f"{name}: {quote(value)} is not a number list") from None
        elif isinstance(value, (list, tuple)):
            parts = [float(v) for v in value]
        elif isinstance(value, Tensor):
            parts = [float(v) for v in value.flatten().tolist()]
        else:
            try:
                parts = [float(value)]  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValidationError(f"{name}: {quote(value)} is not a number") from None
        if len(parts) != self.size:
            raise ValidationError(f"{name}: expected {self.size} number(s), got {len(parts)}")
        for p in parts:
            if not math.isfinite(p):
                raise ValidationError(f"{name}: {p} is not finite")
            if self.low is not None and p < self.low:
                raise ValidationError(f"{name}: {p:g} is below the minimum {self.low:g}")
            if self.high is not None and p > self.high:
                raise ValidationError(f"{name}: {p:g} is above the maximum {self.high:g}")
        if self.positive_definite:
            a, b, c, d = parts
            if abs(b - c) > 1e-9 * max(1.0, abs(b), abs(c)):
                raise ValidationError(f"{name}: matrix must be symmetric, got {b:g} vs {c:g}")
            if a <= 0 or a * d - b * c <= 0:
                raise ValidationError(f"{name}: matrix must be positive definite")
        if self.size == 1:
            if self.integer:
                if parts[0] != int(parts[0]):
                    raise ValidationError(f"{name}: {parts[0]:g} is not a whole number")
                return int(parts[0])
            return parts[0]
        return tuple(parts)


@dataclass(frozen=True, eq=False)
class Target:
    """A built 2D target: an energy plus what is known about it exactly.

    Calling a target evaluates its energy.  All callables follow the dtype and
    device of their input.
    """

    name: str  # registry name, or "formula" / "model"
    energy: Energy  # (N, 2) -> (N,)
    box: Box  # view box, also the quadrature domain
    params: Mapping[str, object] = field(default_factory=dict)  # values it was built with
    grad: Callable[[Tensor], Tensor] | None = None  # closed-form grad E: (N, 2) -> (N, 2)
    sampler: Callable[[int, torch.Generator], Tensor] | None = None  # exact: n -> (n, 2) float64
    mean: tuple[float, float] | None = None  # exact mean, where closed-form
    cov: tuple[tuple[float, float], tuple[float, float]] | None = None  # exact covariance
    log_z: float | None = None  # closed-form log Z over R^2, where known

    def __call__(self, x: Tensor) -> Tensor:
        return self.energy(x)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Energies ``(N,)`` and gradients ``(N, 2)``, closed form when available."""
        return energy_and_grad(self.energy, x, self.grad)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` exact samples ``(n, 2)`` in float64; raises if there is no exact sampler."""
        if self.sampler is None:
            raise ValidationError(f"target {self.name!r} has no exact sampler")
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        return self.sampler(n, generator)


@dataclass(frozen=True)
class TargetSpec:
    """A registry entry: how to build a target from named parameters."""

    name: str  # registry key
    doc: str  # one-line description for menus
    params: Mapping[str, Param]  # parameter name -> spec, in display order
    build: Callable[..., Target]  # keyword parameters -> Target
    has_sampler: bool = False  # build() returns a target with an exact sampler
    has_grad: bool = False  # build() returns a target with a closed-form gradient

    @property
    def defaults(self) -> dict[str, object]:
        return {k: p.default for k, p in self.params.items()}

    def make(self, **overrides: object) -> Target:
        """Build with defaults overridden; unknown or invalid values raise ValidationError."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise ValidationError(
                f"target {self.name!r} has no parameter {quote(unknown[0])} (known: {known})"
            )
        values = {k: p.validate(k, overrides.get(k, p.default)) for k, p in self.params.items()}
        return self.build(**values)
