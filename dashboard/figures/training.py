"""Pure Plotly builders for the training page (same rules as :mod:`dashboard.figures.sampling`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.figkit import (
    COLORS,
    box_axes,
    decimate,
    density_trace,
    drawn_points,
    f32,
    figure,
    grid_layout,
    points_trace,
)

__all__ = ["model_figure", "training_curves"]


def model_figure(box: Sequence[float], density: Any, data: Any, negatives: Any, *,
                 buffer: Any = None, max_points: int = 3000, title: str | None = None,
                 height: int = 520) -> go.Figure:
    """The learned density (contours) with the data and the current negatives.

    Args:
        box: the model's box (fixed axis ranges).
        density: the model's ``GridDensity`` (None before the first evaluation).
        data: ``(n, 2)`` training points; ``negatives``: ``(m, 2)`` current negatives.
        buffer: optional ``(B, 2)`` replay buffer, drawn faintly underneath.
    """
    traces = []
    if density is not None:
        traces.append(density_trace(density, name="p_θ"))
    if buffer is not None:
        pts, n = drawn_points(buffer, max_points)
        traces.append(points_trace(pts, name=f"replay buffer ({n:,})", color="#adb5bd",
                                   size=3, opacity=0.45))
    pts, _ = drawn_points(data, max_points)
    traces.append(points_trace(pts, name="data", color=COLORS["data"], size=4, opacity=0.55))
    if negatives is not None:
        pts, _ = drawn_points(negatives, max_points)
        traces.append(points_trace(pts, name="negatives", color=COLORS["negatives"], size=5,
                                   opacity=0.85, outline=0.4))
    return figure(traces, box_axes(box), height=height, title=title)


def _col(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    it = [r["iteration"] for r in rows if r.get(key) is not None]
    v = [r[key] for r in rows if r.get(key) is not None]
    return np.asarray(it, dtype=np.float32), np.asarray(v, dtype=np.float32)


def training_curves(history: Sequence[Mapping[str, Any]], losses: Any, *, total: int,
                    entropy: float | None = None, adversarial: bool = False,
                    height: int = 560) -> go.Figure:
    """Exact likelihood curves, KL, log Z (with the bound and its gap), and the loss.

    Args:
        history: exact-metric rows (``iteration``, ``nll_train``, ``nll_test``, ``kl``,
            ``log_z``, and for adversarial runs ``bound``, ``gap``).
        losses: ``(L, 2)`` (iteration, loss) per iteration (decimated here for drawing).
        total: iterations requested: the fixed x range.
        entropy: the data density's entropy (the best reachable NLL), where known.
    """
    titles = ("exact NLL (nats / point)", "KL(p_data ‖ p_θ)",
              "log Z_θ and the bound" if adversarial else "exact log Z_θ", "training loss")
    layout, refs = grid_layout(2, 2, titles=titles, hspace=0.1, vspace=0.18)
    data = []

    def add(trace: dict, panel: int) -> None:
        xr, yr = refs[panel]
        data.append({**trace, "xaxis": xr, "yaxis": yr})

    def line(key: str, name: str, color: str, panel: int, legend: bool = True) -> int:
        x, y = _col(history, key)
        add(dict(type="scatter", x=x, y=y, mode="lines+markers", name=name,
                 showlegend=legend, marker=dict(size=4), line=dict(color=color, width=2)),
            panel)
        return len(x)

    line("nll_train", "train NLL", COLORS["data"], 0)
    line("nll_test", "test NLL", COLORS["negatives"], 0)
    if entropy is not None:
        add(dict(type="scatter", x=[0, total], y=[entropy, entropy], mode="lines",
                 name="data entropy (best possible)", hoverinfo="skip",
                 line=dict(color=COLORS["exact"], dash="dash", width=1.5)), 0)
    if not line("kl", "KL", COLORS["mala"], 1, legend=False):
        layout["annotations"].append(dict(text="data density unknown: no KL", showarrow=False,
                                          x=0.5, y=0.5, xref="x2 domain", yref="y2 domain",
                                          font=dict(color=COLORS["test"])))
    line("log_z", "exact log Z", COLORS["paths"], 2)
    if adversarial:
        line("bound", "bound (≤ log Z)", COLORS["hmc"], 2)
        xg, yg = _col(history, "gap")
        add(dict(type="bar", x=xg, y=yg, name="gap = KL(q ‖ p_θ)", opacity=0.35,
                 marker=dict(color=COLORS["hmc"])), 2)
    la = np.asarray(losses, dtype=np.float64).reshape(-1, 2) if len(losses) else np.zeros((0, 2))
    idx = decimate(len(la), 1500)
    add(dict(type="scatter", x=f32(la[idx, 0]), y=f32(la[idx, 1]), mode="lines", name="loss",
             showlegend=False, line=dict(color=COLORS["chains"], width=1.2)), 3)
    for k in range(4):
        s = "" if k == 0 else str(k + 1)
        layout[f"xaxis{s}"].update(range=[0, total], autorange=False,
                                   title=dict(text="iteration" if k >= 2 else None))
    fig = figure(data, layout, height=height)
    fig.layout.legend.y = 1.08
    return fig
