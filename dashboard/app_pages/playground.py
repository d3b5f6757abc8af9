"""Langevin playground: chains of SGLD / MALA / HMC over an exact density, live."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from dashboard import cache, live, panels, state, url_build
from dashboard.arviz_button import arviz_download
from dashboard.figures import sampling as figures
from dashboard.live_view import SYNC_BUDGET_S, Stop, live_view
from dashboard.safe_text import md
from dashboard.url_fields import SAMPLER_LABELS
from ebmcore.exact.diagnostics import likelihood_curve
from ebmcore.exact.summary import summarize
from ebmcore.exact.view import chains_in_modes

PAGE = "playground"
ss = st.session_state


def _w(name: str) -> str:
    return state.widget_key(PAGE, name)


def watch(run_key: tuple, gd, title: str) -> None:
    """Chains moving over the density while the run computes."""

    def job() -> live.LiveRun | None:
        r = state.get(ss, "run", PAGE)
        return r if r is not None and r.key == run_key else None

    def draw(r: live.LiveRun, traces: list) -> None:
        what = "tuning ε by dual averaging · " if r.adapting else ""
        st.progress(r.fraction, text=f"{what}step {r.step:,} of {r.total:,} · "
                                     f"{r.rate:,.0f} steps/s")
        shown = [tr for tr in traces if tr is not None]  # the run's traces during the tick
        if shown:
            panels.chart([figures.chains_figure(gd, tr.x[tr.alive], paths=tr.paths,
                                                title=title, max_points=figures.LIVE_POINTS)
                          for tr in shown], live=_w("live_chart"))

    live_view(job, step=live.advance, done=lambda r: r.finished, draw=draw,
              capture=lambda r: r.trace, stop=Stop("stop", _w("stop"), live.stop))


def final_figures(r: live.LiveRun, gd, view, title: str) -> dict:
    """The page's figures for a finished run (built once per run): the density drawn on
    its view box (``view``), the exact numbers from the full box's ``gd``.  The replay is
    :func:`replay_figure`'s, built only when asked for."""
    tr = r.trace
    if "figs" not in r.memo:
        pts = tr.x[tr.alive]
        r.memo["figs"] = {
            "chains": figures.chains_figure(view, pts, paths=tr.paths, title=title),
            "marginals": figures.marginals_figure(view, pts),
            "curves": figures.curves_figure(tr.steps, likelihood_curve(tr.mean_energy, gd.log_z),
                                          gd.neg_entropy, tr.mean_energy, log_z=gd.log_z,
                                          burn_in=tr.config.burn_in, total=tr.config.steps),
        }
    return r.memo["figs"]


def replay_figure(r: live.LiveRun, view, title: str):
    """The finished run as a browser-side animation (built once per run, when its tab is
    opened or the figures are exported: a third of the figures' time at the defaults)."""
    if "replay" not in r.memo:
        tr = r.trace
        r.memo["replay"] = figures.replay_figure(view, tr.steps, tr.positions, title=title)
    return r.memo["replay"]


def exports(r: live.LiveRun, gd, view, figs: dict, title: str) -> None:
    tr = r.trace

    def html_figures() -> list:
        return [("chains", figs["chains"]), ("replay", replay_figure(r, view, title)),
                *((k, v) for k, v in figs.items() if k != "chains")]

    def samples() -> pd.DataFrame:
        x = tr.x.double().numpy()
        return pd.DataFrame({"chain": range(len(x)), "x": x[:, 0], "y": x[:, 1],
                             "alive": tr.alive.numpy()})

    def trace_df() -> pd.DataFrame:
        return pd.DataFrame({"step": tr.steps.numpy(), "mean_energy": tr.mean_energy.numpy(),
                             "mean_log_p": likelihood_curve(tr.mean_energy, gd.log_z)})

    def paths_df() -> pd.DataFrame:
        k, p = tr.paths.shape[:2]
        xy = tr.paths.double().reshape(-1, 2).numpy()
        return pd.DataFrame({"chain": [i for i in range(k) for _ in range(p)],
                             "step": list(tr.path_steps.numpy()) * k,
                             "x": xy[:, 0], "y": xy[:, 1]})

    c = st.columns(5)
    with c[0]:
        panels.download_csv("samples CSV", samples, "samples.csv", key=_w("dl_samples"))
    with c[1]:
        panels.download_csv("trace CSV", trace_df, "trace.csv", key=_w("dl_trace"))
    with c[2]:
        panels.download_csv("trajectories CSV", paths_df, "trajectories.csv",
                            key=_w("dl_paths"))
    with c[3]:
        panels.download_html("figures (HTML)", html_figures,
                             f"Langevin Lab — {title}", "langevin_lab.html", key=_w("dl_html"))
    with c[4]:
        arviz_download(tr, cache.target(r.key[0]), key=_w("dl_arviz"))


def main() -> None:
    st.markdown("## Langevin playground")
    st.caption("Chains of a Langevin-type sampler over the exact density p(x) = exp(−E(x)) / Z, "
               "normalised by quadrature on the box, so every number below is exact.")
    form = url_build.sampler_form(PAGE)
    tkey = form.target_key
    target, gd, view = cache.target(tkey), cache.density(tkey), cache.view_density(tkey)
    run_key = (tkey, form.config, form.auto)
    r = state.get(ss, "run", PAGE)
    if r is None or r.key != run_key:  # auto: eps is chosen inside the run, live
        r = (live.start_auto(run_key, target, form.config, gd) if form.auto
             else live.start(run_key, target, form.config))
        state.put(ss, "run", PAGE, r)
    if not r.finished:
        live.advance(r, SYNC_BUDGET_S)
    cfg = form.config if r.step_size is None else replace(form.config, step_size=r.step_size)
    r.memo["cfg"] = cfg  # the eps an automatic choice settled on
    name = "formula" if tkey[0] == "formula" else tkey[0]
    mode = "gradient descent (noise off)" if not cfg.noise else SAMPLER_LABELS[cfg.sampler]
    eps = (f"{cfg.step_size:.3g} (auto)" if r.step_size is not None
           else "auto (tuning)" if form.auto else f"{cfg.step_size:g}")
    title = f"{name} · {mode} · ε = {eps} · {cfg.chains:,} chains"
    if r.explanation:
        st.caption(f"Automatic step size: {r.explanation}.")
    if not r.finished:
        watch(run_key, view, title)
        return
    if r.error:
        st.error(md(r.error), icon=":material/report:")
        return
    tr = r.trace
    if r.stopped:
        st.info(f"Stopped at step {r.step:,} of {r.total:,}; everything below uses the steps run.")
    if tr.divergence_message():
        st.warning(tr.divergence_message(), icon=":material/warning:")
    figs = final_figures(r, gd, view, title)
    numbers = st.container()  # filled last: the statistics take longer than the figures
    left, right = st.columns([3, 2], gap="medium")
    with left:
        # only the open tab's chart is sent: a hidden one still cost the browser its drawing
        t1, t2 = st.tabs(["Chains over the density", "Replay"], key=_w("view_tab"),
                         on_change="rerun")
        with t1:
            if t1.open:
                panels.chart(figs["chains"])
        with t2:
            if t2.open:
                panels.chart(replay_figure(r, view, title))
    with right:
        panels.chart(figs["marginals"])
    panels.chart(figs["curves"])
    if not cfg.noise:
        st.caption("Noise off: the chains climb to the mode and their mean log-likelihood rises "
                   "above the exact E_p[log p], which samples from p never do on average.")
    table = st.container()
    exports(r, gd, view, figs, title)
    if "summary" not in r.memo:
        r.memo["summary"] = summarize(tr, target, gd)
    s = r.memo["summary"]
    with numbers:
        modes = chains_in_modes(tr.x[tr.alive], gd, cache.modes_of(tkey))
        panels.summary_metrics(s, sampler=cfg.sampler, modes=modes)
    with table:
        st.markdown("##### Moments: chains vs exact")
        st.markdown(panels.markdown_table(panels.moments_table(s)))
        st.caption(
            f"{s.discrepancy.n:,} live chains · {tr.done:,} steps in {s.seconds:.2f} s · "
            + (f"ESS, R-hat and acceptance after a burn-in of {cfg.burn_in:,} steps"
             if tr.config.burn_in == cfg.burn_in else
             f"ESS, R-hat and acceptance over the {tr.done:,} steps after the "
             f"{cfg.burn_in:,} that tuned ε") +
            ("" if s.sgld_cov is None else
             " · at finite ε, SGLD samples a wider Gaussian than the target: compare the "
             "chains with the last row"))


main()
