"""Widgets -> ebmcore configs, and the URL: the sampler pages' controls.

Each control is a Streamlit widget whose session-state key comes from
:func:`dashboard.state.widget_key`; its starting value is set by
:func:`dashboard.settings.load` from the URL, the page's remembered settings or
the default.  Widgets never receive ``value=``: session state is the one source.
Building ebmcore objects from the values raises ``ValidationError`` with a
message for users; the pages show it and keep the previous valid inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from dashboard import cache, state
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
from ebmcore.energies import Param, ValidationError
from ebmcore.sampling.runner import MAX_CHAINS, MAX_STEPS, SampleConfig
from ebmcore.targets.formula import validate_box
from ebmcore.targets.registry import TARGETS

__all__ = [
    "FORMULA",
    "SAMPLER_LABELS",
    "TARGET_CHOICES",
    "build_sample_config",
    "build_target_key",
    "eps_control",
    "param_fields",
    "relevant",
    "sampler_fields",
    "select_log",
    "target_controls",
]

FORMULA = "formula"  # the "own formula" entry of the target select
TARGET_CHOICES = (*TARGETS, FORMULA)
# two Gaussian wells: gradients grow linearly, so the default eps 0.3 is stable from any start
DEFAULT_FORMULA = "-logsumexp(-((x - 2)**2 + y**2) / 2, -((x + 2)**2 + y**2) / 2)"
DEFAULT_BOX = "-4, 4, -4, 4"
SAMPLER_LABELS = {"sgld": "SGLD", "mala": "MALA", "hmc": "HMC"}
INIT_LABELS = {"uniform": "uniform on box", "gaussian": "Gaussian", "point": "point"}

EPS_GRID = tuple(sorted({round(m * 10.0**e, 6) for e in range(-3, 1)
                         for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)} | {10.0}))
STEPS_GRID = (1, 10, 20, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10_000, 20_000,
              50_000, 100_000, 200_000, 500_000, 1_000_000)
CHAINS_GRID = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000,
               100_000, 200_000, 500_000, 1_000_000, 2_000_000)
TEMP_GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
EPS_MAX = 10.0


def _eps_text(t: str) -> str:
    number(positive=True, hi=EPS_MAX)(t)
    return t.strip()


def sampler_fields(*, with_sampler: bool = True) -> list[Field]:
    """The settings of a sampling run, as URL fields (defaults: the reference example)."""
    c = SampleConfig()
    fields = [
        Field("target", "gaussian", choice(TARGET_CHOICES)),
        Field("eps", fmt_float(c.step_size), _eps_text),
        Field("steps", c.steps, number(1, MAX_STEPS, integer=True)),
        Field("chains", c.chains, number(1, MAX_CHAINS, integer=True)),
        Field("T", c.temperature, number(hi=100, positive=True), fmt_float),
        Field("seed", c.seed, number(0, 2**31 - 1, integer=True)),
        Field("init", c.init, choice(tuple(INIT_LABELS))),
        Field("x0", "0, 0", number_list(2)),
        Field("std", c.init_std, number(hi=1e3, positive=True), fmt_float),
        Field("burn", c.burn_in, number(0, MAX_STEPS - 1, integer=True)),
    ]
    if with_sampler:
        fields[1:1] = [
            Field("sampler", c.sampler, choice(tuple(SAMPLER_LABELS))),
            Field("noise", c.noise, boolean, fmt_bool),
            Field("leapfrog", c.n_leapfrog, number(1, 1000, integer=True)),
        ]
    return fields


def _param_parse(name: str, p: Param) -> Callable[[str], Any]:
    def parse(t: str) -> Any:
        try:
            v = p.validate(name, t)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        return ", ".join(f"{x:g}" for x in v) if isinstance(v, tuple) else v

    return parse


def _param_default(p: Param) -> Any:
    if isinstance(p.default, tuple):
        return ", ".join(f"{x:g}" for x in p.default)
    return p.default


def param_fields(target_name: str) -> list[Field]:
    """URL fields of a target's parameters (``p.<name>``), or of the formula."""
    if target_name == FORMULA:
        return [Field("expr", DEFAULT_FORMULA, text(2000)),
                Field("box", DEFAULT_BOX, number_list(4))]
    spec = TARGETS.get(target_name)
    if spec is None:
        return []
    return [Field(f"p.{k}", _param_default(p), _param_parse(k, p), _fmt_param)
            for k, p in spec.params.items()]


def _fmt_param(v: Any) -> str:
    return fmt_float(v) if isinstance(v, float) else str(v)


def relevant(fields: Sequence[Field], values: dict[str, Any]) -> list[Field]:
    """The fields that matter for ``values`` (e.g. leapfrog steps only for HMC): the URL's."""
    sampler, init = values.get("sampler", "sgld"), values.get("init", "uniform")
    skip = set()
    if sampler != "hmc":
        skip.add("leapfrog")
    if sampler != "sgld":
        skip.add("noise")
    if init == "uniform":
        skip.add("x0")
    if init != "gaussian":
        skip.add("std")
    return [f for f in fields if f.name not in skip and f.name in values]


# -- building ebmcore inputs -----------------------------------------------------


def build_target_key(values: dict[str, Any]) -> cache.TargetKey:
    """Cache key of the target described by the widget values; ValidationError if bad."""
    name = values["target"]
    if name == FORMULA:
        parts = [p for p in str(values["box"]).replace(";", ",").split(",") if p.strip()]
        try:
            box = validate_box([float(p) for p in parts])
        except ValueError as exc:
            raise ValidationError(f"box: {exc}") from None
        return (FORMULA, str(values["expr"]), box)
    spec = TARGETS[name]
    return cache.target_key(name, {k: values[f"p.{k}"] for k in spec.params})


def _point(t: str) -> tuple[float, float]:
    try:
        a, b = (float(p) for p in t.replace(";", ",").split(",") if p.strip())
    except ValueError:
        raise ValidationError(f"initial point {t!r} must be two numbers 'x, y'") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValidationError("initial point must be finite")
    return (a, b)


def parse_eps(t: str) -> float:
    """The step size typed in the eps field, or ValidationError."""
    try:
        return float(number(positive=True, hi=EPS_MAX)(str(t)))
    except ValueError as exc:
        raise ValidationError(f"eps: {exc}") from None


def build_sample_config(values: dict[str, Any], **over: Any) -> SampleConfig:
    """A validated SampleConfig from widget values (``over`` overrides fields)."""
    sampler = values.get("sampler", "sgld")
    cfg = SampleConfig(
        sampler=sampler,
        step_size=parse_eps(values["eps"]),
        steps=int(values["steps"]),
        chains=int(values["chains"]),
        noise=bool(values.get("noise", True)) or sampler != "sgld",
        temperature=float(values["T"]),
        n_leapfrog=int(values.get("leapfrog", 10)),
        burn_in=int(values["burn"]),
        seed=int(values["seed"]),
        init=values["init"],
        init_point=_point(values["x0"]),
        init_std=float(values["std"]),
        # events (live redraws) every ~1M chain-steps, at most 50 per run: big runs stay live
        report_every=max(1, min(max(1, int(values["steps"]) // 50),
                                1_000_000 // int(values["chains"]))),
    )
    if over:
        from dataclasses import replace

        cfg = replace(cfg, **over)
    return cfg.validate()


# -- widgets ------------------------------------------------------------------------


def _fmt_num(v: float) -> str:
    if v >= 1000 and float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:g}"


def select_log(page: str, name: str, label: str, grid: Sequence[float], *,
               help: str | None = None, fmt: Callable[[Any], str] = _fmt_num,
               on_change: Callable[[], None] | None = None) -> Any:
    """A select-slider on a log-spaced grid that also holds the current value."""
    wk = state.widget_key(page, name)
    options = sorted(set(grid) | {st.session_state[wk]})
    return st.select_slider(label, options=options, key=wk, help=help, format_func=fmt,
                            on_change=on_change)


def eps_control(page: str, label: str = "step size ε") -> str | None:
    """A log slider and an exact field for eps, kept in step; returns the field's error."""
    tk, sk = state.widget_key(page, "eps"), state.widget_key(page, "eps_slider")
    try:
        st.session_state[sk] = parse_eps(st.session_state[tk])
    except ValidationError:
        st.session_state.setdefault(sk, SampleConfig().step_size)

    def from_slider() -> None:
        st.session_state[tk] = f"{st.session_state[sk]:g}"

    options = sorted(set(EPS_GRID) | {st.session_state[sk]})
    st.select_slider(label, options=options, key=sk, format_func=lambda v: f"{v:g}",
                     on_change=from_slider,
                     help="Langevin step size on a log scale; type an exact value below. "
                          "For HMC, the leapfrog step.")
    st.text_input("ε (exact)", key=tk, help="Any number > 0 (at most 10).")
    try:
        parse_eps(st.session_state[tk])
    except ValidationError as exc:
        return str(exc)
    return None


def _param_widget(page: str, name: str, p: Param) -> None:
    wk = state.widget_key(page, f"p.{name}")
    if not isinstance(p.default, tuple):  # number_input wants one numeric type throughout
        st.session_state[wk] = (int if p.integer else float)(st.session_state[wk])
    if isinstance(p.default, tuple):
        hint = "row-major a, b, c, d" if p.positive_definite else f"{p.size} numbers"
        st.text_input(f"{name} ({hint})", key=wk, help=p.doc)
    elif p.integer:
        st.number_input(name, min_value=int(p.low) if p.low is not None else None,
                        max_value=int(p.high) if p.high is not None else None, step=1,
                        key=wk, help=p.doc)
    else:
        span = (p.high - p.low) if p.low is not None and p.high is not None else 10.0
        step = 10.0 ** math.floor(math.log10(span / 20)) if span > 0 else 0.1
        st.number_input(name, min_value=p.low, max_value=p.high, step=step, format="%g",
                        key=wk, help=p.doc)


def target_controls(page: str) -> None:
    """The target select and its parameters (or the formula box)."""
    wk = state.widget_key(page, "target")
    st.selectbox("target", TARGET_CHOICES, key=wk,
                 format_func=lambda k: "✎ own formula" if k == FORMULA else k,
                 help="Energy E(x); the density is p(x) = exp(-E(x)) / Z.")
    name = st.session_state[wk]
    if name == FORMULA:
        st.text_area("E(x, y) =", key=state.widget_key(page, "expr"), height=80,
                     help="Numbers, + - * / **, x y r theta pi e, and exp log sqrt abs sin "
                          "cos tanh sigmoid softplus logsumexp min max clamp ...")
        st.text_input("box (xmin, xmax, ymin, ymax)", key=state.widget_key(page, "box"))
    else:
        spec = TARGETS[name]
        st.caption(spec.doc)
        for k, p in spec.params.items():
            _param_widget(page, k, p)
