"""2D training data: toy point clouds, and exact samples from registry targets.

Toy sets (``DATASETS``) have no closed-form density; they are drawn in torch
with an explicit ``torch.Generator`` and scaled to roughly ``[-4, 4]^2``.  Any
target of ``ebmcore.targets.registry`` with an exact sampler is also a dataset, and
then carries its ``Target`` so that a trained model can be compared with the
true density.

Train and test sets come from two independent generators derived from the
seed, so they are disjoint draws and the test set does not depend on
``n_train``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor

from ebmcore.box import Box
from ebmcore.energies import Param, Target, ValidationError, quote

__all__ = ["DATASETS", "MAX_POINTS", "Dataset", "DatasetSpec", "dataset_names", "make_dataset"]

MAX_POINTS = 1_000_000  # largest train or test set we generate
PAD = 0.1  # a dataset's view box is its bounding box grown by this fraction per side


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry for a toy point cloud."""

    name: str  # registry key
    doc: str  # one-line description for menus
    box: Box  # default view box, before any data are drawn
    draw: Callable[..., Tensor]  # (n, generator, **params) -> (n, 2) float64
    params: Mapping[str, Param]  # parameter name -> spec (just "noise" for now)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test points in 2D, with what is known about where they came from."""

    name: str  # toy set or target name
    train: Tensor  # (n, 2) float32 training points
    test: Tensor  # (m, 2) float32 held-out points, drawn independently of train
    box: Box  # view box: padded bounding box of the data, or the target's box
    target: Target | None = None  # the exact density when the data are target samples
    params: Mapping[str, object] = field(default_factory=dict)  # values they were made with


def _uniform(n: int, g: torch.Generator) -> Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


def _normal(n: int, g: torch.Generator, d: int = 2) -> Tensor:
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def _jitter(x: Tensor, g: torch.Generator, noise: float) -> Tensor:
    return x + noise * _normal(x.shape[0], g) if noise > 0 else x


def _moons(n: int, g: torch.Generator, noise: float) -> Tensor:
    t = math.pi * _uniform(n, g)
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(t), 1.0 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = 2.4 * (torch.stack([x, y], 1) - torch.tensor([0.5, 0.25], dtype=torch.float64))
    return _jitter(pts, g, noise)  # noiseless: x in [-3.6, 3.6], y in [-1.8, 1.8]


def _circles(n: int, g: torch.Generator, noise: float) -> Tensor:
    t = 2 * math.pi * _uniform(n, g)
    r = torch.where(torch.rand(n, generator=g) < 0.5, 3.5, 1.75).to(torch.float64)
    return _jitter(r[:, None] * torch.stack([torch.cos(t), torch.sin(t)], 1), g, noise)


def _spirals(n: int, g: torch.Generator, noise: float) -> Tensor:
    theta = 3 * math.pi * _uniform(n, g).sqrt()  # sqrt: even density along the arm
    r = 3.5 * theta / (3 * math.pi)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0).to(torch.float64)
    pts = (sign * r)[:, None] * torch.stack([-torch.cos(theta), torch.sin(theta)], 1)
    return _jitter(pts, g, noise)


def _pinwheel(n: int, g: torch.Generator, noise: float) -> Tensor:
    arms, rate = 5, 0.25  # five arms that bend more the further out they go
    arm = torch.randint(arms, (n,), generator=g)
    f = _normal(n, g) * torch.tensor([0.3, 0.1], dtype=torch.float64)
    f[:, 0] += 1.0
    angle = 2 * math.pi * arm / arms + rate * torch.exp(f[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    pts = 2.0 * torch.stack([c * f[:, 0] - s * f[:, 1], s * f[:, 0] + c * f[:, 1]], 1)
    return _jitter(pts, g, noise)


def _swissroll(n: int, g: torch.Generator, noise: float) -> Tensor:
    t = 1.5 * math.pi * (1 + 2 * _uniform(n, g))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 3.6  # radius <= 3.93
    return _jitter(pts, g, noise)


def _checkerboard(n: int, g: torch.Generator, noise: float) -> Tensor:
    i = torch.randint(4, (n,), generator=g)  # 4 x 4 cells of side 2 on [-4, 4]^2,
    j = 2 * torch.randint(2, (n,), generator=g) + i % 2  # keep those with i + j even
    corner = -4.0 + 2.0 * torch.stack([i, j], 1).to(torch.float64)
    return _jitter(corner + 2.0 * torch.rand(n, 2, generator=g, dtype=torch.float64), g, noise)


def _eight_gaussians(n: int, g: torch.Generator, noise: float) -> Tensor:
    angle = (math.pi / 4) * torch.randint(8, (n,), generator=g).to(torch.float64)
    centres = 2.8 * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return centres + noise * _normal(n, g)


_SQUARE: Box = (-4.5, 4.5, -4.5, 4.5)
_JITTER = "std of Gaussian noise added to each point"


def _spec(
    name: str,
    doc: str,
    draw: Callable[..., Tensor],
    noise: float,
    box: Box = _SQUARE,
    noise_doc: str = _JITTER,
) -> DatasetSpec:
    return DatasetSpec(name, doc, box, draw, {"noise": Param(noise, noise_doc, 0.0, 1.0)})


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _spec("moons", "two interleaved half circles", _moons, 0.15, (-4.5, 4.5, -2.5, 2.5)),
        _spec("circles", "two concentric rings, radii 3.5 and 1.75", _circles, 0.1),
        _spec("2spirals", "two interleaved spiral arms", _spirals, 0.15),
        _spec("pinwheel", "five curved, elongated arms", _pinwheel, 0.0),
        _spec("swissroll", "a 2D slice of the Swiss roll", _swissroll, 0.15),
        _spec("checkerboard", "uniform on the 8 dark squares of a 4x4 board", _checkerboard, 0.0),
        _spec("8gaussians", "eight Gaussians on a circle of radius 2.8", _eight_gaussians, 0.3,
              noise_doc="std of each Gaussian component"),
    )
}  # fmt: skip


def _sampled_targets() -> list[str]:
    from ebmcore.targets.registry import TARGETS  # imported late: targets is a sibling registry

    return [k for k, spec in TARGETS.items() if spec.has_sampler and k not in DATASETS]


def dataset_names() -> list[str]:
    """Toy sets, then registry targets that have an exact sampler (for menus)."""
    return [*DATASETS, *_sampled_targets()]


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValidationError(f"{name} must be a whole number, got {quote(value)}")
    if not 1 <= value <= MAX_POINTS:
        raise ValidationError(f"{name} must be between 1 and {MAX_POINTS:,}, got {value}")
    return int(value)


def _generators(seed: object) -> tuple[torch.Generator, torch.Generator]:
    """Two independent generators (train, test) derived from one seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(f"seed must be a whole number >= 0, got {quote(seed)}")
    children = np.random.SeedSequence(int(seed)).spawn(2)
    seeds = [int(c.generate_state(1, np.uint64)[0]) >> 1 for c in children]  # 63-bit
    return torch.Generator().manual_seed(seeds[0]), torch.Generator().manual_seed(seeds[1])


def _data_box(points: Tensor) -> Box:
    lo, hi = points.min(0).values.tolist(), points.max(0).values.tolist()
    box = []
    for a, b in zip(lo, hi, strict=True):
        if b - a < 1e-6:  # a single point (or a line): give it some room
            a, b = a - 1.0, b + 1.0
        box += [a, b]
    return Box(*box).pad(PAD)


def _toy_params(spec: DatasetSpec, params: Mapping[str, object]) -> dict[str, object]:
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        known = ", ".join(spec.params) or "none"
        raise ValidationError(
            f"dataset {spec.name!r} has no parameter {quote(unknown[0])} (known: {known})"
        )
    return {k: p.validate(k, params.get(k, p.default)) for k, p in spec.params.items()}


def make_dataset(
    name: str,
    n_train: int = 2000,
    n_test: int = 1000,
    seed: int = 0,
    params: Mapping[str, object] | None = None,
) -> Dataset:
    """Draw a train and a test set.

    Args:
        name: a toy set of ``DATASETS``, or a target of ``ebmcore.targets.registry``
            that has an exact sampler.
        n_train: number of training points, 1 to ``MAX_POINTS``.
        n_test: number of test points, 1 to ``MAX_POINTS``.
        seed: same seed, same data.
        params: toy-set parameters (``noise``) or target parameters; unset
            ones take their defaults.

    Returns:
        A ``Dataset`` with ``train (n_train, 2)`` and ``test (n_test, 2)`` in float32.

    Raises:
        ValidationError: unknown name, a target without sampler, bad sizes or parameters.
    """
    if not isinstance(name, str):
        raise ValidationError(f"dataset name must be a string, got {quote(name)}")
    if params is not None and not isinstance(params, Mapping):
        raise ValidationError(f"params must be a mapping of name -> value, got {quote(params)}")
    n_train, n_test = _count("n_train", n_train), _count("n_test", n_test)
    g_train, g_test = _generators(seed)
    params = dict(params or {})
    if name in DATASETS:
        spec = DATASETS[name]
        values = _toy_params(spec, params)
        train = spec.draw(n_train, g_train, **values).float()
        test = spec.draw(n_test, g_test, **values).float()
        box = _data_box(torch.cat([train, test]).double())
        return Dataset(name, train, test, box, None, MappingProxyType(values))

    from ebmcore.targets.registry import TARGETS, make_target

    if name not in TARGETS or not TARGETS[name].has_sampler:
        known = ", ".join(dataset_names())
        why = "has no exact sampler" if name in TARGETS else "is not a known dataset"
        raise ValidationError(f"{quote(name)} {why}; choose one of: {known}")
    target = make_target(name, **params)
    train = target.sample(n_train, g_train).float()
    test = target.sample(n_test, g_test).float()
    values = MappingProxyType(dict(target.params))
    return Dataset(name, train, test, tuple(float(v) for v in target.box), target, values)
