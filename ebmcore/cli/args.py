"""Argument types and parsers shared by the subcommands: numbers, vectors, ``KEY=VALUE``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from ebmcore.energies import ValidationError

__all__ = ["finite_float", "key_values", "numbers"]


def finite_float(text: str) -> float:
    """argparse type: a finite float (``nan``/``inf`` are usage errors)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def numbers(count: int):
    """argparse type: exactly ``count`` comma-separated finite numbers, as a tuple."""

    def parse(text: str) -> tuple[float, ...]:
        parts = [p for p in text.split(",") if p.strip()]
        if len(parts) != count:
            raise argparse.ArgumentTypeError(
                f"expected {count} comma-separated numbers, got {text!r}")
        return tuple(finite_float(p) for p in parts)

    return parse


def key_values(items: Sequence[str], flag: str = "--param") -> dict[str, str]:
    """``["a=1", "b = x"]`` -> ``{"a": "1", "b": "x"}``; keys and values stripped.

    Raises:
        ValidationError: an item without ``=`` or a key, or a key given twice.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"{flag} expects KEY=VALUE, got {item!r}")
        if key in out:
            raise ValidationError(f"{flag} {key} given twice")
        out[key] = value.strip()
    return out
