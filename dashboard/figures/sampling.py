"""Pure Plotly figure builders for the sampler pages: data in, ``go.Figure`` out.

No Streamlit here and no numerics beyond drawing: decimation of points and
curves (for drawing only; statistics always use every sample) and the binning
of a histogram.  Every builder caps what it draws, so a figure stays well under
:data:`MAX_FIGURE_BYTES` whatever the number of chains; axis ranges are fixed
(the target's box, the run's length) so live redraws do not jump.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.figkit import (
    COLORS,
    GL_THRESHOLD,
    animate_args,
    box_axes,
    decimate,
    density_image,
    density_trace,
    drawn_points,
    f32,
    figure,
    grid_layout,
    packed,
    play_pause,
    points_trace,
    to_np,
)

__all__ = [
    "LIVE_POINTS",
    "chains_figure",
    "curves_figure",
    "marginals_figure",
    "replay_figure",
    "sweep_figure",
    "twin_figure",
]

MAX_POINTS = 20_000  # chain positions drawn in one panel
# ... while a run is live: SVG markers (WebGL starts above figkit.GL_THRESHOLD), which the live
# chart moves without a redraw. Per update, in Chromium (software rendering), 1e5 chains drawn
# as 20,000 WebGL points took 224 ms, as 1,500 moved SVG points 70 ms; the finished run draws
# MAX_POINTS.
LIVE_POINTS = GL_THRESHOLD
MAX_CURVE = 2000  # points per drawn curve
TV_MIN = 0.003  # bottom of the sweep figure's log axis
PATH_COLORS = ("#212529", "#5f3dc4", "#087f5b", "#c2255c")


def _merge(layout: dict, extra: dict) -> dict:
    for k, v in extra.items():
        layout[k] = {**layout.get(k, {}), **v}
    return layout


# -- sampler figures --------------------------------------------------------------------


def chains_figure(gd: Any, points: Any, *, paths: Any = None, n_paths: int = 2,
                  max_points: int = MAX_POINTS, max_path_points: int = 80,
                  title: str | None = None, label: str = "chains",
                  color: str = COLORS["chains"], height: int = 560) -> go.Figure:
    """Exact density contours, chain positions on top, and the start of a few trajectories.

    Args:
        gd: the exact ``GridDensity`` (its box fixes the axis ranges).
        points: ``(N, 2)`` chain positions (all of them; decimated here for drawing).
        paths: optional ``(K, P, 2)`` trajectories; the first ``max_path_points`` points of
            the first ``n_paths`` are drawn: the transient from the start into the typical
            set, which a whole path (a scribble over the mode) would hide.
    """
    data = [density_trace(gd)]
    if paths is not None and n_paths > 0:
        pa = f32(paths)
        for k in range(min(n_paths, pa.shape[0])):
            seg = pa[k][:max_path_points]
            pc = PATH_COLORS[k % len(PATH_COLORS)]
            data.append(dict(type="scatter", x=seg[:, 0], y=seg[:, 1], mode="lines",
                             name="trajectories", legendgroup="paths", showlegend=k == 0,
                             hoverinfo="skip", line=dict(width=0.8, color=pc), opacity=0.5))
            data.append(dict(type="scatter", x=seg[:1, 0], y=seg[:1, 1], mode="markers",
                             name="start", legendgroup="start", showlegend=k == 0,
                             hoverinfo="skip", marker=dict(symbol="circle-open", size=9,
                                                           color=pc, line=dict(width=2))))
    drawn, n = drawn_points(points, max_points)
    name = label if len(drawn) == n else f"{label} ({len(drawn):,} of {n:,} drawn)"
    data.append(points_trace(drawn, name=name, color=color))
    return figure(data, box_axes(gd.box), height=height, title=title)


def replay_figure(gd: Any, steps: Any, positions: Any, *, max_frames: int = 40,
                  max_points: int = 300, frame_ms: int = 100, height: int = 560,
                  title: str | None = None) -> go.Figure:
    """The recorded run as a browser-side animation: play/pause and a step slider.

    Args:
        steps: ``(S,)`` step index of each recorded frame.
        positions: ``(S, N, 2)`` positions; frames and chains are decimated for drawing
            (at most ``max_frames`` x ``max_points`` points in total).
    """
    st_ = to_np(steps).astype(int)
    pos = to_np(positions)
    fi = decimate(len(st_), max_frames)
    ci = decimate(pos.shape[1], max_points)
    frames_xy = [f32(pos[f][ci]) for f in fi]
    data = [points_trace(frames_xy[-1], name="chains", color=COLORS["chains"], gl=False,
                         size=5)]
    frames = [dict(data=[dict(type="scatter", x=packed(xy[:, 0]), y=packed(xy[:, 1]))],
                   traces=[0], name=str(int(st_[f]))) for f, xy in zip(fi, frames_xy, strict=True)]
    still, play = animate_args(frame_ms, redraw=False)
    layout = box_axes(gd.box)
    layout["images"] = [density_image(gd)]  # animations drop contour traces: a picture stays
    layout["updatemenus"] = play_pause(still, play, y=-0.13, labels=("play", "pause"))
    layout["sliders"] = [dict(
        active=len(fi) - 1, x=0.2, y=-0.1, len=0.8, yanchor="top", pad=dict(t=0, b=0),
        currentvalue=dict(prefix="step ", xanchor="right", font=dict(size=12)),
        steps=[dict(label=str(int(st_[f])), method="animate", args=[[str(int(st_[f]))], still])
               for f in fi])]
    fig = figure(data, layout, height=height, title=title, frames=frames)
    fig.layout.margin.b = 120
    return fig


def marginals_figure(gd: Any, points: Any, *, bins: int = 48, height: int = 560) -> go.Figure:
    """Histograms of the chains' x and y (stacked) against the exact marginal densities."""
    p = to_np(points).reshape(-1, 2).astype(np.float64)
    p = p[np.isfinite(p).all(axis=1)]
    layout, refs = grid_layout(2, 1, titles=("marginal of x", "marginal of y"), vspace=0.16)
    x0, x1, y0, y1 = (float(v) for v in gd.box)
    data = []
    for i, (lo, hi, exact, grid) in enumerate(
            ((x0, x1, gd.marginal_x, gd.xs), (y0, y1, gd.marginal_y, gd.ys))):
        xr, yr = refs[i]
        counts, edges = np.histogram(p[:, i], bins=bins, range=(lo, hi))
        width = (hi - lo) / bins
        data.append(dict(type="bar", x=f32((edges[:-1] + edges[1:]) / 2),
                         y=f32(counts / max(1, len(p)) / width), width=width, xaxis=xr,
                         yaxis=yr, name="chains", showlegend=i == 0, legendgroup="h",
                         marker=dict(color=COLORS["chains"], opacity=0.5, line=dict(width=0)),
                         hovertemplate="%{x:.2f}: %{y:.3f}<extra></extra>"))
        idx = decimate(len(to_np(grid)), 400)
        data.append(dict(type="scatter", x=f32(grid)[idx], y=f32(exact)[idx], mode="lines",
                         name="exact", showlegend=i == 0, legendgroup="e", hoverinfo="skip",
                         xaxis=xr, yaxis=yr,
                         line=dict(color=COLORS["exact"], width=2, dash="dash")))
        _merge(layout, {f"xaxis{'' if i == 0 else 2}": dict(range=[lo, hi]),
                        f"yaxis{'' if i == 0 else 2}": dict(rangemode="tozero",
                                                             title=dict(text="density"))})
    layout["bargap"] = 0
    fig = figure(data, layout, height=height)
    fig.layout.legend.y = 1.06
    return fig


def _curve(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = to_np(x), to_np(y)
    idx = decimate(len(xa), MAX_CURVE)
    return f32(xa[idx]), f32(ya[idx])


def _span(values: list[np.ndarray], ref: float, below: float, above: float) -> list[float]:
    """A y range holding ``ref`` and the second half of every curve (where runs settle).

    The first steps may fall outside (a far start is what burn-in is for), but only
    as far as ``below`` / ``above`` beyond both.
    """
    tails = [v[len(v) // 2:] for v in values if len(v)]
    finite = [t[np.isfinite(t)] for t in tails]
    lo_t = min([ref] + [float(t.min()) for t in finite if len(t)])
    hi_t = max([ref] + [float(t.max()) for t in finite if len(t)])
    heads = [v[np.isfinite(v)] for v in values if len(v)]
    lo = max(min([lo_t] + [float(h.min()) for h in heads if len(h)]), lo_t - below)
    hi = min(max([hi_t] + [float(h.max()) for h in heads if len(h)]), hi_t + above)
    pad = 0.06 * (hi - lo + 1.0)
    return [lo - pad, hi + pad]


def curves_figure(steps: Any, likelihood: Any, neg_entropy: float, mean_energy: Any, *,
                  log_z: float | None = None, burn_in: int = 0, total: int | None = None,
                  height: int = 320, map_likelihood: Any = None,
                  map_energy: Any = None) -> go.Figure:
    """Mean log p(x_t) over chains per step against the exact E_p[log p]; the energy trace.

    Args:
        steps: ``(S,)`` recorded steps; ``likelihood`` and ``mean_energy`` are ``(S,)``.
        neg_entropy: ``E_p[log p]``, exact: where an unbiased sampler settles.
        log_z: exact log Z; with it the energy panel shows the exact ``E_p[E] = -E_p[log p]
            - log Z``.
        total: the run's length: the fixed x range while the run grows.
        map_likelihood, map_energy: optional ``(S,)`` curves of a noiseless run.
    """
    layout, refs = grid_layout(1, 2, titles=("likelihood: mean log p(xₜ) over chains",
                                             "energy: mean E(xₜ) over chains"), hspace=0.09)
    x, y = _curve(steps, likelihood)
    xe, ye = _curve(steps, mean_energy)
    x_end = float(total if total else (x[-1] if len(x) else 1))
    line = dict(color=COLORS["chains"], width=2)
    data = [dict(type="scatter", x=x, y=y, mode="lines", name="chains", legendgroup="c",
                 line=line),
            dict(type="scatter", x=xe, y=ye, mode="lines", name="chains", legendgroup="c",
                 showlegend=False, line=line, xaxis="x2", yaxis="y2")]
    ys, yes = [y], [ye]
    mline = dict(color=COLORS["map"], width=2)
    if map_likelihood is not None:
        xm, ym = _curve(steps, map_likelihood)
        data.append(dict(type="scatter", x=xm, y=ym, mode="lines", name="noise off (MAP)",
                         legendgroup="m", line=mline))
        ys.append(ym)
    if map_energy is not None:
        xm, ym = _curve(steps, map_energy)
        data.append(dict(type="scatter", x=xm, y=ym, mode="lines", name="noise off (MAP)",
                         legendgroup="m", showlegend=False, line=mline, xaxis="x2",
                         yaxis="y2"))
        yes.append(ym)
    ref = dict(color=COLORS["exact"], dash="dash", width=1.5)
    ne = float(neg_entropy)
    data.append(dict(type="scatter", x=[0.0, x_end], y=[ne, ne], mode="lines",
                     name="exact (expectation under p)", legendgroup="exact",
                     hoverinfo="skip", line=ref))
    # keep the exact level and the end of the run in view; the first steps from a far start
    # may fall off the bottom (they are what burn-in is for)
    layout["yaxis"]["range"] = _span(ys, ne, 6.0, 1e9)
    if log_z is not None:
        ee = -ne - float(log_z)  # E_p[E] = -E_p[log p] - log Z
        data.append(dict(type="scatter", x=[0.0, x_end], y=[ee, ee], mode="lines",
                         name="exact", legendgroup="exact", showlegend=False,
                         hoverinfo="skip", line=ref, xaxis="x2", yaxis="y2"))
        layout["yaxis2"]["range"] = _span(yes, ee, 1e9, 6.0)
    shapes = []
    for k, (xr, yr) in enumerate(refs, start=1):
        s = "" if k == 1 else str(k)
        layout[f"xaxis{s}"].update(range=[0, x_end], title=dict(text="step"))
        if burn_in > 0:
            shapes.append(dict(type="rect", xref=xr, yref=f"{yr} domain", x0=0, x1=burn_in,
                               y0=0, y1=1, fillcolor="#adb5bd", opacity=0.18, line_width=0))
    layout["shapes"] = shapes
    fig = figure(data, layout, height=height)
    fig.layout.legend.y = 1.12
    return fig


def twin_figure(gd: Any, left: Any, right: Any, *, titles: tuple[str, str] = ("SGLD", "MAP"),
                colors: tuple[str, str] = (COLORS["chains"], COLORS["map"]),
                max_points: int = 5000, height: int = 480) -> go.Figure:
    """Two panels side by side over the same density, with identical fixed axes."""
    layout, refs = grid_layout(1, 2, titles=titles, hspace=0.06)
    data = []
    for k, (pts, color) in enumerate(zip((left, right), colors, strict=True), start=1):
        xr, yr = refs[k - 1]
        data.append(density_trace(gd, xref=xr, yref=yr))
        drawn, _ = drawn_points(pts, max_points)
        data.append(points_trace(drawn, name=titles[k - 1], color=color, size=5, outline=0.4,
                                 xref=xr, yref=yr))
        s = "" if k == 1 else str(k)
        _merge(layout, box_axes(gd.box, f"xaxis{s}", f"yaxis{s}", xr,
                                y_title="y" if k == 1 else None))
    return figure(data, layout, height=height, legend=False)


def sweep_figure(points: Sequence[Any], *, eps_range: tuple[float, float] | None = None,
                 height: int = 380) -> go.Figure:
    """Discrepancy to the target against eps, one line per sampler, with its sampling floor.

    Args:
        points: records with ``sampler``, ``eps``, ``tv``, ``floor`` attributes (or keys).
        eps_range: fixed x range (the sweep's eps span) while points arrive.
    """

    def get(p: Any, k: str) -> Any:
        return p[k] if isinstance(p, dict) else getattr(p, k)

    data = []
    for s in dict.fromkeys(get(p, "sampler") for p in points):
        pts = sorted((p for p in points if get(p, "sampler") == s), key=lambda p: get(p, "eps"))
        data.append(dict(type="scatter", x=[get(p, "eps") for p in pts],
                         y=[max(get(p, "tv"), TV_MIN) for p in pts], mode="lines+markers",
                         name=s.upper(), marker=dict(size=7),
                         line=dict(color=COLORS.get(s, COLORS["paths"]), width=2),
                         hovertemplate="ε=%{x:g}: TV=%{y:.3f}<extra>" + s.upper() + "</extra>"))
    if points:
        fl = sorted(points, key=lambda p: get(p, "eps"))
        data.append(dict(type="scatter", x=[get(p, "eps") for p in fl],
                         y=[get(p, "floor") for p in fl], mode="lines", hoverinfo="skip",
                         name="floor (exact iid samples)",
                         line=dict(color=COLORS["exact"], dash="dash", width=1.5)))
    xr = None
    if eps_range is not None:
        xr = [float(np.log10(eps_range[0])) - 0.05, float(np.log10(eps_range[1])) + 0.05]
    # TV lies in [0, 1]; a fixed log range keeps the floor and a total miss both in view
    layout = dict(xaxis=dict(type="log", title=dict(text="step size ε"), range=xr,
                             autorange=xr is None),
                  yaxis=dict(type="log", title=dict(text="discrepancy (TV of histograms)"),
                             range=[float(np.log10(TV_MIN)), 0.02], autorange=False))
    return figure(data, layout, height=height)
