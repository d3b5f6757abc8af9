"""Argument types and parsers shared by the subcommands: numbers, vectors, ``KEY=VALUE``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from ebmcore.budget import DEFAULT_BUDGET, GIB, Budget
from ebmcore.energies import ValidationError

__all__ = ["BUDGET_FLAG", "add_budget", "budget_of", "finite_float", "key_values", "numbers"]

BUDGET_FLAG = "--budget"  # named in every refusal, so the user knows how to raise the limit


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


def _positive(text: str) -> float:
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
    return v


def add_budget(p: argparse.ArgumentParser) -> None:
    """``--budget OPS`` and ``--memory GIB``: raise (or lower) the work budget deliberately."""
    p.add_argument(BUDGET_FLAG, type=_positive, default=DEFAULT_BUDGET.work, metavar="OPS",
                   help="most scalar operations one request may take (default "
                        f"{DEFAULT_BUDGET.work:.0e}); a request above it is refused before it runs")
    p.add_argument("--memory", type=_positive, default=DEFAULT_BUDGET.memory / GIB,
                   metavar="GIB", help="most memory one request may hold, in GiB (default "
                                       f"{DEFAULT_BUDGET.memory / GIB:g})")


def budget_of(args: argparse.Namespace) -> Budget:
    """The budget the command line asked for."""
    return Budget(work=args.budget, memory=args.memory * GIB)
