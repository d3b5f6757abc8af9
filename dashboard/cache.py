"""Process-wide caches of immutable ebmcore objects: built targets and exact densities.

A target is identified by a hashable key: ``("gaussian", (("cov", (2.0, 1.0, 1.0,
2.0)), ("mean", (0.0, 0.0))))`` for a registry target with validated
parameters, ``("formula", expr, box)`` for a typed formula.  Targets and
densities never change once built, so every session may share them.
Exceptions are not cached: a bad key raises again next time.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from ebmcore.ebm.data import Dataset, make_dataset
from ebmcore.energies import Box, Target, ValidationError
from ebmcore.exact.density import GridDensity, quadrature
from ebmcore.exact.summary import GRID
from ebmcore.exact.view import Modes, modes, view_box

__all__ = ["TargetKey", "dataset", "density", "modes_of", "target", "target_key", "view",
           "view_density"]

TargetKey = tuple  # ("name", ((param, value), ...)) or ("formula", expr, box)


def target_key(name: str, params: dict[str, object]) -> TargetKey:
    """Validate a registry target's parameters and return its cache key."""
    from ebmcore.targets.registry import TARGETS

    spec = TARGETS.get(name)
    if spec is None:
        raise ValidationError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}")
    values = tuple((k, p.validate(k, params.get(k, p.default))) for k, p in spec.params.items())
    return (name, values)


@lru_cache(maxsize=32)
def target(key: TargetKey) -> Target:
    """The target for ``key`` (built once per process)."""
    if key[0] == "formula":
        from ebmcore.targets.formula import formula_target

        _, expr, box = key
        return formula_target(expr, box)
    from ebmcore.targets.registry import make_target

    name, values = key
    return make_target(name, **dict(values))


@lru_cache(maxsize=32)
def density(key: TargetKey) -> GridDensity:
    """The exact density of ``target(key)`` on its box (``GRID`` cells per side)."""
    t = target(key)
    return quadrature(t.energy, t.box, GRID)


@lru_cache(maxsize=32)
def view(key: TargetKey) -> Box:
    """The box that frames the density (the smallest holding 99.5% of its mass)."""
    return view_box(density(key))


@lru_cache(maxsize=32)
def view_density(key: TargetKey) -> GridDensity:
    """The density as figures draw it: tabulated on the view box at the full resolution,
    and normalised by the full box's Z (so its values are those of :func:`density`)."""
    t, gd = target(key), density(key)
    v = quadrature(t.energy, view(key), GRID)
    return replace(v, log_prob=v.log_prob + (v.log_z - gd.log_z), log_z=gd.log_z,
                   log_z_err=gd.log_z_err)


@lru_cache(maxsize=32)
def modes_of(key: TargetKey) -> Modes:
    """The basins of the density (to tell chains stuck in separate modes)."""
    return modes(density(key))


@lru_cache(maxsize=16)
def dataset(name: str, seed: int = 0) -> Dataset:
    """Train / test points of data set ``name`` (2000 / 1000 points, seeded)."""
    return make_dataset(name, n_train=2000, n_test=1000, seed=seed)
