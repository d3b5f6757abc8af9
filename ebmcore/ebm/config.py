"""What every training config shares: the loop's own settings and the range checks.

Each check raises ValidationError with one sentence naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ebmcore.energies import ValidationError

MAX_LR = 10.0  # learning rates above this only blow the weights up

__all__ = ["MAX_LR", "LoopConfig", "check_choice", "check_ints", "check_loop", "check_positive",
           "check_ranges"]


@dataclass(frozen=True)
class LoopConfig:
    """Settings of :class:`ebmcore.ebm.loop.TrainingLoop` whatever the method."""

    lr_final: float = 0.1  # learning rates at the last iteration, as a fraction of the first
    l2: float = 0.0  # weight of the L2 penalty on energies (0 = off)
    grad_clip: float = 0.0  # max global norm of each trained gradient (0 = no clipping)
    eval_grid: int = 128  # grid side for the exact metrics (multiple of 32)
    eval_every: int = 50  # iterations between exact metrics (0 = only at the end)
    box_pad: float = 0.0  # model box = the data's view box grown by this fraction per side
    seed: int = 0  # seeds the weights and the one generator used for everything

    def missing(self, defaults: Mapping[str, object]) -> dict[str, object]:
        """The entries of ``defaults`` whose field is ``None`` here."""
        return {k: v for k, v in defaults.items() if getattr(self, k) is None}


def check_choice(what: str, value: object, choices: Sequence[str]) -> None:
    """``value`` is one of ``choices``."""
    if value not in choices:
        raise ValidationError(f"unknown {what} {value!r}; choose {', '.join(choices)}")


def check_positive(config: object, names: Iterable[str]) -> None:
    """Each named field is a finite number > 0."""
    for name in names:
        v = getattr(config, name)
        if not (math.isfinite(v) and v > 0):
            raise ValidationError(f"{name} must be a finite number > 0, got {v}")


def check_ints(config: object, specs: Iterable[tuple[str, int, int]]) -> None:
    """Each ``(name, low, high)`` field is a whole number in ``[low, high]``."""
    for name, low, high in specs:
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ValidationError(f"{name} must be a whole number in [{low}, {high}], got {v}")


def check_ranges(config: object, specs: Iterable[tuple[str, object, object, bool]]) -> None:
    """Each ``(name, low, high, ok)`` must be ``ok``; ``low``/``high`` as shown in the message.

    A number bound is inclusive (``[0``, ``1]``); a string bound is shown as it is
    (``"(0"``, ``"inf)"``) for an open one.
    """
    for name, low, high, ok in specs:
        if not ok:
            lo = low if isinstance(low, str) else f"[{low}"
            hi = high if isinstance(high, str) else f"{high}]"
            raise ValidationError(f"{name} must be in {lo}, {hi}, got {getattr(config, name)}")


def check_loop(c: object) -> None:
    """The settings of :class:`ebmcore.ebm.loop.TrainingLoop` that every config has."""
    # Adam moves each weight by about lr per step: beyond MAX_LR the weights overflow float32
    check_ranges(c, (("lr", "(0", MAX_LR, 0 < c.lr <= MAX_LR),
                     ("lr_final", 0, 1, 0 <= c.lr_final <= 1),
                     ("ema", 0, "1)", 0 <= c.ema < 1), ("box_pad", 0, 1, 0 <= c.box_pad <= 1),
                     ("init_gain", "(0", 100, 0 < c.init_gain <= 100),
                     ("l2", 0, "1e6]", 0 <= c.l2 <= 1e6),
                     ("grad_clip", 0, "inf)", c.grad_clip >= 0),
                     ("diverge_nats", "(0", "inf)", c.diverge_nats > 0)))
    if len(c.betas) != 2 or not all(0 <= b < 1 for b in c.betas):
        raise ValidationError(f"Adam betas must be two numbers in [0, 1), got {c.betas}")
