"""Pure Plotly builders for the training page (same rules as :mod:`dashboard.figures.sampling`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.figkit import (
    COLORS,
    animate_args,
    box_axes,
    decimate,
    density_trace,
    drawn_points,
    drawn_with,
    f32,
    figure,
    grid_layout,
    packed,
    play_pause,
    points_trace,
)

__all__ = ["evolution_figure", "model_figure", "training_curves"]


def model_figure(box: Sequence[float], density: Any, data: Any, negatives: Any, *,
                 buffer: Any = None, buffer_age: Any = None, max_points: int = 3000,
                 title: str | None = None, height: int = 520) -> go.Figure:
    """The learned density (contours) with the data and the current negatives.

    Args:
        box: the model's box (fixed axis ranges).
        density: the model's ``GridDensity`` (None before the first evaluation).
        data: ``(n, 2)`` training points; ``negatives``: ``(m, 2)`` current negatives.
        buffer: optional ``(B, 2)`` replay buffer, drawn faintly underneath;
            ``buffer_age`` (``(B,)``, optional) colours each entry by the Langevin runs
            it went through since it was drawn from noise (light: fresh, dark: old).
    """
    traces = []
    if density is not None:
        traces.append(density_trace(density, name="p_θ"))
    if buffer is not None:
        traces.append(_buffer_trace(buffer, buffer_age, max_points))
    pts, _ = drawn_points(data, max_points)
    traces.append(points_trace(pts, name="data", color=COLORS["data"], size=4, opacity=0.55))
    if negatives is not None:
        pts, _ = drawn_points(negatives, max_points)
        traces.append(points_trace(pts, name="negatives", color=COLORS["negatives"], size=5,
                                   opacity=0.85, outline=0.4))
    return figure(traces, box_axes(box), height=height, title=title)


AGE_SCALE = [[0.0, "#e9ecef"], [0.5, "#9775fa"], [1.0, "#3b1f80"]]  # fresh -> long mixed


def _buffer_trace(buffer: Any, age: Any, max_points: int) -> dict:
    """The replay buffer's entries, coloured by age (log scale) when ages are given."""
    pts, a, n = drawn_with(buffer, age, max_points)
    if a is None:
        return points_trace(pts, name=f"replay buffer ({n:,})", color="#adb5bd", size=3,
                            opacity=0.45)
    a = a.astype(np.int64)
    tr = points_trace(pts, name=f"replay buffer ({n:,}), darker = older", color="#adb5bd",
                      size=3, opacity=0.55)
    oldest = int(a.max()) if len(a) else 0
    tr["marker"].update(color=np.log1p(a).astype(np.float32), colorscale=AGE_SCALE, cmin=0.0,
                        cmax=max(float(np.log1p(oldest)), 1e-6), showscale=False)
    tr["customdata"] = a
    tr["hovertemplate"] = ("(%{x:.3f}, %{y:.3f}): %{customdata:,} Langevin runs since noise"
                           "<extra>replay buffer</extra>")
    return tr


def evolution_figure(box: Sequence[float], frames: Sequence[Any], data: Any, *,
                     max_points: int = 400, cells: int = 50, frame_ms: int = 400,
                     height: int = 600, at_last: bool = False) -> go.Figure:
    """The learned density and the negatives at each evaluation, over the data: a slider
    and a play button step through them in the browser (Plotly frames, no server).

    Args:
        box: the model's box (fixed axis ranges).
        frames: one per evaluation, each with ``iteration``, ``density`` (a GridDensity)
            and ``negatives`` (``(m, 2)`` or None), in order.
        data: ``(n, 2)`` training points, drawn under every frame.
        max_points, cells: per frame, the negatives and the density grid side drawn (the
            whole animation stays within MAX_FIGURE_BYTES for MAX_FRAMES frames).
        at_last: open on the last snapshot (a live run: the newest), not the first.
    """
    def moving(f: Any, pack: bool = False) -> list[dict]:
        pts = np.zeros((0, 2), np.float32) if f.negatives is None else drawn_points(
            f.negatives, max_points)[0]
        traces = [density_trace(f.density, name="p_θ", max_cells=cells),
                  points_trace(pts, name="negatives", color=COLORS["negatives"], size=5,
                               opacity=0.85, outline=0.4, gl=False)]
        if pack:  # a frame: only what changes (Plotly merges it into the drawn traces),
            # its arrays already in Plotly's typed-array form (20 frames, build + JSON:
            # 85 -> 58 ms, 680 -> 350 kB)
            c, p = traces
            traces = [dict(type="contour", x=packed(c["x"]), y=packed(c["y"]),
                           z=packed(c["z"]), zmax=c["zmax"], contours=c["contours"]),
                      dict(type="scatter", x=packed(p["x"]), y=packed(p["y"]))]
        return traces

    pts, _ = drawn_points(data, max_points)
    shown = points_trace(pts, name="data", color=COLORS["data"], size=4, opacity=0.45,
                         gl=False)
    start = len(frames) - 1 if at_last and frames else 0
    first = moving(frames[start]) if frames else []
    traces = [*first[:1], shown, *first[1:]]
    title = [f"p_θ at iteration {f.iteration:,}" for f in frames]
    spec_frames = [dict(name=str(f.iteration), traces=[0, 2], data=moving(f, pack=True),
                        layout=dict(title=dict(text=t)))
                   for f, t in zip(frames, title, strict=True)]
    still, play = animate_args(frame_ms)
    layout = box_axes(box)
    every = max(1, round(len(frames) / 8))
    layout["updatemenus"] = play_pause(still, play, y=-0.17)
    layout["sliders"] = [dict(
        active=start, x=0.2, y=-0.15, len=0.8, yanchor="top", pad=dict(t=0, b=0),
        currentvalue=dict(visible=False), font=dict(size=10),
        steps=[dict(label=f"{f.iteration:,}" if i % every == 0 else "", method="animate",
                    args=[[str(f.iteration)], still]) for i, f in enumerate(frames)])]
    fig = figure(traces if frames else [shown], layout, height=height,
                 title=title[start] if frames else "no evaluation yet", frames=spec_frames)
    fig.layout.margin.b = 130  # room for the x axis title, then the slider
    return fig


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
