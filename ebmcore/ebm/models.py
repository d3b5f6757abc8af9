"""Neural energies: a small MLP mapping 2D points to a scalar energy.

The network optionally sees inputs normalised by a fixed centre and scale
(taken from the data's view box), so that its first layer works with O(1)
numbers whatever the units of the data.  Centre and scale are buffers: they
travel with ``state_dict`` but are never trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebmcore.energies import Box, ValidationError

__all__ = ["ACTIVATIONS", "MAX_DEPTH", "MAX_WIDTH", "MLPEnergy", "ModelConfig"]

MAX_WIDTH = 1024  # widest hidden layer we allow
MAX_DEPTH = 8  # most hidden layers we allow

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,  # smooth, the default: Langevin needs a well-behaved grad E
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,  # continuous first derivative only
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an ``MLPEnergy``; validated on construction."""

    width: int = 128  # units per hidden layer, 1..MAX_WIDTH
    depth: int = 2  # number of hidden layers, 1..MAX_DEPTH
    activation: str = "silu"  # a key of ACTIVATIONS

    def __post_init__(self) -> None:
        for name, value, high in (
            ("width", self.width, MAX_WIDTH),
            ("depth", self.depth, MAX_DEPTH),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{name} must be a whole number, got {value!r}")
            if not 1 <= value <= high:
                raise ValidationError(f"{name} must be between 1 and {high}, got {value}")
        if self.activation not in ACTIVATIONS:
            known = ", ".join(ACTIVATIONS)
            raise ValidationError(f"unknown activation {self.activation!r} (known: {known})")

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of the network: ``3w + (depth - 1)(w + 1)w + w + 1``."""
        w = self.width
        return 3 * w + (self.depth - 1) * (w + 1) * w + w + 1


def _centre_scale(box: Box | None) -> tuple[list[float], list[float]]:
    if box is None:
        return [0.0, 0.0], [1.0, 1.0]
    try:
        x0, x1, y0, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValidationError(
            f"box must be 4 numbers (xmin, xmax, ymin, ymax), got {box!r}"
        ) from None
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or x0 >= x1 or y0 >= y1:
        raise ValidationError(f"invalid box {box}: need finite xmin < xmax and ymin < ymax")
    return [(x0 + x1) / 2, (y0 + y1) / 2], [(x1 - x0) / 2, (y1 - y0) / 2]


class MLPEnergy(nn.Module):
    """An MLP energy ``E(x)``: ``(N, 2) -> (N,)``.

    Layers: ``2 -> width -> ... -> width -> 1`` with ``depth`` hidden layers,
    each followed by the activation.  With a ``box``, inputs are first mapped
    by ``(x - centre) / scale`` so that the box becomes ``[-1, 1]^2``.

    Parameters are initialised by PyTorch's defaults from the global RNG;
    seed with ``torch.manual_seed`` for reproducible initial weights.

    Args:
        config: architecture; the default is ``ModelConfig()``.
        box: ``(xmin, xmax, ymin, ymax)`` used for input normalisation, or
            ``None`` for none.
    """

    centre: Tensor  # (2,) buffer
    scale: Tensor  # (2,) buffer

    def __init__(self, config: ModelConfig | None = None, box: Box | None = None) -> None:
        super().__init__()
        config = ModelConfig() if config is None else config
        if not isinstance(config, ModelConfig):
            raise ValidationError(f"config must be a ModelConfig, got {type(config).__name__}")
        centre, scale = _centre_scale(box)
        self.config = config
        self.box = None if box is None else tuple(float(v) for v in box)
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        act = ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        fan_in = 2
        for _ in range(config.depth):
            layers += [nn.Linear(fan_in, config.width), act()]
            fan_in = config.width
        layers.append(nn.Linear(fan_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Energies of points ``x (N, 2)``: ``(N,)``.

        The network runs in its own dtype (``float32``, or ``float64`` after
        ``.double()``); the result comes back in the dtype of ``x``, and
        gradients w.r.t. ``x`` flow through the cast.
        """
        if x.dim() != 2 or x.shape[1] != 2:
            raise ValidationError(f"expected points of shape (N, 2), got {tuple(x.shape)}")
        h = (x.to(self.centre.dtype) - self.centre) / self.scale
        return self.net(h).squeeze(-1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"config={self.config}, box={self.box}"
