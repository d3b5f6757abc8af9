"""Low-level pieces of our Plotly figures: plain-dict traces and layers, grids, style.

Figures are assembled from plain dicts and wrapped in ``go.Figure`` without
Plotly's per-property validation, which costs ~10x the build time of the
figure itself (tens of milliseconds per figure, too slow for a slider).  The
tests validate every builder's output by re-creating it with validation on.
No Streamlit import, no numerics beyond decimation for drawing.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "COLORS",
    "DENSITY_SCALE",
    "FONT",
    "GL_THRESHOLD",
    "MAX_CELLS",
    "MAX_FIGURE_BYTES",
    "animate_args",
    "axis_names",
    "box_axes",
    "decimate",
    "density_image",
    "density_trace",
    "drawn_points",
    "drawn_with",
    "f32",
    "figure",
    "figure_bytes",
    "grid_layout",
    "packed",
    "play_pause",
    "points_trace",
    "to_np",
]

MAX_FIGURE_BYTES = 500_000  # what one figure may weigh in the browser
GL_THRESHOLD = 1500  # above this many points, draw with WebGL
FONT = "Inter, 'Source Sans Pro', 'Helvetica Neue', Arial, sans-serif"
COLORS = {
    "chains": "#d9480f",  # the samples: a warm orange over the cool density
    "map": "#212529",  # gradient descent (noise off): dark, it sits on the darkest density
    "paths": "#212529",
    "exact": "#495057",  # exact references: dark grey, dashed
    "sgld": "#d9480f",
    "mala": "#2b8a3e",
    "hmc": "#7048e8",
    "data": "#1c7ed6",
    "negatives": "#d9480f",
    "test": "#868e96",
}
MAX_CELLS = 100  # density grid side drawn (the exact grid is decimated to about this)
DENSITY_SCALE = [[0.0, "#ffffff"], [0.1, "#eef3fa"], [0.35, "#c5d6ee"], [0.65, "#8badd9"],
                 [1.0, "#3d68aa"]]
AXIS = dict(gridcolor="#edf0f3", linecolor="#ced4da", zerolinecolor="#dee2e6", ticks="outside",
            tickcolor="#ced4da", showline=True, title=dict(standoff=8))


def to_np(a: Any) -> np.ndarray:
    """Tensor / array / list -> numpy (no copy when possible)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def f32(a: Any) -> np.ndarray:
    """As a contiguous float32 array: Plotly sends it as a compact base64 typed array."""
    return np.ascontiguousarray(to_np(a), dtype=np.float32)


def packed(a: Any) -> dict:
    """``a`` as float32 in Plotly's typed-array form (``dtype``, base64 ``bdata``, ``shape`` for
    2-D), as plotly.py writes a NumPy array to JSON, but built without its per-array checks
    and copies: for animation frames, where those took 0.5 ms an array (40 frames of the
    replay: 28 of its 40 ms).  The JSON sent is the same."""
    arr = f32(a)
    spec = {"dtype": "f4", "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}
    if arr.ndim > 1:
        spec["shape"] = ", ".join(str(k) for k in arr.shape)
    return spec


def decimate(n: int, cap: int) -> np.ndarray:
    """Indices of at most ``cap`` of ``n`` items, evenly spread, first and last kept."""
    if n <= cap:
        return np.arange(n)
    if cap <= 1:
        return np.array([n - 1]) if cap == 1 else np.array([], dtype=int)
    return np.unique(np.round(np.linspace(0, n - 1, cap)).astype(int))


def figure_bytes(fig: go.Figure) -> int:
    """Size in bytes of the JSON the browser receives for ``fig``."""
    return len(fig.to_json(validate=False).encode())


def axis_names(k: int) -> tuple[str, str]:
    """Layout keys and trace references of subplot ``k`` (1-based): ('xaxis2', 'x2')."""
    s = "" if k == 1 else str(k)
    return f"xaxis{s}", f"x{s}"


def grid_layout(rows: int, cols: int, *, titles: Sequence[str] = (), hspace: float = 0.08,
                vspace: float = 0.14) -> tuple[dict, list[tuple[str, str]]]:
    """Axes of a ``rows x cols`` grid of subplots, numbered row by row.

    Returns:
        ``(layout, refs)``: layout entries (axes and title annotations) and, per
        subplot, the ``(xref, yref)`` its traces use.
    """
    w = (1 - hspace * (cols - 1)) / cols
    h = (1 - vspace * (rows - 1)) / rows
    layout: dict = {"annotations": []}
    refs = []
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c + 1
            s = "" if k == 1 else str(k)
            x0, y1 = c * (w + hspace), 1 - r * (h + vspace)
            xd = [max(0.0, round(x0, 6)), min(1.0, round(x0 + w, 6))]
            yd = [max(0.0, round(y1 - h, 6)), min(1.0, round(y1, 6))]
            layout[f"xaxis{s}"] = dict(domain=xd, anchor=f"y{s}")
            layout[f"yaxis{s}"] = dict(domain=yd, anchor=f"x{s}")
            refs.append((f"x{s}", f"y{s}"))
            if k <= len(titles) and titles[k - 1]:
                layout["annotations"].append(dict(
                    text=titles[k - 1], x=x0 + w / 2, y=y1, xref="paper", yref="paper",
                    xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=14)))
    return layout, refs


def figure(data: list[dict], layout: dict, *, height: int, title: str | None = None,
           frames: list[dict] | None = None, legend: bool = True) -> go.Figure:
    """A styled figure from plain-dict traces and layout (no per-property validation)."""
    base = dict(
        height=height, paper_bgcolor="white", plot_bgcolor="white",
        margin=dict(l=55, r=20, t=55 if title else 35, b=45),
        font=dict(family=FONT, size=13, color="#212529"),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1,
                    bgcolor="rgba(255,255,255,0.6)"),
        showlegend=legend, hoverlabel=dict(font=dict(family=FONT)),
        uirevision="keep",  # zoom survives redraws of the same chart
    )
    if title:
        base["title"] = dict(text=title, x=0.01, xanchor="left", font=dict(size=15))
    for key, value in layout.items():
        if key.startswith(("xaxis", "yaxis")):
            value = {**AXIS, **value}
        base[key] = value
    for key in ("xaxis", "yaxis"):
        base.setdefault(key, dict(AXIS))
    spec: dict = {"data": data, "layout": base}
    if frames is not None:
        spec["frames"] = frames
    return go.Figure(spec, _validate=False)


def animate_args(frame_ms: int, *, redraw: bool = True) -> tuple[dict, dict]:
    """``Plotly.animate`` options of our players: ``still`` shows one frame at once (the
    slider, pause), ``play`` plays on from the current frame every ``frame_ms``."""
    still = dict(frame=dict(duration=0, redraw=redraw), transition=dict(duration=0),
                 mode="immediate")
    play = dict(frame=dict(duration=frame_ms, redraw=redraw), transition=dict(duration=0),
                mode="immediate", fromcurrent=True)
    return still, play


def play_pause(still: dict, play: dict, *, y: float,
               labels: tuple[str, str] = ("▶ play", "❚❚ pause")) -> list[dict]:
    """The ``updatemenus`` of a player: play and pause buttons at the left, at height ``y``."""
    return [dict(type="buttons", direction="left", x=0.0, y=y, xanchor="left", yanchor="top",
                 pad=dict(r=8, t=0), showactive=False,
                 buttons=[dict(label=labels[0], method="animate", args=[None, play]),
                          dict(label=labels[1], method="animate", args=[[None], still])])]


# -- layers shared by the figures ------------------------------------------------------


def density_trace(gd: Any, *, max_cells: int = MAX_CELLS, name: str = "p(x)",
                  xref: str = "x", yref: str = "y") -> dict:
    """Filled contours of an exact density (``gd``: a GridDensity), decimated for drawing."""
    stride = max(1, int(np.ceil(gd.n / max_cells)))
    z = f32(gd.density)[::stride, ::stride]
    top = float(z.max()) if z.size and np.isfinite(z).all() and z.max() > 0 else 1.0
    levels = 12  # equally spaced density levels; below the first one stays white
    return dict(
        type="contour", x=f32(gd.xs)[::stride], y=f32(gd.ys)[::stride], z=z, name=name,
        colorscale=DENSITY_SCALE, zmin=0.0, zmax=top, showscale=False, hoverinfo="skip",
        contours=dict(coloring="fill", showlines=True, start=top / levels, end=top,
                      size=top / levels),
        line=dict(width=0.6, color="rgba(61,104,170,0.5)"), showlegend=False,
        xaxis=xref, yaxis=yref,
    )


def _hex_rgb(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


def density_image(gd: Any, *, levels: int = 12) -> dict:
    """The density as a banded raster under the plot (a layout image).

    Plotly's animations drop contour and heatmap traces on the first frame, so
    the replay draws the density as a picture instead: the same 12 equally
    spaced bands and colours as :func:`density_trace`.
    """
    import io

    from PIL import Image

    d = to_np(gd.density).astype(np.float64)
    top = float(d.max()) if d.size and np.isfinite(d).all() and d.max() > 0 else 1.0
    band = np.clip(np.floor(d / top * levels), 0, levels) / levels  # 0 below the first level
    stops = np.array([s for s, _ in DENSITY_SCALE])
    rgb = np.stack([np.interp(band, stops, [_hex_rgb(c)[i] for _, c in DENSITY_SCALE])
                    for i in range(3)], axis=-1)
    img = Image.fromarray(np.flipud(rgb).astype(np.uint8), "RGB")  # row 0 is the top
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    x0, x1, y0, y1 = (float(v) for v in gd.box)
    return dict(source="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
                xref="x", yref="y", x=x0, y=y1, sizex=x1 - x0, sizey=y1 - y0,
                sizing="stretch", layer="below", opacity=1.0)


def points_trace(points: np.ndarray, *, name: str, color: str, size: float = 4.0,
                 opacity: float = 0.75, gl: bool | None = None, outline: float = 0.0,
                 xref: str = "x", yref: str = "y") -> dict:
    """Markers for ``(n, 2)`` points; WebGL when there are many (or when ``gl``)."""
    use_gl = len(points) > GL_THRESHOLD if gl is None else gl
    return dict(
        type="scattergl" if use_gl else "scatter", x=points[:, 0], y=points[:, 1],
        mode="markers", name=name, xaxis=xref, yaxis=yref,
        marker=dict(size=size, color=color, opacity=opacity,
                    line=dict(width=outline, color="white")),
        hovertemplate="(%{x:.3f}, %{y:.3f})<extra></extra>",
    )


def drawn_points(points: Any, cap: int) -> tuple[np.ndarray, int]:
    """At most ``cap`` finite rows of ``points`` as float32, and how many there were."""
    p, _, n = drawn_with(points, None, cap)
    return p, n


def drawn_with(points: Any, values: Any, cap: int) -> tuple[np.ndarray, Any, int]:
    """:func:`drawn_points` with a value per point (or None) kept alongside its point."""
    p = f32(points).reshape(-1, 2)
    n = len(p)
    keep = np.isfinite(p).all(axis=1)
    pick = decimate(int(keep.sum()), cap)
    v = None if values is None else np.asarray(values).reshape(-1)[keep][pick]
    return p[keep][pick], v, n


def box_axes(box: Sequence[float], x: str = "xaxis", y: str = "yaxis", anchor: str = "x",
             *, y_title: str | None = "y") -> dict:
    """Layout entries fixing both axes to the box, with equal scales."""
    x0, x1, y0, y1 = (float(v) for v in box)
    common = dict(zeroline=False, showgrid=False, mirror=True, constrain="domain",
                  autorange=False)
    return {x: dict(range=[x0, x1], title=dict(text="x"), **common),
            y: dict(range=[y0, y1], title=dict(text=y_title), scaleanchor=anchor, scaleratio=1,
                    **common)}
