"""A Plotly chart that live views update in place: one iframe, ``Plotly.react`` per tick.

``st.plotly_chart`` gives every new figure a new element id (the id hashes the
spec), so each live tick remounts the chart and the page shows a blank frame.
This component keeps one chart per ``key`` and redraws it in place.  Plotly.js
comes from the plotly package's own copy, served next to the component's page
from a per-version folder outside the repository.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
import plotly.io
import streamlit as st
import streamlit.components.v1 as components

__all__ = ["live_chart"]

HERE = Path(__file__).resolve().parent
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


@lru_cache(maxsize=1)
def _component() -> Any:
    """Declare the component once per process, from a folder holding its page and plotly.js."""
    page = (HERE / "index.html").read_bytes()
    tag = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"langevin-lab-live-chart-{tag}"
    if not (root / "plotly.min.js").is_file():
        tmp = Path(tempfile.mkdtemp(prefix="langevin-lab-live-chart-"))
        (tmp / "index.html").write_bytes(page)
        shutil.copyfile(PLOTLY_JS, tmp / "plotly.min.js")
        try:
            tmp.rename(root)
        except OSError:  # another process made it first: theirs is the same
            shutil.rmtree(tmp, ignore_errors=True)
    return components.declare_component("live_chart", path=str(root))


def live_chart(fig: go.Figure, *, key: str, config: dict) -> None:
    """Draw ``fig`` in the live chart ``key``, updating the chart already there in place.

    Only what changed travels: a trace (or the layout) whose JSON text is the one this
    chart was last sent goes as ``[since]``, the number of the render that sent it, and the
    page reuses what it parsed then (``Plotly.react`` skips an unchanged object, so an
    unchanged contour is not recomputed either).  A page that lacks it (a new iframe, a
    render it never saw) asks once for everything, through the component's value.
    """
    texts = [*(plotly.io.to_json(t, validate=False) for t in fig.data),
             plotly.io.to_json(fig.layout, validate=False)]  # the traces, then the layout
    memo = st.session_state.setdefault(_MEMO, {})
    last = memo.get(key)
    asked = _asked(key)
    if last is None or asked != last["answered"]:
        last = {"version": 0, "texts": [], "since": []}
    version = last["version"] + 1
    parts, since = [], []
    for i, text in enumerate(texts):
        same = i < len(last["texts"]) and last["texts"][i] == text
        since.append(last["since"][i] if same else version)
        parts.append([since[-1]] if same else text)
    memo[key] = {"version": version, "texts": texts, "since": since, "answered": asked}
    _component()(parts=parts, version=version, config=json.dumps(config), key=key,
                 default=None)


_MEMO = "_live_chart_sent"  # session state: per chart key, what its page was last sent


def _asked(key: str) -> Any:
    """The token of the page's last request for a full render, or None."""
    value = st.session_state.get(key)
    return value.get("resend") if isinstance(value, dict) else None
