"""The settings of the density flow and sampler zoo pages, declared like the sampler pages'.

They share the playground's names for what they share (target, eps, T, seed, start).
Picking a target brings its measured SGLD step and start (density flow), or the steps of
the samplers each view runs (zoo), as on the sampler pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import streamlit as st

from dashboard import state
from dashboard import url as u
from dashboard import url_fields as uf
from dashboard.settings import Field, boolean, choice, fmt_bool, fmt_float, number
from ebmcore.targets.settings import settings_for

ss = st.session_state

__all__ = ["FLOW_SECTIONS", "FLOW_STAGES", "VIEWS", "ZOO_SECTIONS", "ZOO_STAGES", "load_zoo",
           "view_fields", "zoo_defaults"]

FLOW_CHAINS = (1000, 2000, 5000, 10_000, 20_000, 50_000)
FLOW_MAX_CHAINS = 50_000  # every recorded step of every chain is kept for the histograms


FLOW_LOADS = ("eps", "init", "x0", "std")  # what picking a target brings on the flow page


def _flow_fields(values: Mapping[str, Any]) -> list[Field]:
    shared = {f.name: f for f in uf.sampler_fields(values["target"], with_sampler=False)}
    return [
        shared["eps"],
        Field("chains", 20_000, number(100, FLOW_MAX_CHAINS, integer=True),
              widget=u.log_select("number of chains", FLOW_CHAINS,
                                  help="More chains lower the histogram's finite-sample "
                                       "floor.")),
        replace(shared["T"], widget=u.log_select(
            "temperature T", uf.TEMP_GRID,
            help="Noise √(2T); both the chains and ρ_t target p^(1/T).")),
        shared["seed"], shared["init"], shared["x0"], shared["std"],
        Field("t", 10.0, number(0.01, 200, positive=True), fmt_float,
              widget=u.number_box("time horizon t = k·ε", min_value=0.01, max_value=200.0,
                                  format="%g", help="The chains run ⌈t / ε⌉ steps.")),
        Field("grid", "128", choice(("64", "128", "256")),
              widget=u.radio("solver grid (cells per side)", ("64", "128", "256"))),
        Field("bins", "32", choice(("16", "32")),
              widget=u.radio("histogram bins per side", ("16", "32"),
                             help="Fewer bins: a lower floor, a coarser picture.")),
        Field("arrows", False, boolean, fmt_bool,
              widget=u.toggle("score field −∇E (arrows)",
                              help="The drift of the Langevin SDE; arrow length is log-scaled "
                                   "so both steep walls and flat plateaus read.")),
        *uf.param_fields(values["target"]),
    ]


FLOW_STAGES: list[u.Stage] = [lambda v: [uf.target_field(loads=FLOW_LOADS)], _flow_fields]
FLOW_SECTIONS = [
    u.Section("Target", ("target", *uf.PARAM_NAMES)),
    u.Section("SGLD chains", ("eps", "chains", "T", "t")),
    u.Section("start, seed, grid", ("init", "x0", "std", "seed", "grid", "bins"),
              expander=True),
    u.Section("", ("arrows",)),
]

# -- the sampler zoo ------------------------------------------------------------------------

VIEWS = {"phase": "Phase space", "race": "Overdamped vs underdamped",
         "annealed": "Annealed: mode weights", "stepwise": "Step by step (MALA / HMC)"}


def _pos(name: str, default: float, hi: float, label: str, lo: float = 1e-4,
         help: str | None = None) -> Field:
    return Field(name, default, number(hi=hi, positive=True), fmt_float,
                 widget=u.number_box(label, help=help, format="%g", min_value=lo,
                                     max_value=float(hi)))


def _int(name: str, default: int, lo: int, hi: int, label: str, step: int = 1,
         help: str | None = None) -> Field:
    return Field(name, default, number(lo, hi, integer=True),
                 widget=u.number_box(label, help=help, min_value=lo, max_value=hi, step=step))


def _leapfrog(page: str, name: str, values: Mapping[str, Any]) -> None:
    if values.get("sb_sampler") == "hmc":  # in the URL for MALA too, as the view's setting
        u.number_box("leapfrog steps", min_value=1, max_value=100, step=1)(page, name, values)


# The zoo's steps on the Gaussian, and the sampler whose measured step scales each on other
# targets (HMC's for the leapfrog-like moves, SGLD's for Langevin steps); annealing's eps is
# the mixtures' own and stays.
ZOO_EPS = {"ps_eps": (0.3, "hmc"), "rc_sgld": (0.1, "sgld"), "rc_ud": (0.3, "sgld"),
           "sb_eps": (0.3, "hmc")}
_ZOO_EPS_LABELS = {"ps_eps": "phase space", "rc_sgld": "race SGLD",
                   "rc_ud": "race underdamped", "sb_eps": "step by step"}


def zoo_defaults(target: str) -> dict[str, float]:
    """The zoo's step sizes on ``target``: the Gaussian's, times the ratio of the target's
    measured step to the Gaussian's for the sampler named in :data:`ZOO_EPS`."""
    out = {}
    for name, (eps, sampler) in ZOO_EPS.items():
        own, ref = (settings_for(t, sampler).step_size for t in (target, "gaussian"))
        out[name] = eps if own is None or ref is None else float(f"{eps * own / ref:.2g}")
    return out


def load_zoo(page: str) -> None:
    """The target changed: its step sizes replace the zoo's, with a note."""
    w = lambda n: state.widget_key(page, n)  # noqa: E731
    target = ss[w("target")]
    d = {k: v for k, v in zoo_defaults(target).items() if w(k) in ss}
    for k, v in d.items():
        ss[w(k)] = v
    what = f"{target}'s step sizes loaded: " + ", ".join(
        f"ε = {v:g} ({_ZOO_EPS_LABELS[k]})" for k, v in d.items())
    state.put(ss, "loaded", page, (target, "sgld", what, d))


_VIEW_FIELDS = {
    "phase": [_pos("ps_eps", 0.3, 10, "step size ε"),
              _pos("ps_gamma", 0.5, 1e3, "friction γ", lo=1e-3,
                   help="Small: long ballistic orbits. Large: overdamped."),
              _int("ps_chains", 3, 1, 8, "chains"),
              _int("ps_steps", 150, 1, 5000, "steps", step=50)],
    "race": [_pos("rc_sgld", 0.1, 10, "SGLD step ε"),
             _pos("rc_ud", 0.3, 10, "underdamped step ε"),
             _pos("rc_gamma", 1.0, 1e3, "friction γ", lo=1e-3),
             _int("rc_chains", 5000, 100, 50_000, "chains", step=1000),
             _int("rc_steps", 500, 10, 5000, "steps (= gradients per chain)", step=100)],
    "annealed": [_int("an_levels", 5, 1, 12, "noise levels L",
                      help="σ halves from σ_max; the last level is p."),
                 _pos("an_sigma", 2.0, 20, "σ_max", lo=1e-3),
                 _pos("an_eps", 0.01, 1, "step size ε", lo=1e-5),
                 _int("an_steps", 500, 10, 5000, "steps", step=100),
                 _int("an_chains", 4000, 100, 50_000, "chains", step=1000)],
    "stepwise": [Field("sb_sampler", "hmc", choice(("mala", "hmc")),
                       widget=u.radio("sampler", ("mala", "hmc"), fmt=str.upper)),
                 _pos("sb_eps", 0.3, 10, "step size ε", help="For HMC, the leapfrog step."),
                 Field("sb_leapfrog", 10, number(1, 100, integer=True), widget=_leapfrog),
                 _int("sb_chains", 6, 1, 16, "chains"),
                 _int("sb_steps", 40, 1, 200, "steps", step=10)],
}


def view_fields(view: str, target: str = "gaussian") -> list[Field]:
    """The settings of one view of the zoo on ``target`` (each relevant only while its view
    is shown)."""
    eps = zoo_defaults(target)
    return [replace(f, default=eps.get(f.name, f.default),
                    show=lambda v, view=view: v.get("view") == view)
            for f in _VIEW_FIELDS[view]]


ZOO_STAGES: list[u.Stage] = [
    lambda v: [uf.target_field(load=load_zoo),
               Field("view", "phase", choice(tuple(VIEWS)))],  # drawn by the page, on top
    lambda v: [_int("seed", 0, 0, 2**31 - 1, "seed"),
               *(f for view in VIEWS for f in view_fields(view, v["target"])),
               *uf.param_fields(v["target"])],
]
ZOO_SECTIONS = [
    u.Section("Target", ("target", *uf.PARAM_NAMES)),
    u.Section(lambda v: VIEWS.get(v.get("view"), ""),
              (*(f.name for fs in _VIEW_FIELDS.values() for f in fs), "seed")),
]
