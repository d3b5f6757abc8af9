"""Sampler zoo: underdamped Langevin in phase space, overdamped vs underdamped at equal cost,
annealed vs plain Langevin on the mode weights, and MALA / HMC proposals step by step."""

from __future__ import annotations

import streamlit as st
import torch

from dashboard import cache, controls, panels, state
from dashboard.figures.samplers import modes_figure, phase_figure, race_figure, stepwise_figure
from dashboard.settings import Field, choice, fmt_float, number
from ebmcore.box import Box
from ebmcore.energies import ValidationError
from ebmcore.exact.modes import mixture_centres
from ebmcore.sampling.compare import equal_gradient_race, mode_weights, phase_space
from ebmcore.sampling.stepwise import step_by_step
from ebmcore.sampling.theory import section

PAGE = "samplers"
VIEWS = {"phase": "Phase space", "race": "Overdamped vs underdamped",
         "annealed": "Annealed: mode weights", "stepwise": "Step by step (MALA / HMC)"}
THEORY = {"phase": "underdamped", "race": "underdamped", "annealed": "annealed",
          "stepwise": "stepwise"}
ss = st.session_state


def _w(name: str) -> str:
    return state.widget_key(PAGE, name)


def _pos(hi: float) -> object:
    return number(hi=hi, positive=True)


def _int(lo: int, hi: int) -> object:
    return number(lo, hi, integer=True)


VIEW_FIELDS = {
    "phase": [Field("ps_eps", 0.3, _pos(10), fmt_float), Field("ps_gamma", 0.5, _pos(1e3),
                                                                fmt_float),
              Field("ps_chains", 3, _int(1, 8)), Field("ps_steps", 150, _int(1, 5000))],
    "race": [Field("rc_sgld", 0.1, _pos(10), fmt_float), Field("rc_ud", 0.3, _pos(10),
                                                                fmt_float),
             Field("rc_gamma", 1.0, _pos(1e3), fmt_float), Field("rc_chains", 5000,
                                                                 _int(100, 50_000)),
             Field("rc_steps", 500, _int(10, 5000))],
    "annealed": [Field("an_levels", 5, _int(1, 12)), Field("an_sigma", 2.0, _pos(20), fmt_float),
                 Field("an_eps", 0.01, _pos(1), fmt_float), Field("an_steps", 500,
                                                                  _int(10, 5000)),
                 Field("an_chains", 4000, _int(100, 50_000))],
    "stepwise": [Field("sb_sampler", "hmc", choice(("mala", "hmc"))),
                 Field("sb_eps", 0.3, _pos(10), fmt_float), Field("sb_leapfrog", 10,
                                                                   _int(1, 100)),
                 Field("sb_chains", 6, _int(1, 16)), Field("sb_steps", 40, _int(1, 200))],
}


def fields() -> list[Field]:
    return [controls.sampler_fields(with_sampler=False)[0],
            Field("view", "phase", choice(tuple(VIEWS))),
            Field("seed", 0, _int(0, 2**31 - 1))] + [f for fs in VIEW_FIELDS.values() for f in fs]


def _num(name: str, label: str, help: str | None = None, **kw) -> None:
    st.number_input(label, key=_w(name), help=help, **kw)


def sidebar(view: str) -> None:
    with st.sidebar:
        st.markdown("#### Target")
        controls.target_controls(PAGE)
        st.markdown(f"#### {VIEWS[view]}")
        if view == "phase":
            _num("ps_eps", "step size ε", format="%g", min_value=1e-4, max_value=10.0)
            _num("ps_gamma", "friction γ", "Small: long ballistic orbits. Large: overdamped.",
                 format="%g", min_value=1e-3, max_value=1e3)
            _num("ps_chains", "chains", min_value=1, max_value=8, step=1)
            _num("ps_steps", "steps", min_value=1, max_value=5000, step=50)
        elif view == "race":
            _num("rc_sgld", "SGLD step ε", format="%g", min_value=1e-4, max_value=10.0)
            _num("rc_ud", "underdamped step ε", format="%g", min_value=1e-4, max_value=10.0)
            _num("rc_gamma", "friction γ", format="%g", min_value=1e-3, max_value=1e3)
            _num("rc_chains", "chains", min_value=100, max_value=50_000, step=1000)
            _num("rc_steps", "steps (= gradients per chain)", min_value=10, max_value=5000,
                 step=100)
        elif view == "annealed":
            _num("an_levels", "noise levels L", "σ halves from σ_max; the last level is p.",
                 min_value=1, max_value=12, step=1)
            _num("an_sigma", "σ_max", format="%g", min_value=1e-3, max_value=20.0)
            _num("an_eps", "step size ε", format="%g", min_value=1e-5, max_value=1.0)
            _num("an_steps", "steps", min_value=10, max_value=5000, step=100)
            _num("an_chains", "chains", min_value=100, max_value=50_000, step=1000)
        else:
            st.radio("sampler", ("mala", "hmc"), key=_w("sb_sampler"), horizontal=True,
                     format_func=str.upper)
            _num("sb_eps", "step size ε", "For HMC, the leapfrog step.", format="%g",
                 min_value=1e-4, max_value=10.0)
            if ss[_w("sb_sampler")] == "hmc":
                _num("sb_leapfrog", "leapfrog steps", min_value=1, max_value=100, step=1)
            _num("sb_chains", "chains", min_value=1, max_value=16, step=1)
            _num("sb_steps", "steps", min_value=1, max_value=200, step=10)
        _num("seed", "seed", min_value=0, max_value=2**31 - 1, step=1)


def starts(target, k: int, seed: int) -> torch.Tensor:
    """``k`` seeded starting points: exact draws from the target when it has a sampler (the
    views show how a sampler moves in the typical set), else uniform on the box's centre."""
    if target.sampler is not None:
        return target.sample(k, torch.Generator().manual_seed(seed)).to(torch.float64)
    b = Box.of(target.box)
    cx, cy = (b.xmin + b.xmax) / 2, (b.ymin + b.ymax) / 2
    half = Box(cx - (b.xmax - b.xmin) / 4, cx + (b.xmax - b.xmin) / 4,
               cy - (b.ymax - b.ymin) / 4, cy + (b.ymax - b.ymin) / 4)
    return half.uniform(k, torch.Generator().manual_seed(seed), dtype=torch.float64)


def compute(view: str, tkey: tuple, v: dict):
    """The view's record (cached per session by its settings)."""
    target, gd = cache.target(tkey), cache.density(tkey)
    seed = int(v["seed"])
    if view == "phase":
        rec = phase_space(target, starts(target, int(v["ps_chains"]), seed), int(v["ps_steps"]),
                          step_size=float(v["ps_eps"]), friction=float(v["ps_gamma"]),
                          seed=seed)
        x = torch.tensor([[[c if c is not None else float("inf") for c in pt] for pt in row]
                          for row in rec["x"]], dtype=torch.float64)
        out = ~Box.of(target.box).pad(1.0).contains(x.reshape(-1, 2)).reshape(x.shape[:2])
        lost = int(out.any(0).sum())
        warning = None if not lost else (
            f"{lost} of {x.shape[1]} chains left the box far behind (at ε = "
            f"{float(v['ps_eps']):g} BAOAB is unstable where E is this steep): lower ε.")
        return phase_figure(rec, gd), warning
    if view == "race":
        rec = equal_gradient_race(target, gd, steps=int(v["rc_steps"]),
                                  chains=int(v["rc_chains"]), sgld_step=float(v["rc_sgld"]),
                                  underdamped_step=float(v["rc_ud"]),
                                  friction=float(v["rc_gamma"]), seed=seed)
        return race_figure(rec), _diverged(rec)
    if view == "annealed":
        centres = mixture_centres(target)
        rec = mode_weights(target, gd, centres, steps=int(v["an_steps"]),
                           chains=int(v["an_chains"]), step_size=float(v["an_eps"]),
                           levels=int(v["an_levels"]), sigma_max=float(v["an_sigma"]),
                           init_point=tuple(float(c) for c in centres[0]), seed=seed)
        return modes_figure(rec), None
    rec = step_by_step(target, v["sb_sampler"], starts(target, int(v["sb_chains"]), seed),
                       int(v["sb_steps"]), step_size=float(v["sb_eps"]),
                       n_leapfrog=int(v["sb_leapfrog"]), seed=seed)
    return stepwise_figure(rec, gd), None


def _diverged(rec: dict) -> str | None:
    bad = [f"{rec[f'{n}_diverged']:,} {label} chains" for n, label in
           (("sgld", "SGLD"), ("underdamped", "underdamped")) if rec[f"{n}_diverged"]]
    if not bad:
        return None
    return (f"{' and '.join(bad)} of {rec['chains']:,} diverged and are frozen where they left: "
            "the discrepancy counts them. Lower the step size.")


CAPTIONS = {
    "phase": "Each chain carries a velocity: momentum carries it across the density in long "
             "arcs instead of a random walk. In phase space the orbits circle the energy's "
             "minima and friction with noise keeps the velocities Maxwellian, N(0, T).",
    "race": "Both samplers start from the same uniform points and spend one gradient per "
            "step. The discrepancy of their histograms to the exact density, against the "
            "gradients spent; the dotted line is what exact iid samples would score.",
    "annealed": "All chains start in one mode. Plain Langevin keeps them there; annealed "
                "Langevin first runs on the target smoothed by a Gaussian of width σ "
                "(exact, on the grid), which merges the modes, then sharpens it level by "
                "level: its mass per mode matches the exact weights.",
    "stepwise": "Press play: every step draws each chain's proposal (the leapfrog path for "
                "HMC), green if the Metropolis test accepted it and red if not; hover a "
                "proposal for its log α. A larger step lands more proposals where p is small.",
}


def main() -> None:
    st.markdown("## Sampler zoo")
    st.caption("More of the Langevin family, on the exact densities of the lab.")
    flds = fields()
    notes = panels.load_settings(PAGE, flds)
    pf = controls.param_fields(ss[_w("target")])
    notes += panels.load_settings(PAGE, pf)
    view = st.segmented_control("view", list(VIEWS), key=_w("view"), format_func=VIEWS.get,
                                label_visibility="collapsed")
    if view is None:  # a click on the selected option clears it: keep the view
        view = ss[_w("view")] = state.get(ss, "settings", PAGE, {}).get("view", "phase")
    sidebar(view)
    values = panels.values_of(PAGE, flds + pf)
    panels.show_notes(PAGE, notes, values)
    url = [f for f in flds if f.name in ("target", "view", "seed")] + VIEW_FIELDS[view] + pf
    try:
        tkey = controls.build_target_key(values)
        cache.density(tkey)
    except ValidationError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    panels.write_url(PAGE, url, values)
    if view == "annealed" and tkey[0] != "mixture":
        st.info("Mode weights are known exactly for the **mixture** target (its component "
                "centres split the plane).", icon=":material/info:")
        st.button("use the mixture", key=_w("to_mixture"), type="primary",
                  on_click=lambda: ss.__setitem__(_w("target"), "mixture"))
        return
    key = (view, tkey, tuple(sorted((f.name, values[f.name]) for f in url)))
    memo = state.get(ss, "run", PAGE) or {}
    if memo.get("key") != key:
        try:
            with st.spinner("sampling…"):
                fig, warning = compute(view, tkey, values)
                memo = {"key": key, "fig": fig, "warning": warning}
        except ValidationError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        state.put(ss, "run", PAGE, memo)
    st.caption(CAPTIONS[view])
    if memo["warning"]:
        st.warning(memo["warning"], icon=":material/warning:")
    panels.chart(memo["fig"])
    with st.expander("theory", icon=":material/function:"):
        st.markdown(section(THEORY[view]))


main()
