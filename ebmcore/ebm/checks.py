"""Range checks shared by the training configs, each raising ValidationError with one sentence."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ebmcore.energies import ValidationError

__all__ = ["check_ints", "check_loop", "check_positive", "check_ranges"]


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
    check_ranges(c, (("lr_final", 0, 1, 0 <= c.lr_final <= 1),
                     ("ema", 0, "1)", 0 <= c.ema < 1), ("box_pad", 0, 1, 0 <= c.box_pad <= 1),
                     ("init_gain", "(0", 100, 0 < c.init_gain <= 100),
                     ("l2", 0, "inf)", c.l2 >= 0), ("grad_clip", 0, "inf)", c.grad_clip >= 0),
                     ("diverge_nats", "(0", "inf)", c.diverge_nats > 0)))
    if len(c.betas) != 2 or not all(0 <= b < 1 for b in c.betas):
        raise ValidationError(f"Adam betas must be two numbers in [0, 1), got {c.betas}")
