"""Density flow: the chains' histogram at step k beside the exact law rho_t at t = k eps."""

from __future__ import annotations

import math

import streamlit as st
import torch

from dashboard import cache, flow_live, panels, state, url, url_build, url_fields
from dashboard.figures.dynamics import flow_figure, tv_figure
from dashboard.live_view import SYNC_BUDGET_S, Stop, live_view
from dashboard.safe_text import md
from dashboard.url_views import FLOW_SECTIONS, FLOW_STAGES
from ebmcore.energies import ValidationError
from ebmcore.exact.fokker_planck import ou_moments
from ebmcore.sampling.adapt import sgld_step_size
from ebmcore.targets.field import drift_field

PAGE = "dynamics"
RECORDED = 120  # recorded steps per run (the KL curves' points)
ARROWS = 12  # drift arrows per side
ss = st.session_state


def _w(name: str) -> str:
    return state.widget_key(PAGE, name)


def build(values: dict):
    """Target key, SGLD config and how an automatic eps was chosen (None when given) from
    the widget values; ValidationError if bad."""
    tkey = url_build.build_target_key(values)
    gd = cache.density(tkey)
    eps, why = url_build.parse_eps(values["eps"]), None
    if eps is None:  # the curvature rule, as SGLD's "auto" on the playground
        eps, why = sgld_step_size(cache.target(tkey), gd)
    steps = max(1, math.ceil(float(values["t"]) / eps - 1e-9))
    chains = int(values["chains"])
    cfg = url_build.build_sample_config(
        {**values, "eps": str(eps), "steps": steps, "burn": 0}, keep_paths=0,
        init_box=cache.view(tkey), max_points=chains * RECORDED,
        report_every=max(1, steps // 20))
    return tkey, cfg, why


def gaussian_rate(target) -> float | None:
    """lambda_min of the precision of a Gaussian target (the OU decay rate), else None."""
    if target.name != "gaussian":
        return None
    mean = torch.tensor(target.params["mean"], dtype=torch.float64)
    cov = torch.tensor(target.params["cov"], dtype=torch.float64).reshape(2, 2)
    return ou_moments(mean, cov, mean, cov, 0.0)[2]


def watch(key: tuple) -> None:
    def job():
        j = state.get(ss, "run", PAGE)
        return j if j is not None and j.key == key else None

    def draw(j: flow_live.FlowJob) -> None:
        st.progress(j.fraction, text=j.label)

    live_view(job, step=flow_live.advance, done=lambda j: j.finished, draw=draw,
              stop=Stop("stop", _w("stop"), flow_live.stop))


def results(j: flow_live.FlowJob, values: dict) -> None:
    if j.error:
        st.error(md(j.error), icon=":material/report:")
    if not j.curve or len(j.frames) < len(j.frame_idx) or not j.frames:
        st.info("Stopped before the comparison finished: change a setting to run again.",
                icon=":material/stop_circle:")
        return
    target, cfg = j.target, j.config
    rate = gaussian_rate(target)
    if "figs" not in j.memo:
        drift = drift_field(target, ARROWS) if values["arrows"] else None
        steps = [int(j.trace.steps[i]) for i in j.frame_idx]
        times = [s * cfg.step_size for s in steps]
        j.memo["figs"] = {
            "flow": flow_figure(times, steps, j.frames, j.curve, target.box,
                                eps=cfg.step_size, rate=rate, drift=drift, view=cfg.init_box),
            "tv": tv_figure(j.curve),
        }
    last = j.curve[-1]
    c = st.columns(4)
    panels.metric(c[0], "exact KL(ρ_t ‖ p) at the end", panels.fmt(last.kl_exact, 3),
                  f"t = {last.t:g}", "The Fokker–Planck law of the SDE, on the same bins.")
    panels.metric(c[1], "SGLD: KL(histogram ‖ p)", panels.fmt(last.kl_hist, 3),
                  f"floor {panels.fmt(last.kl_floor, 2)} for {cfg.chains:,} iid draws",
                  "Above the floor at late times: the discretisation bias of SGLD at this ε.")
    excess = last.kl_hist - last.kl_floor
    panels.metric(c[2], "SGLD excess over the floor", panels.fmt(excess, 3),
                  f"{excess / last.kl_floor:+.1f}× the floor" if last.kl_floor > 0 else None,
                  "KL of the histogram minus its expected value for exact samples: what is "
                  "left once the chains have mixed is SGLD's discretisation bias.")
    panels.metric(c[3], "decay rate λ_min(A)", "—" if rate is None else panels.fmt(rate, 3),
                  "Gaussian: KL ∝ e^(−2λt) at slowest" if rate is not None
                  else "Gaussian targets only",
                  "The slowest rate of the Ornstein–Uhlenbeck process with A = Σ⁻¹.")
    panels.chart(j.memo["figs"]["flow"])
    st.caption("Press **play** or drag the slider: the left panel is the exact density of the "
               "Langevin SDE at time t (the Fokker–Planck equation solved on a "
               f"{j.grid}² grid), the middle one the histogram of {cfg.chains:,} SGLD chains "
               "after k = t/ε steps, on the same colour scale. Right: the exact KL falls to 0; "
               "the chains' KL stalls at the finite-sample floor plus SGLD's bias.")
    panels.chart(j.memo["figs"]["tv"])
    if last.outside > 0:
        st.caption(f"{last.outside:.1%} of the chains are outside the box at the end and are "
                   "left out of the histogram.")


def main() -> None:
    st.markdown("## Density flow: see the law move")
    st.caption("Langevin chains do not jump to p: their distribution travels there. In 2D that "
               "distribution is computable exactly, by the Fokker–Planck equation "
               "∂ρ/∂t = ∇·(ρ∇E) + T Δρ; here beside the histogram of real SGLD chains.")
    fields, values, errors, slots = url.form(PAGE, FLOW_STAGES, FLOW_SECTIONS)
    note = url_fields.loaded_note(PAGE, values)
    if note:
        slots["Target"].caption(note)
    if errors:
        return
    try:
        tkey, cfg, why = build(values)
    except ValidationError as exc:
        st.error(md(exc), icon=":material/error:")
        return
    if why:
        slots["SGLD chains"].caption(md(f"automatic ε: {why}"))
    url.write_url(PAGE, fields, values)
    q = {k: v for k, v in st.query_params.to_dict().items()
         if k not in ("t", "grid", "bins", "arrows")}
    if st.button("open these chains in the playground", key=_w("to_playground"),
                 icon=":material/open_in_new:"):
        st.switch_page("app_pages/playground.py",
                       query_params={**q, "sampler": "sgld", "steps": str(cfg.steps)})
    key = (tkey, cfg, values["grid"], values["bins"])
    j = state.get(ss, "run", PAGE)
    if j is None or j.key != key:
        try:
            j = flow_live.start(key, cache.target(tkey), cfg, grid=int(values["grid"]),
                                bins=int(values["bins"]))
        except ValidationError as exc:
            st.error(md(exc), icon=":material/error:")
            return
        state.put(ss, "run", PAGE, j)
    if not j.finished:
        flow_live.advance(j, SYNC_BUDGET_S)
    if not j.finished:
        watch(key)
        return
    if j.memo.get("arrows") != values["arrows"]:
        j.memo.pop("figs", None)
        j.memo["arrows"] = values["arrows"]
    results(j, values)


main()
