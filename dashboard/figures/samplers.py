"""Figures of the Langevin family: phase space, the equal-gradient race, mode weights, and
MALA / HMC proposals step by step.

Pure builders over the plain records of :mod:`ebmcore.sampling.compare` and
:mod:`ebmcore.sampling.stepwise` (data in, ``go.Figure`` out).  The step-by-step
figure carries every step as a Plotly frame, so it plays in the browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.figkit import (
    COLORS,
    animate_args,
    box_axes,
    density_image,
    density_trace,
    f32,
    figure,
    play_pause,
)

__all__ = ["modes_figure", "phase_figure", "race_figure", "stepwise_figure"]

CHAIN_COLORS = ("#1c7ed6", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#0c8599", "#e67700",
                "#495057")
ACCEPT, REJECT = "#2b8a3e", "#e03131"
COLORS_FAMILY = {"underdamped": "#1c7ed6", "sgld": COLORS["sgld"], "annealed": "#2b8a3e",
                 "plain": COLORS["sgld"], "exact": "#868e96"}


def _arr(v: Any) -> np.ndarray:
    """A record's nested lists as float64, ``None`` as nan."""
    return np.array(v, dtype=np.float64)


def phase_figure(rec: dict, gd: Any, *, coord: int = 0, temperature: float = 1.0,
                 height: int = 470, view: Sequence[float] | None = None) -> go.Figure:
    """Underdamped chains: positions over the density (left) and phase space x_i vs v_i (right).

    Args:
        rec: :func:`ebmcore.sampling.compare.phase_space`'s record.
        coord: which coordinate's phase plane to draw (0: x, 1: y).
        view: the box the positions are drawn in (framing the density); ``gd.box`` if None.
    """
    x, v = _arr(rec["x"]), _arr(rec["v"])  # (S, K, 2)
    name = "xy"[coord]
    box = view or gd.box
    layout = box_axes(box)
    layout["xaxis"]["domain"] = [0.0, 0.42]
    # fixed ranges: the box, and the Maxwellian's scale (a diverged chain leaves the picture
    # instead of stretching it to 1e100)
    lo_x, hi_x = (float(b) for b in box[2 * coord: 2 * coord + 2])
    fin = np.abs(v[..., coord][np.isfinite(v[..., coord])])
    vmax = float(np.clip(np.quantile(fin, 0.99) if fin.size else 0.0, 3.0, 10.0)) * np.sqrt(
        temperature) * 1.1
    layout["xaxis3"] = dict(domain=[0.52, 1.0], anchor="y3", title=dict(text=f"position {name}"),
                            zeroline=False, range=[lo_x, hi_x])
    layout["yaxis3"] = dict(anchor="x3", title=dict(text=f"velocity v_{name}"), zeroline=True,
                            range=[-vmax, vmax])
    data = [density_trace(gd)]
    band = 2.0 * np.sqrt(temperature)  # Maxwellian N(0, T): 95% of the velocities in ±2√T
    lo, hi = lo_x, hi_x
    for sgn in (-1, 1):
        data.append(dict(type="scatter", x=[lo, hi], y=[sgn * band] * 2, mode="lines",
                         name="±2√T (Maxwellian)", legendgroup="mw", showlegend=sgn > 0,
                         line=dict(color="#adb5bd", dash="dot", width=1), hoverinfo="skip",
                         xaxis="x3", yaxis="y3"))
    for k in range(x.shape[1]):
        c = CHAIN_COLORS[k % len(CHAIN_COLORS)]
        common = dict(mode="lines", legendgroup=f"c{k}", line=dict(color=c, width=1.2),
                      opacity=0.85, hoverinfo="skip")
        data.append(dict(type="scatter", x=f32(x[:, k, 0]), y=f32(x[:, k, 1]),
                         name=f"chain {k + 1}", showlegend=False, **common))
        data.append(dict(type="scatter", x=f32(x[:, k, coord]), y=f32(v[:, k, coord]),
                         name=f"chain {k + 1}", showlegend=False, xaxis="x3", yaxis="y3",
                         **common))
        for xr, yr, px, py in (("x", "y", x[0, k, 0], x[0, k, 1]),
                               ("x3", "y3", x[0, k, coord], v[0, k, coord])):
            data.append(dict(type="scatter", x=[px], y=[py], mode="markers", name="start",
                             legendgroup="start", showlegend=k == 0 and xr == "x",
                             marker=dict(symbol="circle-open", size=9, color=c,
                                         line=dict(width=2)),
                             hoverinfo="skip", xaxis=xr, yaxis=yr))
    layout["annotations"] = [
        dict(text=t, x=x0, y=1.0, xref="paper", yref="paper", xanchor="center",
             yanchor="bottom", showarrow=False, font=dict(size=14))
        for t, x0 in (("positions over p(x)", 0.21), (f"phase space ({name}, v_{name})", 0.76))]
    title = (f"Underdamped Langevin (BAOAB) · ε = {rec['step_size']:g} · "
             f"friction γ = {rec['friction']:g} · {len(x) - 1:,} steps")
    fig = figure(data, layout, height=height, title=title)
    fig.layout.legend = dict(orientation="h", yanchor="top", y=-0.16, xanchor="right", x=1)
    fig.layout.margin.b = 80
    return fig


def race_figure(rec: dict, *, height: int = 380) -> go.Figure:
    """Discrepancy of the chains' histogram against gradient evaluations, both samplers."""
    s = f32(rec["steps"])
    data = [
        dict(type="scatter", x=[float(s[0]), float(s[-1])], y=[rec["floor"]] * 2, mode="lines",
             name=f"floor for {rec['chains']:,} iid samples",
             line=dict(color="#adb5bd", dash="dot"), hoverinfo="skip"),
        dict(type="scatter", x=s, y=f32(rec["sgld"]), mode="lines+markers",
             name=f"overdamped (SGLD), ε = {rec['sgld_step_size']:g}",
             line=dict(color=COLORS_FAMILY["sgld"]), marker=dict(size=5),
             hovertemplate="%{x:,} gradients: TV %{y:.3g}<extra>SGLD</extra>"),
        dict(type="scatter", x=s, y=f32(rec["underdamped"]), mode="lines+markers",
             name=f"underdamped (BAOAB), ε = {rec['underdamped_step_size']:g}",
             line=dict(color=COLORS_FAMILY["underdamped"]), marker=dict(size=5),
             hovertemplate="%{x:,} gradients: TV %{y:.3g}<extra>underdamped</extra>"),
    ]
    layout = dict(xaxis=dict(title=dict(text="gradient evaluations per chain (= steps)")),
                  yaxis=dict(title=dict(text="discrepancy (TV) to p"), type="log",
                             exponentformat="power"))
    return figure(data, layout, height=height,
                  title="Overdamped against underdamped at equal cost")


def modes_figure(rec: dict, *, height: int = 380) -> go.Figure:
    """Mass per mode: exact (with ±2 standard errors of iid draws), annealed, plain."""
    c = _arr(rec["centres"])
    c = np.round(c, 6) + 0.0  # cos(pi/2) prints as 6e-17, -0.0 as "-0"
    labels = [f"mode {i + 1}<br>({cx:.2g}, {cy:.2g})" for i, (cx, cy) in enumerate(c)]
    se = f32(rec["se"])
    data = [
        dict(type="bar", x=labels, y=f32(rec["exact"]), name="exact weight (±2 s.e.)",
             marker=dict(color=COLORS_FAMILY["exact"]),
             error_y=dict(type="data", array=2 * se, color="#495057", thickness=1.2, width=3),
             hovertemplate="%{x}: %{y:.3f}<extra>exact</extra>"),
        dict(type="bar", x=labels, y=f32(rec["annealed"]), name="annealed Langevin",
             marker=dict(color=COLORS_FAMILY["annealed"]),
             hovertemplate="%{x}: %{y:.3f}<extra>annealed</extra>"),
        dict(type="bar", x=labels, y=f32(rec["plain"]), name="plain Langevin (SGLD)",
             marker=dict(color=COLORS_FAMILY["plain"]),
             hovertemplate="%{x}: %{y:.3f}<extra>plain</extra>"),
    ]
    layout = dict(barmode="group", bargap=0.25, xaxis=dict(title=dict(text="")),
                  yaxis=dict(title=dict(text="mass of the mode"), rangemode="tozero"))
    return figure(data, layout, height=height,
                  title="Mass per mode from the same uneven start")


def _segments(starts: np.ndarray, paths: list, keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """Polylines start -> path points of the chains in ``keep``, nan-separated; their ends."""
    xs, ys, ex, ey = [], [], [], []
    for k in np.flatnonzero(keep):
        p = np.array([[np.nan, np.nan] if q is None or None in q else q for q in paths[k]],
                     dtype=np.float64)
        pts = np.vstack([starts[k][None], p]) if len(p) == 1 else p
        pts = np.where(np.abs(pts) < 1e30, pts, np.nan)  # a blown-up leapfrog path: a gap
        xs += [*pts[:, 0], np.nan]
        ys += [*pts[:, 1], np.nan]
        ex.append(pts[-1, 0])
        ey.append(pts[-1, 1])
    return tuple(f32(np.array(a, dtype=np.float64)) for a in (xs, ys, ex, ey))


def _step_traces(rec: dict, s: int) -> tuple[list[dict], str]:
    x0 = _arr(rec["x"][s])
    acc = np.array(rec["accepted"][s], dtype=bool)
    la = _arr(rec["log_alpha"][s])
    ax, ay, aex, aey = _segments(x0, rec["path"][s], acc)
    rx, ry, rex, rey = _segments(x0, rec["path"][s], ~acc)
    traces = [
        dict(type="scatter", x=f32(x0[:, 0]), y=f32(x0[:, 1])),
        dict(type="scatter", x=ax, y=ay), dict(type="scatter", x=rx, y=ry),
        dict(type="scatter", x=aex, y=aey, customdata=f32(la[acc])),
        dict(type="scatter", x=rex, y=rey, customdata=f32(la[~acc])),
        dict(type="scatter", x=[s + 1], y=[rec["overall_rate"][s]]),
    ]
    finite = la[np.isfinite(la)]
    mean = f"{finite.mean():.3g}" if finite.size == la.size else "−∞"  # None in JSON: alpha 0
    text = (f"step {s + 1} of {len(rec['x'])} · {int(acc.sum())} of {len(acc)} accepted · "
            f"mean log α = {mean} · running acceptance {rec['overall_rate'][s]:.0%}")
    return traces, text


def _every(i: int, n: int) -> str:
    """Slider label of step ``i`` of ``n``: about ten labelled ticks, the rest blank."""
    every = max(1, round(n / 10))
    return str(i) if i == 1 or i % every == 0 else ""


def stepwise_figure(rec: dict, gd: Any, *, frame_ms: int = 600, height: int = 640,
                    view: Sequence[float] | None = None) -> go.Figure:
    """MALA / HMC one step at a time: each chain's proposal (the leapfrog path for HMC),
    accepted in green, rejected in red; log alpha on hover; the running acceptance rate.

    Args:
        rec: :func:`ebmcore.sampling.stepwise.step_by_step`'s record.
        view: the box the chains are drawn in (framing the density); ``gd.box`` if None.
    """
    n = len(rec["x"])
    layout = box_axes(view or gd.box)
    layout["xaxis"]["domain"] = [0.0, 0.58]
    layout["images"] = [density_image(gd)]  # animations drop contour traces: a picture stays
    layout["xaxis3"] = dict(domain=[0.68, 1.0], anchor="y3", range=[0.5, n + 0.5],
                            title=dict(text="step"))
    layout["yaxis3"] = dict(anchor="x3", range=[0, 1.05], title=dict(text="acceptance rate"),
                            tickformat=".0%")
    first, text0 = _step_traces(rec, 0)
    hover = "log α = %{customdata:.3g}<extra></extra>"
    style = [
        dict(mode="markers", name="chains", marker=dict(size=9, color="#212529",
                                                         line=dict(width=1, color="white")),
             hovertemplate="(%{x:.2f}, %{y:.2f})<extra>chain</extra>"),
        dict(mode="lines", name="accepted proposal", line=dict(color=ACCEPT, width=2),
             hoverinfo="skip", legendgroup="acc"),
        dict(mode="lines", name="rejected proposal", line=dict(color=REJECT, width=2, dash="dot"),
             hoverinfo="skip", legendgroup="rej"),
        dict(mode="markers", name="accepted", showlegend=False, legendgroup="acc",
             marker=dict(size=10, color=ACCEPT, symbol="circle"), hovertemplate=hover),
        dict(mode="markers", name="rejected", showlegend=False, legendgroup="rej",
             marker=dict(size=10, color=REJECT, symbol="x"), hovertemplate=hover),
        dict(mode="markers", name="now", showlegend=False, xaxis="x3", yaxis="y3",
             marker=dict(size=10, color="#212529"), hoverinfo="skip"),
    ]
    data = [{**t, **s} for t, s in zip(first, style, strict=True)]
    data.append(dict(type="scatter", x=f32(np.arange(1, n + 1)), y=f32(rec["overall_rate"]),
                     mode="lines", name="running acceptance (all chains)", xaxis="x3",
                     yaxis="y3", line=dict(color="#868e96", width=1.5),
                     hovertemplate="step %{x}: %{y:.0%}<extra></extra>"))
    frames, texts = [], []
    for s in range(n):
        traces, text = _step_traces(rec, s)
        texts.append(text)
        frames.append(dict(name=str(s + 1), data=traces, traces=list(range(6)),
                           layout=dict(title=dict(text=text))))
    still, play = animate_args(frame_ms)
    layout["updatemenus"] = play_pause(still, play, y=-0.17)
    layout["sliders"] = [dict(
        active=0, x=0.16, y=-0.14, len=0.84, yanchor="top", pad=dict(t=0, b=0),
        currentvalue=dict(visible=False), font=dict(size=10),  # the title names the step
        steps=[dict(label=_every(s + 1, n), method="animate", args=[[str(s + 1)], still])
               for s in range(n)])]
    fig = figure(data, layout, height=height, title=text0, frames=frames)
    fig.layout.margin.b = 170
    fig.layout.legend = dict(orientation="h", yanchor="top", y=-0.3, xanchor="right", x=1)
    return fig
