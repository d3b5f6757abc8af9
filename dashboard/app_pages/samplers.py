"""Sampler zoo: underdamped Langevin in phase space, overdamped vs underdamped at equal cost,
annealed vs plain Langevin on the mode weights, and MALA / HMC proposals step by step."""

from __future__ import annotations

import streamlit as st
import torch

from dashboard import cache, panels, state, url, url_build, url_fields
from dashboard.figures.samplers import modes_figure, phase_figure, race_figure, stepwise_figure
from dashboard.safe_text import md
from dashboard.url_views import VIEWS, ZOO_SECTIONS, ZOO_STAGES
from ebmcore.box import Box
from ebmcore.energies import ValidationError
from ebmcore.exact.modes import mixture_centres
from ebmcore.sampling.compare import equal_gradient_race, mode_weights, phase_space
from ebmcore.sampling.stepwise import step_by_step
from ebmcore.sampling.theory import section

PAGE = "samplers"
THEORY = {"phase": "underdamped", "race": "underdamped", "annealed": "annealed",
          "stepwise": "stepwise"}
ss = st.session_state


def _w(name: str) -> str:
    return state.widget_key(PAGE, name)


def starts(target, view: Box, k: int, seed: int) -> torch.Tensor:
    """``k`` seeded starting points: exact draws from the target when it has a sampler (the
    views show how a sampler moves in the typical set), else uniform on its view box."""
    if target.sampler is not None:
        return target.sample(k, torch.Generator().manual_seed(seed)).to(torch.float64)
    return Box.of(view).uniform(k, torch.Generator().manual_seed(seed), dtype=torch.float64)


def compute(view: str, tkey: tuple, v: dict):
    """The view's record (cached per session by its settings)."""
    target, gd = cache.target(tkey), cache.density(tkey)
    seed = int(v["seed"])
    box = cache.view(tkey)
    if view == "phase":
        rec = phase_space(target, starts(target, box, int(v["ps_chains"]), seed),
                          int(v["ps_steps"]),
                          step_size=float(v["ps_eps"]), friction=float(v["ps_gamma"]),
                          seed=seed)
        x = torch.tensor([[[c if c is not None else float("inf") for c in pt] for pt in row]
                          for row in rec["x"]], dtype=torch.float64)
        out = ~Box.of(target.box).pad(1.0).contains(x.reshape(-1, 2)).reshape(x.shape[:2])
        lost = int(out.any(0).sum())
        warning = None if not lost else (
            f"{lost} of {x.shape[1]} chains left the box far behind (at ε = "
            f"{float(v['ps_eps']):g} BAOAB is unstable where E is this steep): lower ε.")
        return phase_figure(rec, gd, view=box), warning
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
    rec = step_by_step(target, v["sb_sampler"], starts(target, box, int(v["sb_chains"]), seed),
                       int(v["sb_steps"]), step_size=float(v["sb_eps"]),
                       n_leapfrog=int(v["sb_leapfrog"]), seed=seed)
    return stepwise_figure(rec, gd, view=box), None


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
    if ss.get(_w("view"), "") is None:  # a click on the selected view clears it: keep it
        ss[_w("view")] = state.get(ss, "settings", PAGE, {}).get("view", "phase")
    fields, values, _, slots = url.form(PAGE, ZOO_STAGES, ZOO_SECTIONS)
    note = url_fields.loaded_note(PAGE, values)
    if note:
        slots["Target"].caption(note)
    view = st.segmented_control("view", list(VIEWS), key=_w("view"), format_func=VIEWS.get,
                                label_visibility="collapsed") or values["view"]
    try:
        tkey = url_build.build_target_key(values)
        cache.density(tkey)
    except ValidationError as exc:
        st.error(md(exc), icon=":material/error:")
        return
    url.write_url(PAGE, fields, values)
    if view == "annealed" and tkey[0] != "mixture":
        st.info("Mode weights are known exactly for the **mixture** target (its component "
                "centres split the plane).", icon=":material/info:")
        st.button("use the mixture", key=_w("to_mixture"), type="primary",
                  on_click=lambda: ss.__setitem__(_w("target"), "mixture"))
        return
    key = (view, tkey, tuple(sorted(url.relevant_values(fields, values).items())))
    memo = state.get(ss, "run", PAGE) or {}
    if memo.get("key") != key:
        try:
            with st.spinner("sampling…"):
                fig, warning = compute(view, tkey, values)
                memo = {"key": key, "fig": fig, "warning": warning}
        except ValidationError as exc:
            st.error(md(exc), icon=":material/error:")
            return
        state.put(ss, "run", PAGE, memo)
    st.caption(CAPTIONS[view])
    if memo["warning"]:
        st.warning(memo["warning"], icon=":material/warning:")
    panels.chart(memo["fig"])
    with st.expander("theory", icon=":material/function:"):
        st.markdown(section(THEORY[view]))


main()
