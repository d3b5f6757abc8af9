"""Page settings <-> URL query parameters, with no Streamlit import.

A page declares its settings as :class:`Field` s.  Each field has a URL name, a
default, a parser from URL text to the value its widget holds, and a formatter
back.  :func:`load` decides where every widget starts:

- a URL that the page did not write itself (a pasted link, or a switch from
  another page with query parameters) wins: its values are parsed, and a value
  that does not parse falls back to the default with a note for the user;
  settings absent from such a URL take their defaults;
- otherwise a widget that already exists keeps its value, and a missing one is
  restored from the page's remembered settings (navigating through the menu
  clears the URL), else from its default.

Either way the value is written to session state on every run, so that the
browser is always told what each widget holds.

:func:`to_query` renders the effective settings back into query parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from dashboard import state
from dashboard.safe_text import url_value
from ebmcore.energies import quote

__all__ = [
    "Field",
    "boolean",
    "choice",
    "fmt_bool",
    "fmt_float",
    "load",
    "mark_seen",
    "number",
    "number_list",
    "remember",
    "text",
    "to_query",
]


@dataclass(frozen=True)
class Field:
    """One setting of a page, as it travels through the URL."""

    name: str  # URL parameter name, and widget key suffix
    default: Any  # value the widget holds by default
    parse: Callable[[str], Any]  # URL text -> widget value; raises ValueError with a message
    fmt: Callable[[Any], str] = str  # widget value -> URL text
    # draws the widget, given (page, name, current values); returns an error message or None.
    # None: the page draws nothing for it (a setting held by another widget)
    widget: Callable[[str, str, Mapping[str, Any]], str | None] | None = None
    # whether the setting matters for these values: drawn, and written to the URL, only then
    show: Callable[[Mapping[str, Any]], bool] | None = None
    keep_drawn: bool = False  # drawn (its widget may grey itself out) even when it does not matter

    def matters(self, values: Mapping[str, Any]) -> bool:
        return self.show is None or bool(self.show(values))


def fmt_float(v: float) -> str:
    """Shortest text that reads back as the same float ("0.3", "1e-05")."""
    return repr(float(v))


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    integer: bool = False,
    positive: bool = False,
) -> Callable[[str], float | int]:
    """Parser of one finite number in ``[lo, hi]`` (``> 0`` if ``positive``)."""

    def parse(text: str) -> float | int:
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"{quote(text)} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"{quote(text)} is not finite")
        if integer:
            if v != int(v):
                raise ValueError(f"{quote(text)} is not a whole number")
            v = int(v)
        if positive and v <= 0:
            raise ValueError(f"{quote(text)} must be > 0")
        if lo is not None and v < lo:
            raise ValueError(f"{quote(text)} is below the minimum {lo:g}")
        if hi is not None and v > hi:
            raise ValueError(f"{quote(text)} is above the maximum {hi:g}")
        return v

    return parse


def boolean(text: str) -> bool:
    """Parser of on/off values: 1/0, true/false, on/off, yes/no."""
    t = text.strip().lower()
    if t in ("1", "true", "on", "yes"):
        return True
    if t in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{quote(text)} is not on/off (use 1 or 0)")


def fmt_bool(v: bool) -> str:
    return "1" if v else "0"


def choice(options: Sequence[str]) -> Callable[[str], str]:
    """Parser that accepts one of ``options``."""

    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"{quote(text)} is not one of {', '.join(options)}")
        return text

    return parse


def text(max_len: int = 2000) -> Callable[[str], str]:
    """Parser of free text (validated later by ebmcore), up to ``max_len`` characters."""

    def parse(t: str) -> str:
        if len(t) > max_len:
            raise ValueError(f"text is too long ({len(t)} characters, limit {max_len})")
        return t

    return parse


def number_list(size: int) -> Callable[[str], str]:
    """Parser of ``size`` finite numbers separated by commas; keeps the text."""

    def parse(t: str) -> str:
        parts = [p for p in t.replace(";", ",").split(",") if p.strip()]
        if len(parts) != size:
            raise ValueError(f"{quote(t)} should be {size} numbers separated by commas")
        for p in parts:
            number()(p)
        return t

    return parse


def _first(value: Any) -> str:
    if isinstance(value, (list, tuple)):  # repeated parameter: the last one wins
        return str(value[-1]) if value else ""
    return str(value)


def load(
    store: MutableMapping[str, Any],
    page: str,
    fields: Iterable[Field],
    query: Mapping[str, Any],
) -> list[str]:
    """Set the starting value of every field's widget in ``store``; return notes.

    Args:
        store: session state (or a dict in tests).
        page: page id (see :data:`dashboard.state.PAGES`).
        fields: the settings to initialise; may be called again in the same run
            for settings that depend on others (a target's parameters).
        query: the current URL query parameters.

    Returns:
        One note per URL value that was invalid and replaced by its default.
    """
    query = {k: _first(v) for k, v in query.items()}
    seen = state.get(store, "url", page)
    fresh = bool(query) and query != seen
    remembered = state.get(store, "settings", page) or {}
    notes: list[str] = []
    for f in fields:
        wk = state.widget_key(page, f.name)
        if fresh:
            value = f.default
            if f.name in query:
                try:
                    value = f.parse(url_value(f.name, query[f.name]))
                except (ValueError, TypeError) as exc:
                    notes.append(
                        f"URL value {f.name}={quote(query[f.name])} ignored ({exc}); "
                        f"using the default {f.fmt(f.default)}"
                    )
            store[wk] = value
        else:
            # Written on every run, even unchanged: Streamlit then sends the value with the
            # widget, so a browser that lost the widget's state (a reconnect, a remount, a
            # run whose output it never drew) shows what runs, not the element's own default
            # (off, for a toggle).
            store[wk] = store[wk] if wk in store else remembered.get(f.name, f.default)
    return notes


def mark_seen(store: MutableMapping[str, Any], page: str, query: Mapping[str, Any]) -> None:
    """Record ``query`` as applied, so that it is not applied again."""
    state.put(store, "url", page, {k: _first(v) for k, v in query.items()})


def remember(store: MutableMapping[str, Any], page: str, values: Mapping[str, Any]) -> None:
    """Merge ``values`` into the page's remembered settings."""
    old = dict(state.get(store, "settings", page) or {})
    old.update(values)
    state.put(store, "settings", page, old)


def to_query(fields: Iterable[Field], values: Mapping[str, Any]) -> dict[str, str]:
    """URL query parameters for ``values``: every field present in ``values`` that matters."""
    return {f.name: f.fmt(values[f.name]) for f in fields
            if f.name in values and f.matters(values)}
