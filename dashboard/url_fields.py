"""Every page's settings, declared: URL name, default, parser, widget, relevance; and the
ebmcore inputs built from them.

The sampler pages (playground, SGLD vs MAP) share :func:`sampler_stages` and
:func:`sampler_sections`; the training page has :data:`TRAIN_STAGES` and
:data:`TRAIN_SECTIONS`.  :mod:`dashboard.url` runs the round trip, and
:mod:`dashboard.url_build` turns the values into ebmcore configs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from dashboard import state, train_live
from dashboard import url as u
from dashboard.settings import (
    Field,
    boolean,
    choice,
    fmt_bool,
    fmt_float,
    number,
    number_list,
    text,
)
from dashboard.url import AUTO
from ebmcore.defaults import (
    ANY,
    DEFAULT_TARGET,
    flow_defaults,
    sampling_defaults,
    training_defaults,
)
from ebmcore.ebm.data import dataset_names
from ebmcore.energies import Param, ValidationError
from ebmcore.sampling.annealed import MAX_LEVELS
from ebmcore.sampling.runner import MAX_CHAINS, MAX_STEPS, SampleConfig
from ebmcore.targets.registry import TARGETS
from ebmcore.targets.settings import settings_for

__all__ = [
    "FORMULA",
    "PARAM_NAMES",
    "SAMPLER_LABELS",
    "TARGET_CHOICES",
    "TRAIN_SECTIONS",
    "TRAIN_STAGES",
    "burn_field",
    "defaults_for",
    "loaded_note",
    "param_fields",
    "sampler_fields",
    "sampler_sections",
    "sampler_stages",
    "target_field",
    "train_fields",
]

ss = st.session_state
FORMULA = "formula"  # the "own formula" entry of the target select
TARGET_CHOICES = (*TARGETS, FORMULA)
DEFAULT_FORMULA = "-logsumexp(-((x - 2)**2 + y**2) / 2, -((x + 2)**2 + y**2) / 2)"
DEFAULT_BOX = "-4, 4, -4, 4"
SAMPLER_LABELS = {"sgld": "SGLD", "mala": "MALA", "hmc": "HMC", "underdamped": "underdamped",
                  "annealed": "annealed"}
INIT_LABELS = {"uniform": "uniform on the view box", "view": "Gaussian over the view box",
               "gaussian": "Gaussian", "point": "point"}

STEPS_GRID = (1, 10, 20, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10_000, 20_000,
              50_000, 100_000, 200_000, 500_000, 1_000_000)
CHAINS_GRID = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000,
               100_000, 200_000, 500_000, 1_000_000, 2_000_000)
TEMP_GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# every target's parameter settings (and the formula's), drawn under the target select
PARAM_NAMES = tuple(dict.fromkeys(("expr", "box", *(f"p.{k}" for spec in TARGETS.values()
                                                     for k in spec.params))))
SWEEP_CHAINS = (1000, 2000, 5000, 10_000, 20_000, 50_000)


def _is(name: str, *options: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda v: v.get(name) in options


def _not(name: str, *options: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda v: v.get(name) not in options


# -- the sampler pages --------------------------------------------------------------------


def defaults_for(target: str, sampler: str) -> dict[str, Any]:
    """Widget values of the run settings that ``target`` and ``sampler`` bring (the measured
    per-target table; an automatic eps for formulas)."""
    d, c = sampling_defaults(target, sampler), SampleConfig()
    eps = d["step_size"]
    ref = eps if eps is not None else c.step_size  # the sweep's centre when eps is automatic
    return {"eps": AUTO if eps is None else fmt_float(eps), "steps": d["steps"],
            "chains": d["chains"], "burn": d["burn_in"], "init": d["init"],
            "x0": ", ".join(f"{v:g}" for v in d["init_point"]), "std": float(d["init_std"]),
            "leapfrog": d["n_leapfrog"], "friction": c.friction, "levels": c.levels,
            "sigma_max": c.sigma_max,
            # the eps sweep: from well inside the stable range to past the default
            "sw_lo": float(f"{ref / 15:.2g}"), "sw_hi": float(f"{ref * 5:.2g}")}


SAMPLER_OWN = ("eps", "leapfrog", "friction", "levels", "sigma_max")  # what a sampler brings


def load_defaults(page: str, only: tuple[str, ...] | None = None) -> None:
    """The target changed (or, with ``only``, the sampler): its settings replace the run
    settings (or only those named), with a note."""
    w = lambda n: state.widget_key(page, n)  # noqa: E731
    target, sampler = ss[w("target")], ss.get(w("sampler"), "sgld")
    d = defaults_for(target, sampler)
    loaded = {k: v for k, v in d.items() if w(k) in ss and (only is None or k in only)}
    for k, v in loaded.items():
        ss[w(k)] = v
    label = "the formula" if target == FORMULA else target
    what = f"{label}'s {SAMPLER_LABELS[sampler]} settings loaded: ε = {d['eps']}"
    if only is None:
        what += (f", {d['steps']:,} steps, {d['chains']:,} chains, "
                 f"{INIT_LABELS[d['init']]} start")
    note = settings_for(target, sampler).note  # how the table chose them (or that it fell short)
    if note:
        what += f" ({note})"
    state.put(ss, "loaded", page, (target, sampler, what, loaded))


def loaded_note(page: str, values: Mapping[str, Any]) -> str | None:
    """The note of the last settings loaded, while the user has changed none of them."""
    kept = state.get(ss, "loaded", page)
    if not kept:
        return None
    target, sampler, what, loaded = kept
    same = all(values.get(k, v) == v for k, v in loaded.items())
    if same and (target, sampler) == (values["target"], values.get("sampler", "sgld")):
        return what
    return None


def target_field(*, loads: bool | tuple[str, ...] = True,
                 load: Callable[[str], None] | None = None) -> Field:
    """The target select (its description under it); ``loads``: picking a target loads its
    sampler settings (the sampler pages), or only those named; ``load(page)`` does the
    loading instead where a page's settings are not the sampler pages' (the zoo)."""
    only = loads if isinstance(loads, tuple) else None
    if load is None and loads:
        load = lambda page: load_defaults(page, only)  # noqa: E731

    def draw(page: str, name: str, values: Mapping[str, Any]) -> None:
        st.selectbox("target", TARGET_CHOICES, key=state.widget_key(page, name),
                     format_func=lambda k: "✎ own formula" if k == FORMULA else k,
                     on_change=(lambda: load(page)) if load else None,
                     help="Energy E(x); the density is p(x) = exp(-E(x)) / Z."
                          + (" Picking a target loads its sampler settings." if loads else ""))
        spec = TARGETS.get(ss[state.widget_key(page, name)])
        if spec is not None:
            st.caption(spec.doc)

    return Field("target", DEFAULT_TARGET, choice(TARGET_CHOICES), widget=draw)


def _sampler_widget(page: str, name: str, values: Mapping[str, Any]) -> None:
    st.radio("sampler", list(SAMPLER_LABELS), key=state.widget_key(page, name),
             horizontal=True, format_func=SAMPLER_LABELS.get,
             on_change=lambda: load_defaults(page, SAMPLER_OWN),
             help="SGLD: unadjusted Langevin. MALA: Langevin proposal + Metropolis test. HMC: "
                  "leapfrog trajectories + Metropolis test. underdamped: kinetic Langevin "
                  "with friction. annealed: SGLD through a ladder of smoothed targets.")


def sampler_fields(target: str = DEFAULT_TARGET, sampler: str = "sgld", *,
                   with_sampler: bool = True) -> list[Field]:
    """The run settings after target and sampler, with the defaults of that pair."""
    d = defaults_for(target, sampler)
    fields = [
        Field("eps", d["eps"], u.eps_text, widget=u.eps_widget),
        Field("noise", True, boolean, fmt_bool, show=_is("sampler", "sgld"), keep_drawn=True,
              widget=u.toggle("noise", enabled=_is("sampler", "sgld"), forced=True,
                              help="Off: no noise, plain gradient descent to the nearest mode "
                                   "(MAP). SGLD only; the other samplers always have noise.")),
        Field("leapfrog", d["leapfrog"], number(1, 1000, integer=True), show=_is("sampler", "hmc"),
              widget=u.number_box("leapfrog steps", min_value=1, max_value=1000, step=1)),
        Field("friction", d["friction"], number(hi=1e3, positive=True), fmt_float,
              show=_is("sampler", "underdamped"),
              widget=u.number_box("friction γ", min_value=1e-3, max_value=1e3, format="%g",
                                  help="Large γ: overdamped Langevin; small γ: long "
                                       "momentum-carrying moves.")),
        Field("levels", d["levels"], number(1, MAX_LEVELS, integer=True),
              show=_is("sampler", "annealed"),
              widget=u.number_box("noise levels", min_value=1, max_value=MAX_LEVELS, step=1,
                                  help="Smoothed targets in the ladder; the last one is the "
                                       "target itself.")),
        Field("sigma_max", d["sigma_max"], number(hi=100, positive=True), fmt_float,
              show=_is("sampler", "annealed"),
              widget=u.number_box("σ max", min_value=1e-3, max_value=100.0, format="%g",
                                  help="The widest smoothing; each next level halves it.")),
        Field("steps", d["steps"], number(1, MAX_STEPS, integer=True),
              widget=u.log_select("chain length (steps)", STEPS_GRID)),
        Field("chains", d["chains"], number(1, MAX_CHAINS, integer=True),
              widget=u.log_select("number of chains", CHAINS_GRID,
                                  help="Independent chains, run in parallel.")),
        Field("T", 1.0, number(hi=100, positive=True), fmt_float,
              widget=u.log_select("temperature T", TEMP_GRID, help="Chains target p(x)^(1/T).")),
        Field("seed", 0, number(0, 2**31 - 1, integer=True),
              widget=u.number_box("seed", min_value=0, max_value=2**31 - 1, step=1)),
        Field("init", d["init"], choice(tuple(INIT_LABELS)),
              widget=u.radio("initial distribution", list(INIT_LABELS), fmt=INIT_LABELS.get)),
        Field("x0", d["x0"], number_list(2), show=_is("init", "gaussian", "point"),
              widget=u.text_box("centre (x, y)")),
        Field("std", d["std"], number(hi=1e3, positive=True), fmt_float,
              show=_is("init", "gaussian"),
              widget=u.number_box("std", min_value=1e-6, max_value=1e3, format="%g")),
        burn_field(target, sampler, d["steps"]),
    ]
    if not with_sampler:
        fields = [f for f in fields if f.name not in ("noise", "leapfrog", "friction", "levels",
                                                      "sigma_max")]
    return fields


def burn_field(target: str, sampler: str, steps: int) -> Field:
    """Burn-in, whose default must stay below the chain length (a link may pin only that)."""
    b = defaults_for(target, sampler)["burn"]
    return Field("burn", b if b < steps else steps // 4, number(0, MAX_STEPS - 1, integer=True),
                 widget=u.number_box("burn-in (steps)", min_value=0, step=10,
                                     help="Steps excluded from ESS, R-hat and acceptance "
                                          "(auto MALA / HMC: the steps that tune ε)."))


def _param_parse(name: str, p: Param) -> Callable[[str], Any]:
    def parse(t: str) -> Any:
        try:
            v = p.validate(name, t)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        return ", ".join(f"{x:g}" for x in v) if isinstance(v, tuple) else v

    return parse


def param_fields(target_name: str) -> list[Field]:
    """URL fields of a target's parameters (``p.<name>``), or of the formula."""
    if target_name == FORMULA:
        return [Field("expr", DEFAULT_FORMULA, text(2000), widget=u.text_box(
                    "E(x, y) =", height=80,
                    help="Numbers, + - * / **, x y r theta pi e, and exp log sqrt abs sin cos "
                         "tanh sigmoid softplus logsumexp min max clamp ...")),
                Field("box", DEFAULT_BOX, number_list(4),
                      widget=u.text_box("box (xmin, xmax, ymin, ymax)"))]
    spec = TARGETS.get(target_name)
    if spec is None:
        return []
    return [Field(f"p.{k}", ", ".join(f"{x:g}" for x in p.default)
                  if isinstance(p.default, tuple) else p.default,
                  _param_parse(k, p), lambda v: fmt_float(v) if isinstance(v, float) else str(v),
                  widget=u.param_widget(p))
            for k, p in spec.params.items()]


def _sweep_fields(values: Mapping[str, Any]) -> list[Field]:
    """SGLD vs MAP's eps sweep: a range around the target's default SGLD step."""
    d = defaults_for(values["target"], "sgld")
    return [
        Field("sw_chains", 5000, number(100, 200_000, integer=True),
              widget=u.log_select("chains per sweep run", SWEEP_CHAINS,
                                  help="More chains lower the sampling floor of the "
                                       "discrepancy.")),
        Field("sw_lo", d["sw_lo"], number(1e-5, 10, positive=True), fmt_float,
              widget=u.number_box("ε from", min_value=1e-5, max_value=10.0, format="%g")),
        Field("sw_hi", d["sw_hi"], number(1e-5, 10, positive=True), fmt_float,
              widget=u.number_box("ε to", min_value=1e-5, max_value=10.0, format="%g")),
    ]


def sampler_stages(*, with_sampler: bool = True, sweep: bool = False) -> list[u.Stage]:
    """Target (and sampler) first: the other settings' defaults depend on them."""
    first = [target_field()]
    if with_sampler:
        first.append(Field("sampler", "sgld", choice(tuple(SAMPLER_LABELS)),
                           widget=_sampler_widget))
    def run_fields(v: Mapping[str, Any]) -> list[Field]:
        fs = sampler_fields(v["target"], v.get("sampler", "sgld"), with_sampler=with_sampler)
        return [f for f in fs if f.name != "burn"] + param_fields(v["target"])

    stages: list[u.Stage] = [
        lambda v: first,
        run_fields,
        lambda v: [burn_field(v["target"], v.get("sampler", "sgld"), int(v["steps"]))],
    ]
    if sweep:
        stages.append(_sweep_fields)
    return stages


def sampler_sections(*, sweep: bool = False) -> list[u.Section]:
    secs = [
        u.Section("Target", ("target", *PARAM_NAMES)),
        u.Section("Sampler", ("sampler", "eps", "noise", "leapfrog", "friction", "levels",
                              "sigma_max", "steps", "chains", "T")),
        u.Section("start, seed, burn-in", ("init", "x0", "std", "seed", "burn"), expander=True),
    ]
    if sweep:
        secs.append(u.Section("ε sweep", ("sw_chains", "sw_lo", "sw_hi")))
    return secs


# -- the training page ------------------------------------------------------------------------

METHOD_LABELS = {"short-run": "short-run", "persistent": "persistent (PCD)",
                 "replay": "replay buffer", "exact": "exact gradient (grid)",
                 "adversarial": "adversarial (dynamics embedding)"}
WIDTHS = (16, 32, 64, 128, 256, 512)


def method_defaults(method: str, flow: str = train_live.DEFAULT_FLOW, data: str = ANY) -> dict:
    """eps, K, lr, iters of a method (or of the adversarial flow) on ``data``, from
    ebmcore.defaults."""
    if method == train_live.ADVERSARIAL:
        d = flow_defaults(flow, data)
        return {"eps": d["flow_step_size"], "K": d["flow_steps"], "lr": d["lr"],
                "iters": d["iters"]}
    d = training_defaults(method, data)
    return {"eps": d["step_size"], "K": max(1, d["steps"]), "lr": d["lr"], "iters": d["iters"]}


def _on_method(page: str) -> None:
    """A new data set, method or flow brings its own tuned eps, K, lr and iterations."""
    w = lambda n: state.widget_key(page, n)  # noqa: E731
    for k, v in method_defaults(ss[w("method")], ss[w("flow")], ss[w("data")]).items():
        ss[w(k)] = v


_ADV = _is("method", train_live.ADVERSARIAL)
_CHAINS = _not("method", "exact")


def train_fields(method: str, flow: str, data: str = ANY) -> list[Field]:
    """The training settings after data, method and flow, with that method's defaults."""
    d = method_defaults(method, flow, data)
    adv = method == train_live.ADVERSARIAL
    return [
        Field("width", 128, number(1, 1024, integer=True), widget=u.log_select("width", WIDTHS)),
        Field("depth", 2, number(1, 8, integer=True),
              widget=u.number_box("depth", min_value=1, max_value=8, step=1)),
        Field("eps", float(d["eps"]), number(hi=10, positive=True), fmt_float, show=_CHAINS,
              widget=u.number_box("ε (step size)", min_value=1e-6, max_value=10.0,
                                  format="%g")),
        Field("K", int(d["K"]), number(0 if adv else 1, 10_000, integer=True), show=_CHAINS,
              widget=lambda page, name, v: u.number_box(
                  "flow steps T" if _ADV(v) else "Langevin steps K per iteration",
                  min_value=0 if _ADV(v) else 1, max_value=10_000, step=1)(page, name, v)),
        Field("noise", True, boolean, fmt_bool,
              show=lambda v: _CHAINS(v) and not _ADV(v),
              widget=u.toggle("noise", help="Off: the negatives descend the energy without "
                                            "noise.")),
        Field("lr", float(d["lr"]), number(hi=1, positive=True), fmt_float,
              widget=u.number_box("learning rate", min_value=1e-7, max_value=1.0, format="%g")),
        Field("iters", int(d["iters"]), number(1, 1_000_000, integer=True),
              widget=u.number_box("iterations", min_value=1, max_value=1_000_000, step=100)),
        Field("seed", 0, number(0, 2**31 - 1, integer=True),
              widget=u.number_box("seed", min_value=0, max_value=2**31 - 1, step=1)),
    ]


TRAIN_STAGES: list[u.Stage] = [
    lambda v: [
        Field("data", "mixture", choice(tuple(dataset_names())), widget=u.select(
            "data set", dataset_names(), help="Toy point clouds, or exact samples of a "
            "registry target (then the KL to the true density is exact too).",
            on_change=_on_method)),
        Field("method", "persistent", choice(train_live.ALL_METHODS), widget=u.select(
            "negatives from", train_live.ALL_METHODS, fmt=METHOD_LABELS.get,
            on_change=_on_method)),
        Field("flow", train_live.DEFAULT_FLOW, choice(train_live.FLOWS), show=_ADV,
              widget=u.radio("flow of q_φ", train_live.FLOWS, on_change=_on_method,
                             help="Unit-Jacobian dynamics from a Gaussian q₀.")),
    ],
    lambda v: train_fields(v["method"], v["flow"], v["data"]),
]
TRAIN_SECTIONS = [
    u.Section("Data", ("data",)),
    u.Section("Method", ("method", "flow")),
    u.Section("Model", ("width", "depth")),
    u.Section(lambda v: "Flow" if _ADV(v) else "Sampler", ("eps", "K", "noise"),
              note=lambda v: None if _CHAINS(v) else
              "No chains: the negative phase is an exact sum over a grid."),
    u.Section("Optimisation", ("lr", "iters", "seed")),
]
