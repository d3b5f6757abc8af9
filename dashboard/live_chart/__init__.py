"""A Plotly chart that live views update in place: one iframe, ``Plotly.react`` per tick.

``st.plotly_chart`` gives every new figure a new element id (the id hashes the
spec), so each live tick remounts the chart and the page shows a blank frame.
This component keeps one chart per ``key`` and redraws it in place; a render that
only moves scatter points over fixed axes (a live run's chains) moves them through
Plotly's animation path, without redrawing the rest of the chart; a render may carry
several successive states, drawn a fixed gap apart; states falling due while the page
draws (or rests after a draw, as long as the draw took) are coalesced into the newest.
Plotly.js comes from the plotly package's own copy, served next to the component's page
from a per-version folder outside the repository.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
import plotly.io
import streamlit as st
import streamlit.components.v1 as components
from plotly.io.json import to_json_plotly

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


def live_chart(figs: go.Figure | Sequence[go.Figure], *, key: str, config: dict,
               gap_s: float = 0.0) -> None:
    """Draw ``figs`` in the live chart ``key``, updating the chart already there in place.

    ``figs`` is one figure, or successive states of a view (a live run at moments a few
    hundredths of a second apart, oldest first): the page draws them ``gap_s`` apart, so
    the chart moves more often than the page reruns (each rerun costs the browser the
    whole page's redraw, not just the chart's).

    Only what changed travels: a trace (or the layout) whose JSON text this chart has been
    sent in full :data:`REPEATS` times goes as ``[tag]``, a tag of its text, and the page
    reuses what it parsed from that text (``Plotly.react`` skips an unchanged object, so an
    unchanged contour is not recomputed either); a text shared by several states travels
    once.  Sending a new text more than once covers renders the page never sees (a newer
    render replaces an older one on its way); a page that lacks a tag all the same (a new
    iframe) asks once for everything, through the component's value.

    A figure with frames (an animation with its slider and play button) keeps playing in
    the page: a render whose every part is unchanged leaves it where the user is.
    """
    figs = [figs] if isinstance(figs, go.Figure) else list(figs)
    framed = bool(figs[-1].frames)
    if framed and len(figs) > 1:
        raise ValueError("an animation is drawn as one figure, not as states")
    memo = st.session_state.setdefault(_MEMO, {})
    last = memo.get(key)
    if last is not None and last.get("fig") is figs[-1] and len(figs) == 1:
        texts = [last["texts"]]  # the same figure again (a memoised animation): its text
    else:  # is not written again per tick
        texts = [_texts(f) for f in figs]
    asked = _asked(key)
    if last is None or asked != last["answered"]:
        last = {"sent": {}}  # tag -> how many renders carried that text in full
    sent: dict[int, int] = {}
    parts: list[str | list[int]] = []
    tags: list[int] = []
    states = [[hash(t) & _TAG_MASK for t in state] for state in texts]
    for state, state_tags in zip(texts, states, strict=True):
        for text, tag in zip(state, state_tags, strict=True):
            if tag in sent:  # already in this render (another state's)
                continue
            n = last["sent"].get(tag, 0)
            parts.append([tag] if n >= REPEATS else text)
            tags.append(tag)
            sent[tag] = n if n >= REPEATS else n + 1
    memo[key] = {"sent": sent, "answered": asked, "fig": figs[-1], "texts": texts[-1]}
    _component()(parts=parts, tags=tags, states=states, gap=round(gap_s * 1000),
                 framed=framed, config=json.dumps(config), key=key, default=None)


def _texts(fig: go.Figure) -> list[str]:
    """The traces, then the layout, then any animation frames (as one part), as JSON;
    orjson writes numpy arrays directly (float32 as float32)."""
    texts = [*(plotly.io.to_json(t, validate=False, engine="orjson") for t in fig.data),
             plotly.io.to_json(fig.layout, validate=False, engine="orjson")]
    if fig.frames:
        texts.append(to_json_plotly([f.to_plotly_json() for f in fig.frames], engine="orjson"))
    return texts


REPEATS = 3  # renders that carry a new text in full before it goes as its tag
_TAG_MASK = (1 << 48) - 1  # tags stay exact as JavaScript numbers
_MEMO = "_live_chart_sent"  # session state: per chart key, what its page was last sent


def _asked(key: str) -> Any:
    """The token of the page's last request for a full render, or None."""
    value = st.session_state.get(key)
    return value.get("resend") if isinstance(value, dict) else None
