"""Page building blocks shared by the pages: charts, numbers, tables, exports.

Streamlit calls live here so the pages read as a short sequence of sections.
Nothing here computes numerics: numbers come from ebmcore records
(``RunSummary``, ``Trace``), tables and CSV files are formatting.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.live_chart import live_chart
from dashboard.live_view import FRAME_S
from dashboard.safe_text import md

__all__ = [
    "chart",
    "compact",
    "download_csv",
    "download_html",
    "figures_html",
    "fmt",
    "markdown_table",
    "metric",
    "moments_table",
    "summary_metrics",
]

PLOTLY_CONFIG = {"displaylogo": False, "scrollZoom": False,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d"],
                 "toImageButtonOptions": {"format": "png", "scale": 2}}


def chart(fig: go.Figure | Sequence[go.Figure], *, live: str | None = None) -> None:
    """Draw a figure with our own styling (not Streamlit's theme); ``live``: the key of a
    live chart that each tick updates in place, ``fig`` then one figure or the states a
    live view captured in a tick (played back a live frame apart)."""
    if live is None:
        st.plotly_chart(fig, theme=None, config=PLOTLY_CONFIG)
    else:
        live_chart(fig, key=live, config=PLOTLY_CONFIG, gap_s=FRAME_S)


def fmt(v: Any, digits: int = 3) -> str:
    """A number for display; '—' for None / nan."""
    if v is None:
        return "—"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "—" if math.isnan(f) else ("∞" if f > 0 else "-∞")
    if abs(f) >= 1e7:
        return f"{f:.3e}"
    if abs(f) >= 1000:
        return f"{f:,.0f}"
    return f"{f:.{digits}g}"


def compact(v: Any) -> str:
    """Large counts short: 33,541 -> 33.5k."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "—"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(f) >= div:
            return f"{f / div:.3g}{suffix}"
    return f"{f:.3g}"


def metric(col: Any, label: str, value: str, note: str | None = None, help: str = "") -> None:
    """A bordered metric with a grey note under the value."""
    col.metric(label, value, delta=note, delta_color="off", delta_arrow="off", border=True,
               help=help or None)


def summary_metrics(s: Any, *, sampler: str, modes: Any = None) -> None:
    """The headline numbers of a RunSummary as a row of metrics; ``modes``: a
    :class:`ebmcore.exact.view.ModeReport` of where the chains sit."""
    d = s.discrepancy
    cols = st.columns(6)
    metric(cols[0], "log Z (exact)", fmt(s.log_z, 5), f"± {s.log_z_err:.0e} quadrature",
            "Grid quadrature of exp(−E) on the box; the error estimate compares two grids.")
    metric(cols[1], "discrepancy (TV)", fmt(d.tv), f"floor {fmt(d.floor, 2)} for iid",
            "Total variation between the histogram of the final positions and the exact bin "
            f"masses ({d.bins}×{d.bins} bins). The floor is what {d.n:,} exact independent "
            "samples would score on average: above it, the chains are off.")
    ess = [float(v) for v in s.ess]
    metric(cols[2], "ESS (min)", compact(min(ess)), f"x {compact(ess[0])} · y {compact(ess[1])}",
            "Bulk effective sample size over the frames after burn-in.")
    rh = [float(v) for v in s.rhat]
    separated = modes is not None and modes.separated
    metric(cols[3], "R-hat (max)", fmt(max(rh), 4),
           f"chains in {modes.occupied} separate modes" if separated else
           f"x {fmt(rh[0], 4)} · y {fmt(rh[1], 4)}",
           "Split R-hat (rank-normalised, folded); close to 1 when the chains agree."
           + (f" Here {modes.message}." if modes is not None and modes.significant > 1 else ""))
    acc = "—" if s.acceptance is None else f"{s.acceptance:.1%}"
    metric(cols[4], "acceptance", acc, "SGLD never rejects" if sampler == "sgld" else None,
            "Mean Metropolis acceptance after burn-in.")
    first = s.first_diverged_step
    metric(cols[5], "diverged chains", f"{s.n_diverged:,}",
            "all chains finite" if first is None else f"first at step {first:,}",
            "Chains that left the finite world; frozen and excluded from statistics.")
    if separated:
        st.info(f"**R-hat:** {modes.message}.", icon=":material/hub:")


def moments_table(s: Any) -> pd.DataFrame:
    """Mean and covariance: sample vs exact (and the exact SGLD-biased covariance)."""
    rows = []

    def row(name: str, mean: Any, cov: Any) -> None:
        rows.append({"": name,
                     "mean x": None if mean is None else float(mean[0]),
                     "mean y": None if mean is None else float(mean[1]),
                     "var x": float(cov[0][0]), "cov xy": float(cov[0][1]),
                     "var y": float(cov[1][1])})

    row("chains (final positions)", s.mean, s.cov)
    row("exact target", s.target_mean, s.target_cov)
    if s.sgld_cov is not None:
        # unadjusted Langevin on a Gaussian keeps the exact mean and widens the covariance
        row("exact SGLD stationary law at this ε", s.target_mean, s.sgld_cov)
    return pd.DataFrame(rows).set_index("")


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """``df`` as a Markdown table (its index the first column), numbers to ``digits``
    decimals, missing ones as a dash.  Markdown, not ``st.dataframe``: the page's text
    renderer is already loaded, while a data grid makes a first visit fetch and run 1.6 MB
    more of the browser's code before the page appears (measured)."""
    def cell(v: Any) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"

    head = [str(df.index.name or ""), *map(str, df.columns)]
    lines = ["| " + " | ".join(md(h) for h in head) + " |",
             "|" + "---|" + "---:|" * len(df.columns)]
    for name, row in df.iterrows():
        lines.append("| " + " | ".join([md(name), *map(cell, row.tolist())]) + " |")
    return "\n".join(lines)


def _csv(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.7g")
    return buf.getvalue().encode()


def download_csv(label: str, make: Callable[[], pd.DataFrame], file_name: str, *,
                 key: str) -> None:
    """A CSV download whose file is built only when clicked."""
    st.download_button(label, data=lambda: _csv(make()), file_name=file_name, mime="text/csv",
                       key=key, on_click="ignore", icon=":material/table:")


def figures_html(figs: Sequence[tuple[str, go.Figure]], title: str) -> str:
    """One self-contained, interactive HTML page with the figures (plotly.js inlined)."""
    parts = []
    for i, (name, fig) in enumerate(figs):
        body = fig.to_html(full_html=False, include_plotlyjs=i == 0, config=PLOTLY_CONFIG,
                           auto_play=False)
        parts.append(f"<h2>{name}</h2>\n{body}")
    style = ("body{font-family:Inter,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;"
             "color:#212529}h1{font-weight:600}h2{font-weight:500;font-size:1.1em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{style}</style></head><body><h1>{title}</h1>\n" + "\n".join(parts)
            + "</body></html>")


def download_html(label: str, make: Callable[[], Sequence[tuple[str, go.Figure]]], title: str,
                  file_name: str, *, key: str) -> None:
    """An HTML download of figures, built only when clicked."""
    st.download_button(label, data=lambda: figures_html(make(), title).encode(),
                       file_name=file_name, mime="text/html", key=key, on_click="ignore",
                       icon=":material/monitoring:")
