"""The one module that names session-state keys.

Every other module reads and writes session state through these helpers, so
the full list of what a session remembers is here, in one place:

- widget keys ``"<page>.<setting>"`` (one per control, see :func:`widget_key`);
- ``"_url.<page>"``: the query string a page last wrote (to tell a pasted or
  switched-to URL from our own echo);
- ``"_settings.<page>"``: the page's last effective settings, restored when the
  user comes back to the page through the menu (which clears the URL);
- ``"_notes.<page>"``: notes about URL values that fell back to defaults;
- ``"_loaded.<page>"``: the target and sampler whose settings were last loaded, and a note;
- ``"_valid.<page>"``: the last valid built inputs (target, config), kept when
  new input is invalid;
- ``"_run.<page>"``: the page's live run (a :class:`dashboard.live.LiveRun`);
- ``"_sweep.<page>"``: an eps sweep in progress or done;
- ``"_train.<page>"``: the training session.

Values are plain Python objects; ``store`` is any mutable mapping
(``st.session_state`` in the app, a ``dict`` in tests).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

__all__ = [
    "PAGES",
    "get",
    "key",
    "pop",
    "put",
    "widget_key",
]

# page ids used in key names
PAGES = ("playground", "versus", "theory", "training", "dynamics", "samplers")
_KINDS = ("url", "settings", "notes", "loaded", "valid", "run", "sweep", "train")


def widget_key(page: str, setting: str) -> str:
    """Session-state key of the widget for ``setting`` on ``page``."""
    _check_page(page)
    return f"{page}.{setting}"


def key(kind: str, page: str) -> str:
    """Key of a non-widget value: ``kind`` is one of url, settings, notes, valid, run, ..."""
    _check_page(page)
    if kind not in _KINDS:
        raise KeyError(f"unknown state kind {kind!r}")
    return f"_{kind}.{page}"


def get(store: MutableMapping[str, Any], kind: str, page: str, default: Any = None) -> Any:
    """Read a non-widget value, ``default`` when absent."""
    return store.get(key(kind, page), default)


def put(store: MutableMapping[str, Any], kind: str, page: str, value: Any) -> None:
    """Write a non-widget value."""
    store[key(kind, page)] = value


def pop(store: MutableMapping[str, Any], kind: str, page: str) -> Any:
    """Remove and return a non-widget value (None when absent)."""
    return store.pop(key(kind, page), None)


def _check_page(page: str) -> None:
    if page not in PAGES:
        raise KeyError(f"unknown page {page!r}")
