"""Widget values -> ebmcore inputs (targets, sample configs, trainers), and the sampler
pages' whole round trip.

:func:`sampler_form` is URL -> widgets -> target and :class:`SampleConfig` ->
URL for the playground and SGLD vs MAP.  Building raises ``ValidationError``
with a message for users; bad input is reported in the page (under the control
that holds it when possible) and the previous valid inputs stay in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st

from dashboard import cache, state, train_live, url, url_fields
from dashboard.url import AUTO, EPS_MAX
from dashboard.url_fields import FORMULA
from ebmcore.ebm.models import ModelConfig
from ebmcore.energies import ValidationError
from ebmcore.sampling.adapt import sgld_step_size
from ebmcore.sampling.runner import SampleConfig
from ebmcore.targets.formula import validate_box
from ebmcore.targets.registry import TARGETS

__all__ = ["FormResult", "build_sample_config", "build_target_key", "build_trainer",
           "parse_eps", "run_inputs", "sampler_form"]

ss = st.session_state


@dataclass(frozen=True)
class FormResult:
    """What a sampler page runs with."""

    target_key: tuple  # cache key of the target (see dashboard.cache)
    config: SampleConfig  # validated run settings (auto eps: a placeholder step)
    auto: bool  # eps is chosen automatically when the run starts
    values: dict[str, Any]  # the widget values these came from (what the URL shows)
    changed: bool  # False when bad input made us fall back to the previous valid inputs


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


def parse_eps(t: str) -> float | None:
    """The step size typed in the eps field (None for auto), or ValidationError."""
    if str(t).strip().lower() == AUTO:
        return None
    try:
        v = float(t)
    except ValueError:
        raise ValidationError(f"eps: {t!r} is not a number") from None
    if not (math.isfinite(v) and 0 < v <= EPS_MAX):
        raise ValidationError(f"eps: {t!r} must be > 0 and at most {EPS_MAX:g}")
    return v


def build_sample_config(values: dict[str, Any], **over: Any) -> SampleConfig:
    """A validated SampleConfig from widget values (``over`` overrides fields); an auto
    eps becomes the placeholder 1.0, replaced when the run starts."""
    sampler = values.get("sampler", "sgld")
    eps = parse_eps(values["eps"])
    cfg = SampleConfig(
        sampler=sampler,
        step_size=1.0 if eps is None else eps,
        steps=int(values["steps"]),
        chains=int(values["chains"]),
        noise=bool(values.get("noise", True)) or sampler != "sgld",
        temperature=float(values["T"]),
        n_leapfrog=int(values.get("leapfrog", 10)),
        friction=float(values.get("friction", 1.0)),
        levels=int(values.get("levels", 5)),
        sigma_max=float(values.get("sigma_max", 2.0)),
        burn_in=int(values["burn"]),
        seed=int(values["seed"]),
        init=values["init"],
        init_point=_point(values["x0"]),
        init_std=float(values["std"]),
        # events (live redraws) every ~1M chain-steps, at most 50 per run: big runs stay live
        report_every=max(1, min(max(1, int(values["steps"]) // 50),
                                1_000_000 // int(values["chains"]))),
    )
    return replace(cfg, **over).validate()


def _defaults(with_sampler: bool) -> tuple:
    dv = {"target": "gaussian", "sampler": "sgld"}
    dv.update({f.name: f.default for f in url_fields.sampler_fields(with_sampler=with_sampler)})
    dv.update({f.name: f.default for f in url_fields.param_fields("gaussian")})
    return build_target_key(dv), build_sample_config(dv), dv


def sampler_form(page: str, *, with_sampler: bool = True, sweep: bool = False) -> FormResult:
    """Render the sidebar of a sampler page and return what to run.

    Args:
        page: page id.
        with_sampler: offer the sampler menu and its controls (else SGLD with noise).
        sweep: also the eps sweep's settings (SGLD vs MAP).
    """
    fields, values, errors, slots = url.form(
        page, url_fields.sampler_stages(with_sampler=with_sampler, sweep=sweep),
        url_fields.sampler_sections(sweep=sweep))
    note = url_fields.loaded_note(page, values)
    if note:
        slots["Target"].caption(note)
    msgs: list[tuple[str, str]] = []
    tkey = cfg = None
    try:
        tkey = build_target_key(values)
        cache.density(tkey)  # raises if the energy is not normalisable on its box
    except ValidationError as exc:
        tkey = None
        msgs.append(("target", str(exc)))
    try:  # a uniform start covers the view box, where the mass is
        cfg = build_sample_config(values, init_box=None if tkey is None else cache.view(tkey))
    except ValidationError as exc:
        if "eps" not in errors:
            msgs.append(("settings", str(exc)))
    ok = not msgs and not errors and tkey is not None and cfg is not None
    valid = state.get(ss, "valid", page) or _defaults(with_sampler)
    if ok:
        valid = (tkey, cfg, dict(values))
        state.put(ss, "valid", page, valid)
    for where, m in msgs:
        (slots["Target"] if where == "target" else st).error(m, icon=":material/error:")
    if not ok:
        st.info("Showing the last valid settings until the input is fixed.", icon=":material/undo:")
    good = valid[2]
    url_fields_of_good = [f for f in fields if f.name in good]
    if good["target"] != values["target"]:  # the parameters are the last valid target's
        url_fields_of_good = [f for f in url_fields_of_good
                              if not f.name.startswith("p.") and f.name not in ("expr", "box")]
        url_fields_of_good += url_fields.param_fields(good["target"])
    url.write_url(page, url_fields_of_good, good)
    return FormResult(valid[0], valid[1], parse_eps(good["eps"]) is None, good, ok)


def build_trainer(values: dict[str, Any]) -> Any:
    """The trainer of the training page's values; ValidationError if bad."""
    ds = cache.dataset(values["data"], int(values["seed"]))
    model = ModelConfig(width=int(values["width"]), depth=int(values["depth"]))
    return train_live.make_trainer(
        ds, values["method"], model, eps=float(values["eps"]), steps=int(values["K"]),
        noise=bool(values["noise"]), lr=float(values["lr"]), iters=int(values["iters"]),
        seed=int(values["seed"]), flow=values["flow"], flow_steps=int(values["K"]))


def run_inputs(tkey: tuple, cfg: SampleConfig, auto: bool) -> tuple[SampleConfig, str | None]:
    """``cfg`` with an automatic SGLD eps resolved (the curvature rule, instant), and how eps
    was chosen (None when given). ValidationError where auto cannot work (no positive
    curvature where the mass is). MALA and HMC adapt inside their run
    (:func:`dashboard.live.start_auto`)."""
    if not auto:
        return cfg, None
    eps, why = sgld_step_size(cache.target(tkey), cache.density(tkey))
    return replace(cfg, step_size=eps).validate(), why
