"""Figures of the density flow: the chains' histogram beside the exact law of their time.

Pure builders (data in, ``go.Figure`` out).  The animated figure carries every frame
to the browser (Plotly frames, a time slider and a play button), so scrubbing and
playing cost no server round trip.  Numbers come from ebmcore records
(``SideBySide``, ``ParticleFrame``, ``DriftField``); nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.figkit import COLORS, animate_args, box_axes, f32, figure, play_pause

__all__ = ["FLOW_SCALE", "drift_traces", "flow_figure", "tv_figure"]

# one sequential scale for both panels (white = no mass), read on a light page
FLOW_SCALE = [[0.0, "#ffffff"], [0.08, "#e7eef8"], [0.3, "#9ec0e6"], [0.6, "#4c83c3"],
              [1.0, "#1d3f73"]]
KL_MIN = 1e-5  # bottom of the KL axis: the exact KL falls to 0, a log axis needs a floor
ARROW_COLOR = "#c92a2a"


def drift_traces(field: Any, *, xref: str = "x", yref: str = "y", name: str = "−∇E",
                 show_legend: bool = True) -> list[dict]:
    """Arrows of a ``DriftField`` as two plain traces: shafts (one line with gaps) and heads.

    The drawn length is the field's log-scaled ``u, v``; hovering a head shows ``|∇E|``.
    """
    x, y, u, v = (np.asarray(f32(a), dtype=np.float64) for a in (field.x, field.y,
                                                                   field.u, field.v))
    mag = np.asarray(f32(field.magnitude))
    tip_x, tip_y = x + u, y + v
    nan = np.full_like(x, np.nan)
    sx = np.stack([x, tip_x, nan], 1).reshape(-1)
    sy = np.stack([y, tip_y, nan], 1).reshape(-1)
    angle = np.degrees(np.arctan2(u, v))  # marker "angle" is clockwise from up
    moving = (u != 0) | (v != 0)
    shafts = dict(type="scatter", x=f32(sx), y=f32(sy), mode="lines", name=name,
                  legendgroup="drift", showlegend=show_legend, hoverinfo="skip",
                  line=dict(width=0.9, color=ARROW_COLOR), xaxis=xref, yaxis=yref, opacity=0.6)
    heads = dict(type="scatter", x=f32(tip_x[moving]), y=f32(tip_y[moving]), mode="markers",
                 name=name, legendgroup="drift", showlegend=False, xaxis=xref, yaxis=yref,
                 marker=dict(symbol="triangle-up", size=5, color=ARROW_COLOR,
                             angle=f32(angle[moving]), line=dict(width=0)),
                 customdata=f32(mag[moving]), opacity=0.6,
                 hovertemplate="|∇E| = %{customdata:.3g}<extra></extra>")
    return [shafts, heads]


def _heat(z: np.ndarray, box: Sequence[float], zmax: float, xref: str, yref: str,
          name: str, colorbar: bool) -> dict:
    x0, x1, y0, y1 = (float(b) for b in box)
    n = z.shape[0]
    dx, dy = (x1 - x0) / n, (y1 - y0) / n
    tr = dict(type="heatmap", z=f32(z), x0=x0 + dx / 2, dx=dx, y0=y0 + dy / 2, dy=dy,
              zmin=0.0, zmax=zmax, colorscale=FLOW_SCALE, name=name, xaxis=xref, yaxis=yref,
              showscale=colorbar, zsmooth=False,
              hovertemplate="(%{x:.2f}, %{y:.2f}): %{z:.3g}<extra>" + name + "</extra>")
    if colorbar:
        tr["colorbar"] = dict(title=dict(text="density", side="right"), thickness=10,
                              len=0.8, x=0.605, xpad=2)
    return tr


def _kl(v: float) -> float:
    return max(float(v), KL_MIN) if np.isfinite(v) else np.nan


def flow_figure(times: Sequence[float], steps: Sequence[int], panels: Sequence[Any],
                curve: Sequence[Any], box: Sequence[float], *, eps: float,
                rate: float | None = None, drift: Any = None, frame_ms: int = 250,
                height: int = 540, title: str | None = None,
                view: Sequence[float] | None = None) -> go.Figure:
    """The exact law rho_t and the chains' histogram at step k = t / eps, and the KL curves.

    Args:
        times, steps: the frames' times ``t`` and SGLD steps ``k`` (``t = k eps``).
        panels: one ``SideBySide`` per frame (both densities on one colour scale).
        curve: ``ParticleFrame`` s of every recorded step (the KL curves' points).
        box: the target's box (the grid the densities live on).
        rate: for a Gaussian target, the smallest eigenvalue of its precision ``A``; drawn
            as the slope ``exp(-2 rate t)`` of the exact KL's late decay.
        drift: an optional ``DriftField`` drawn over both panels.
        view: the panels' axes (the box framing the density); ``box`` if None.
    """
    layout = {}
    doms = ([0.0, 0.28], [0.32, 0.6], [0.75, 1.0])
    for k, (xr, yr) in enumerate((("xaxis", "yaxis"), ("xaxis2", "yaxis2"))):
        ax = box_axes(view or box, xr, yr, "x" if k == 0 else "x2",
                      y_title="y" if k == 0 else None)
        ax[xr]["domain"] = doms[k]
        ax[yr]["anchor"] = "x" if k == 0 else "x2"
        ax[xr]["anchor"] = "y" if k == 0 else "y2"
        layout.update(ax)
    t_all = np.array([c.t for c in curve], dtype=np.float64)
    kl_exact = np.array([_kl(c.kl_exact) for c in curve])
    kl_hist = np.array([_kl(c.kl_hist) for c in curve])
    floor = np.array([_kl(c.kl_floor) for c in curve])
    t_hi = float(t_all.max()) if len(t_all) else 1.0
    finite = np.concatenate([kl_exact, kl_hist, floor])
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 1.0
    layout["xaxis3"] = dict(domain=doms[2], anchor="y3", range=[0, t_hi * 1.02],
                            title=dict(text="t = k·ε"))
    layout["yaxis3"] = dict(anchor="x3", type="log", title=dict(text="KL(· ‖ p) (nats)"),
                            range=[np.log10(KL_MIN), np.log10(max(top, 1e-4)) + 0.15],
                            exponentformat="power")
    first = panels[0] if panels else None  # the page opens at t = 0: press play
    data: list[dict] = []
    if first is not None:
        z = _zmax(first)
        data.append(_heat(np.asarray(f32(first.exact)), box, z, "x", "y", "exact ρ_t", False))
        data.append(_heat(np.asarray(f32(first.particles)), box, z, "x2", "y2",
                          "chains' histogram", True))
    data += [
        dict(type="scatter", x=f32(t_all), y=f32(floor), mode="lines", name="finite-N floor",
             line=dict(color="#adb5bd", dash="dot", width=1.5), xaxis="x3", yaxis="y3",
             hovertemplate="t = %{x:.3g}: floor %{y:.3g}<extra></extra>"),
        dict(type="scatter", x=f32(t_all), y=f32(kl_exact), mode="lines",
             name="KL(ρ_t ‖ p), exact", line=dict(color=COLORS["exact"], width=2.2),
             xaxis="x3", yaxis="y3", hovertemplate="t = %{x:.3g}: %{y:.3g}<extra></extra>"),
        dict(type="scatter", x=f32(t_all), y=f32(kl_hist), mode="lines+markers",
             name="KL(histogram ‖ p), SGLD", line=dict(color=COLORS["sgld"], width=1.6),
             marker=dict(size=4), xaxis="x3", yaxis="y3",
             hovertemplate="t = %{x:.3g}: %{y:.3g}<extra></extra>"),
    ]
    if rate is not None and len(t_all) > 2:
        # anchor the slope on the exact curve at a third of the way, where it is well resolved
        i = len(t_all) // 3
        ref = kl_exact[i] if np.isfinite(kl_exact[i]) else 1.0
        guide = ref * np.exp(-2 * rate * (t_all - t_all[i]))
        data.append(dict(type="scatter", x=f32(t_all), y=f32(np.maximum(guide, KL_MIN / 10)),
                         mode="lines", name=f"slowest decay e^(−2λt), λ = λ_min(A) = {rate:.3g}",
                         line=dict(color="#2b8a3e", dash="dash", width=1.2), xaxis="x3",
                         yaxis="y3", hoverinfo="skip"))
    cursor = len(data)  # the current time on the KL panel
    data.append(_cursor(times[0] if len(times) else 0.0, top))
    if drift is not None:
        data += drift_traces(drift, xref="x", yref="y")
        data += drift_traces(drift, xref="x2", yref="y2", show_legend=False)
    frames = []
    for t, k, p in zip(times, steps, panels, strict=True):
        frames.append(dict(name=f"{t:.6g}", traces=[0, 1, cursor], data=[
            dict(type="heatmap", z=f32(p.exact), zmax=_zmax(p)),
            dict(type="heatmap", z=f32(p.particles), zmax=_zmax(p)),
            _cursor(t, top)], layout=dict(title=dict(text=_when(t, k, eps)))))
    still, play = animate_args(frame_ms)
    layout["updatemenus"] = play_pause(still, play, y=-0.26)
    layout["sliders"] = [dict(
        active=0, x=0.16, y=-0.23, len=0.84, yanchor="top",
        pad=dict(t=0, b=0), font=dict(size=10),
        currentvalue=dict(visible=False),  # the title names the time and the step
        steps=[dict(label=f"{t:.3g}" if i % max(1, round(len(times) / 10)) == 0 else "",
                    method="animate", args=[[f"{t:.6g}"], still])
               for i, t in enumerate(times)])]
    layout["annotations"] = [
        dict(text=text, x=(d[0] + d[1]) / 2, y=1.0, xref="paper", yref="paper",
             xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=14))
        for text, d in (("exact law ρ_t (Fokker–Planck)", doms[0]),
                        (f"SGLD chains at step k (ε = {eps:g})", doms[1]),
                        ("distance to the target", doms[2]))]
    when = _when(times[0], steps[0], eps) if len(times) else ""
    fig = figure(data, layout, height=height, title=title or when, frames=frames)
    fig.layout.margin.b = 200
    fig.layout.margin.t = 75
    fig.layout.legend = dict(orientation="h", yanchor="top", y=-0.5, xanchor="right", x=1,
                             font=dict(size=12))
    return fig


def _when(t: float, k: int, eps: float) -> str:
    return f"t = {t:.4g}: the exact law ρ_t beside SGLD after k = {k:,} steps of ε = {eps:g}"


def _zmax(p: Any) -> float:
    """The frame's one colour scale for both panels (a point start is a spike at t = 0)."""
    z = float(p.zmax)
    return z if np.isfinite(z) and z > 0 else 1.0


def _cursor(t: float, top: float) -> dict:
    return dict(type="scatter", x=[float(t), float(t)], y=[KL_MIN, max(top, 1e-4)],
                mode="lines", name="now", showlegend=False, hoverinfo="skip",
                line=dict(color="#868e96", width=1), xaxis="x3", yaxis="y3")


def tv_figure(curve: Sequence[Any], *, height: int = 300) -> go.Figure:
    """Total variation between the chains' histogram at step k and rho_t, with its floor."""
    t = f32([c.t for c in curve])
    data = [
        dict(type="scatter", x=t, y=f32([c.tv_floor for c in curve]), mode="lines",
             name="floor for iid draws from ρ_t", line=dict(color="#adb5bd", dash="dot")),
        dict(type="scatter", x=t, y=f32([c.tv for c in curve]), mode="lines+markers",
             name="TV(histogram at step k, ρ_{kε})", marker=dict(size=4),
             line=dict(color=COLORS["sgld"]),
             hovertemplate="t = %{x:.3g}: %{y:.3g}<extra></extra>"),
    ]
    layout = dict(xaxis=dict(title=dict(text="t = k·ε"), rangemode="tozero"),
                  yaxis=dict(title=dict(text="total variation"), rangemode="tozero"))
    return figure(data, layout, height=height,
                  title="Do the chains follow the law of their time? (TV against ρ_t)")
