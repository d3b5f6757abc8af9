"""The sampler pages' sidebar form, and its validated result (or the last valid one).

``sampler_form(page)`` runs the whole round trip: URL -> widgets -> ebmcore
inputs -> URL.  Bad input is reported in the page (under the control that holds
it when possible) and the previous valid inputs stay in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import cache, controls, panels, state
from dashboard.settings import Field
from ebmcore.energies import ValidationError
from ebmcore.sampling.runner import SampleConfig

__all__ = ["FormResult", "sampler_form"]

ss = st.session_state


@dataclass(frozen=True)
class FormResult:
    """What a sampler page runs with."""

    target_key: tuple  # cache key of the target (see dashboard.cache)
    config: SampleConfig  # validated run settings
    values: dict[str, Any]  # the widget values these came from (what the URL shows)
    changed: bool  # False when bad input made us fall back to the previous valid inputs


def _sidebar(page: str, with_sampler: bool, extra_fields: list[Field]) -> tuple[dict, Any]:
    w = lambda name: state.widget_key(page, name)  # noqa: E731
    errors: dict[str, str] = {}
    with st.sidebar:
        st.markdown("#### Target")
        controls.target_controls(page)
        target_slot = st.empty()
        st.markdown("#### Sampler")
        if with_sampler:
            st.radio("sampler", list(controls.SAMPLER_LABELS), key=w("sampler"),
                     horizontal=True, format_func=controls.SAMPLER_LABELS.get,
                     help="SGLD: unadjusted Langevin. MALA: Langevin proposal + Metropolis "
                          "test. HMC: leapfrog trajectories + Metropolis test.")
        err = controls.eps_control(page)
        if err:
            st.error(err, icon=":material/error:")
            errors["eps"] = err
        if with_sampler:
            sgld = ss[w("sampler")] == "sgld"
            if not sgld:
                ss[w("noise")] = True
            st.toggle("noise", key=w("noise"), disabled=not sgld,
                      help="Off: no noise, plain gradient descent to the nearest mode (MAP). "
                           "SGLD only; MALA and HMC always have noise.")
            if ss[w("sampler")] == "hmc":
                st.number_input("leapfrog steps", min_value=1, max_value=1000, step=1,
                                key=w("leapfrog"))
        controls.select_log(page, "steps", "chain length (steps)", controls.STEPS_GRID)
        controls.select_log(page, "chains", "number of chains", controls.CHAINS_GRID,
                            help="Independent chains, run in parallel.")
        controls.select_log(page, "T", "temperature T", controls.TEMP_GRID,
                            help="Chains target p(x)^(1/T).")
        with st.expander("start, seed, burn-in", expanded=False):
            st.radio("initial distribution", list(controls.INIT_LABELS), key=w("init"),
                     format_func=controls.INIT_LABELS.get, horizontal=True)
            if ss[w("init")] != "uniform":
                st.text_input("centre (x, y)", key=w("x0"))
            if ss[w("init")] == "gaussian":
                st.number_input("std", min_value=1e-6, max_value=1e3, format="%g", key=w("std"))
            st.number_input("seed", min_value=0, max_value=2**31 - 1, step=1, key=w("seed"))
            st.number_input("burn-in (steps)", min_value=0, step=10, key=w("burn"),
                            help="Steps excluded from ESS, R-hat and acceptance.")
    return errors, target_slot


def _defaults(with_sampler: bool) -> tuple:
    dv = {f.name: f.default for f in controls.sampler_fields(with_sampler=with_sampler)}
    dv.update({f.name: f.default for f in controls.param_fields("gaussian")})
    return controls.build_target_key(dv), controls.build_sample_config(dv), dv


def sampler_form(page: str, *, with_sampler: bool = True,
                 extra_fields: list[Field] | None = None,
                 extra_widgets: Any = None) -> FormResult:
    """Render the sidebar form of a sampler page and return what to run.

    Args:
        page: page id.
        with_sampler: offer the sampler / noise / leapfrog controls (else SGLD with noise).
        extra_fields: more URL settings of the page (rendered by ``extra_widgets``).
        extra_widgets: callable drawing the extra controls in the sidebar.
    """
    extra_fields = extra_fields or []
    fields = controls.sampler_fields(with_sampler=with_sampler) + extra_fields
    notes = panels.load_settings(page, fields)
    pfields = controls.param_fields(ss[state.widget_key(page, "target")])
    notes += panels.load_settings(page, pfields)
    all_fields = fields + pfields
    errors, target_slot = _sidebar(page, with_sampler, extra_fields)
    if extra_widgets is not None:
        with st.sidebar:
            extra_widgets()
    values = panels.values_of(page, all_fields)
    panels.show_notes(page, notes, values)

    msgs: list[tuple[str, str]] = []
    tkey = cfg = None
    try:
        tkey = controls.build_target_key(values)
        cache.density(tkey)  # raises if the energy is not normalisable on its box
    except ValidationError as exc:
        tkey = None
        msgs.append(("target", str(exc)))
    try:
        cfg = controls.build_sample_config(values)
    except ValidationError as exc:
        if "eps" not in errors:
            msgs.append(("settings", str(exc)))
    ok = not msgs and not errors and tkey is not None and cfg is not None
    valid = state.get(ss, "valid", page) or _defaults(with_sampler)
    if ok:
        valid = (tkey, cfg, dict(values))
        state.put(ss, "valid", page, valid)
    for where, m in msgs:
        (target_slot if where == "target" else st).error(m, icon=":material/error:")
    if not ok:
        st.info("Showing the last valid settings until the input is fixed.", icon=":material/undo:")
    good = valid[2]
    url_fields = fields + controls.param_fields(good["target"])
    panels.write_url(page, controls.relevant(url_fields, good), good)
    return FormResult(valid[0], valid[1], good, ok)
