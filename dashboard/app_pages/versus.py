"""SGLD vs MAP: the same chains with and without noise, side by side; and an eps sweep."""

from __future__ import annotations

from dataclasses import asdict, replace

import pandas as pd
import streamlit as st

from dashboard import cache, live, panels, scheduler, state, url_build
from dashboard.figures import sampling as figures
from dashboard.live_view import SYNC_BUDGET_S, Stop, live_view
from dashboard.safe_text import md
from ebmcore.energies import ValidationError
from ebmcore.exact.summary import summarize
from ebmcore.exact.sweep import SweepConfig, eps_grid, sweep

PAGE = "versus"
ss = st.session_state


def _w(name: str) -> str:
    return state.widget_key(PAGE, name)


def sweep_config(values: dict) -> SweepConfig:
    lo, hi = float(values["sw_lo"]), float(values["sw_hi"])
    if not lo < hi:
        lo, hi = min(lo, hi) / 1.01, max(lo, hi) * 1.01
    return SweepConfig(eps=eps_grid(lo, hi, 10), chains=int(values["sw_chains"]),
                       temperature=float(values["T"]), seed=int(values["seed"])).validate(
                           scheduler.SESSION_BUDGET)  # the whole sweep, priced before it runs


def twin_live(keys: tuple, gd, titles) -> None:
    """SGLD and MAP chains side by side while both run."""

    def job() -> tuple | None:
        runs = state.get(ss, "run", PAGE)
        return runs if runs is not None and runs[0].key == keys[0] else None

    def draw(runs: tuple, traces: list) -> None:
        st.progress(runs[0].fraction, text=f"step {runs[0].step:,} of {runs[0].total:,}")
        shown = [(a, b) for a, b in traces if a is not None and b is not None]
        if shown:
            # not LIVE_POINTS: moved without a redraw, the two panels' SVG points lost the
            # contours of both and the right panel's points (seen in Chromium); WebGL redraws
            panels.chart([figures.twin_figure(gd, a.x[a.alive], b.x[b.alive], titles=titles)
                          for a, b in shown], live=_w("live_chart"))

    def stop(runs: tuple) -> None:
        for r in runs:
            live.stop(r)

    live_view(job, step=live.advance_all, done=lambda runs: all(r.finished for r in runs),
              draw=draw, capture=lambda runs: (runs[0].trace, runs[1].trace),
              stop=Stop("stop", _w("stop"), stop))


def sweep_section(tkey: tuple, values: dict) -> None:
    st.markdown("### The bias of unadjusted Langevin: discrepancy against ε")
    st.caption("For each ε, thousands of independent chains run for the same integration time "
               "ε·steps from uniform starts; their final positions are compared with the exact "
               "density. SGLD's error grows with ε; MALA's Metropolis test removes it.")
    try:
        cfg = sweep_config(values)
    except Exception as exc:
        st.error(f"sweep settings: {md(exc)}", icon=":material/error:")
        return
    key = (tkey, cfg)
    sw = state.get(ss, "sweep", PAGE)
    if sw is not None and sw.key != key:
        sw = None
        state.pop(ss, "sweep", PAGE)
    if sw is None:
        n_runs = len(cfg.eps) * len(cfg.samplers)
        if st.button(f"run the sweep ({n_runs} runs of {cfg.chains:,} chains)",
                     key=_w("sweep_go"), type="primary", icon=":material/play_arrow:"):
            target, gd = cache.target(tkey), cache.density(tkey)
            sw = live.SweepRun(key, cfg, sweep(target, gd, cfg, budget=scheduler.SESSION_BUDGET))
            state.put(ss, "sweep", PAGE, sw)
            st.rerun()  # redraw without the button
        else:
            return
    eps_range = (min(cfg.eps), max(cfg.eps))
    if sw.events is not None:
        live.advance_sweep(sw, SYNC_BUDGET_S)
    running = sw.events is not None

    def job() -> live.SweepRun | None:
        cur = state.get(ss, "sweep", PAGE)
        return cur if cur is not None and cur.key == key else None

    def draw(cur: live.SweepRun) -> None:
        if cur.events is not None:
            st.progress(len(cur.points) / cur.total, text=f"{len(cur.points)} of {cur.total} runs")
        if cur.error:
            st.error(md(cur.error), icon=":material/report:")
        panels.chart(figures.sweep_figure(cur.points, eps_range=eps_range),
                     live=_w("sweep_chart") if cur.events is not None else None)
        div = [p for p in cur.points if p.n_diverged]
        if div and cur.events is None:
            w = min(div, key=lambda p: p.eps)
            st.warning(f"{w.n_diverged:,} of {cur.config.chains:,} {w.sampler.upper()} chains "
                       f"diverged at ε = {w.eps:g}: beyond the stability limit, lower ε.",
                       icon=":material/warning:")

    live_view(job, step=live.advance_sweep, done=lambda cur: cur.events is None, draw=draw,
              stop=Stop("stop the sweep", _w("sweep_stop"), live.stop_sweep, primary=False),
              running=running)
    if not running and sw.points:
        panels.download_csv("sweep CSV", lambda: pd.DataFrame([asdict(p) for p in sw.points]),
                            "eps_sweep.csv", key=_w("dl_sweep"))


def main() -> None:
    st.markdown("## SGLD vs MAP")
    st.caption("The same target, seed and initial points; left with the Langevin noise, right "
               "without it (gradient descent). Noise is what turns an optimiser into a sampler.")
    form = url_build.sampler_form(PAGE, with_sampler=False, sweep=True)
    tkey = form.target_key
    target, gd, view = cache.target(tkey), cache.density(tkey), cache.view_density(tkey)
    base = replace(form.config, sampler="sgld", noise=True)
    keys = ((tkey, base, form.auto, "sgld"), (tkey, base, form.auto, "map"))
    runs = state.get(ss, "run", PAGE)
    if runs is None or runs[0].key != keys[0]:
        try:
            cfg, why = url_build.run_inputs(tkey, base, form.auto)
        except ValidationError as exc:
            st.error(md(exc), icon=":material/error:")
            return
        # the same seed, so the same initial points: the noise is the only difference
        runs = (live.start(keys[0], target, cfg),
                live.start(keys[1], target, replace(cfg, noise=False)))
        runs[0].memo["auto"], runs[0].memo["cfg"] = why, cfg
        state.put(ss, "run", PAGE, runs)
    live.advance_all(runs, SYNC_BUDGET_S)
    cfg = runs[0].memo["cfg"]
    eps = f"{cfg.step_size:.3g} (auto)" if form.auto else f"{cfg.step_size:g}"
    titles = (f"SGLD (noise on) · ε = {eps}", "MAP (noise off): gradient descent")
    if runs[0].memo.get("auto"):
        st.caption(f"Automatic step size: {runs[0].memo['auto']}.")
    if not all(r.finished for r in runs):
        twin_live(keys, view, titles)
    else:
        results(runs, target, gd, view, titles)
    sweep_section(tkey, form.values)


def results(runs, target, gd, view, titles) -> None:
    a, b = runs
    for r in runs:
        if r.error:
            st.error(md(r.error), icon=":material/report:")
            return
        if "summary" not in r.memo:
            r.memo["summary"] = summarize(r.trace, target, gd)
    sa, sb = a.memo["summary"], b.memo["summary"]
    if a.trace.divergence_message():
        st.warning("SGLD: " + a.trace.divergence_message(), icon=":material/warning:")
    if b.trace.divergence_message():
        st.warning("MAP: " + b.trace.divergence_message(), icon=":material/warning:")
    if "figs" not in a.memo:
        a.memo["figs"] = {
            "twin": figures.twin_figure(view, a.trace.x[a.trace.alive], b.trace.x[b.trace.alive],
                                      titles=titles),
            "curves": figures.curves_figure(sa.likelihood_steps, sa.likelihood, sa.neg_entropy,
                                          a.trace.mean_energy, log_z=sa.log_z,
                                          total=a.trace.config.steps,
                                          map_likelihood=sb.likelihood,
                                          map_energy=b.trace.mean_energy),
        }
    figs = a.memo["figs"]
    c = st.columns(4)
    la, lb = float(sa.likelihood[-1]), float(sb.likelihood[-1])
    panels.metric(c[0], "SGLD: mean log p(x)", panels.fmt(la, 4),
                   f"exact E_p[log p] = {panels.fmt(sa.neg_entropy, 4)}",
                   "Mean log-density of the final positions; samples of p average E_p[log p].")
    panels.metric(c[1], "MAP: mean log p(x)", panels.fmt(lb, 4),
                   f"{lb - sa.neg_entropy:+.3g} above the exact level",
                   "Gradient descent piles the chains on the modes, where log p is highest: "
                   "a likelihood no sample of p has on average.")
    panels.metric(c[2], "SGLD discrepancy", panels.fmt(sa.discrepancy.tv),
                   f"floor {panels.fmt(sa.discrepancy.floor, 2)}")
    panels.metric(c[3], "MAP discrepancy", panels.fmt(sb.discrepancy.tv),
                   f"floor {panels.fmt(sb.discrepancy.floor, 2)}")
    panels.chart(figs["twin"])
    panels.chart(figs["curves"])
    def samples() -> pd.DataFrame:
        xa, xb = a.trace.x.double().numpy(), b.trace.x.double().numpy()
        return pd.DataFrame({"chain": range(len(xa)), "x0": a.trace.positions[0, :, 0].numpy(),
                             "y0": a.trace.positions[0, :, 1].numpy(), "x_sgld": xa[:, 0],
                             "y_sgld": xa[:, 1], "x_map": xb[:, 0], "y_map": xb[:, 1]})

    c = st.columns(4)
    with c[0]:
        panels.download_csv("samples CSV (both)", samples, "sgld_vs_map.csv",
                            key=_w("dl_samples"))
    with c[1]:
        panels.download_html("figures (HTML)", lambda: list(figs.items()),
                             "Langevin Lab — SGLD vs MAP", "sgld_vs_map.html",
                             key=_w("dl_html"))


main()
