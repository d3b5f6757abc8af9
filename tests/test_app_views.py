"""The density-flow and sampler-zoo pages, the theory buttons that open them, and the
playground's ArviZ download, with AppTest: each page opens without an exception and its
controls change what the figures draw."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import dashboard
from dashboard import cache, flow_live, state
from ebmcore.energies import ValidationError

APP = str(Path(dashboard.__file__).parent / "streamlit_app.py")
FLOW = {"chains": "1000", "t": "1", "eps": "0.1", "grid": "64", "bins": "16"}


def _decode(obj):
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            a = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            return a.reshape([int(s) for s in str(obj["shape"]).split(",")]) \
                if "shape" in obj else a
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def charts(at: AppTest) -> list[dict]:
    return [_decode(json.loads(el.proto.spec)) for el in at.get("plotly_chart")]


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not [e for e in at.error if "unexpected problem" in e.value]
    return at


def open_page(file: str, query: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"steps": "10", "chains": "10"})  # the default page: keep it cheap
    run(at)
    at.query_params.clear()
    at.query_params.update(query)
    return run(at.switch_page(f"app_pages/{file}"))


def finish_flow(at: AppTest) -> AppTest:
    """Drive the flow job through the live fragment's step, then rerun the page."""
    j = at.session_state[state.key("run", "dynamics")]
    while not j.finished:
        flow_live.advance(j, 1.0)
    assert j.error is None, j.error
    return run(at.switch_page("app_pages/dynamics.py"))


def widget(at: AppTest, page: str, name: str):
    return at.get_by_key(state.widget_key(page, name))


# -- density flow ----------------------------------------------------------------------------


def test_flow_page_draws_both_panels_and_the_curves():
    at = finish_flow(open_page("dynamics.py", FLOW))
    figs = charts(at)
    assert len(figs) == 2
    flow = figs[0]
    assert [t["type"] for t in flow["data"]].count("heatmap") == 2
    assert len(flow["frames"]) == 11  # t = 0, 0.1, ..., 1: every step of 10 recorded
    names = {t.get("name") for t in flow["data"]}
    assert {"KL(ρ_t ‖ p), exact", "KL(histogram ‖ p), SGLD", "finite-N floor"} <= names
    assert any("slowest decay" in str(n) for n in names)  # a Gaussian: its exact rate
    labels = [m.label for m in at.metric]
    assert "exact KL(ρ_t ‖ p) at the end" in labels
    rate = next(m.value for m in at.metric if m.label == "decay rate λ_min(A)")
    assert float(rate) == pytest.approx(1 / 3, abs=1e-3)  # Sigma = [[2,1],[1,2]]: eig 1, 3
    assert at.query_params["t"] == "1.0" and at.query_params["eps"] == "0.1"


def test_flow_arrows_toggle_redraws_without_rerunning():
    at = finish_flow(open_page("dynamics.py", FLOW))
    job = at.session_state[state.key("run", "dynamics")]
    assert not any(t.get("name") == "−∇E" for t in charts(at)[0]["data"])
    widget(at, "dynamics", "arrows").set_value(True)
    run(at)
    assert at.session_state[state.key("run", "dynamics")] is job  # same job: no recompute
    assert sum(t.get("name") == "−∇E" for t in charts(at)[0]["data"]) == 4  # 2 panels x 2
    assert at.query_params["arrows"] == "1"


def test_flow_eps_change_starts_a_new_comparison():
    at = finish_flow(open_page("dynamics.py", FLOW))
    first = charts(at)[0]
    widget(at, "dynamics", "eps").set_value("0.2")
    at = finish_flow(run(at))
    second = charts(at)[0]
    assert len(second["frames"]) == 6 != len(first["frames"])  # t = 0, 0.2, ..., 1


def test_flow_page_refuses_bad_input_with_a_message():
    at = open_page("dynamics.py", {**FLOW, "chains": "9999999", "eps": "abc"})
    text = " ".join(w.value for w in at.warning)
    assert "chains" in text and "eps" in text  # URL values fell back to defaults, said so
    at = open_page("dynamics.py", {**FLOW, "target": "formula", "expr": "x +", "box": "-1,1,-1,1"})
    assert at.error and not at.exception


def test_flow_button_opens_the_playground_with_the_same_chains():
    at = finish_flow(open_page("dynamics.py", FLOW))
    at.button(key=state.widget_key("dynamics", "to_playground")).click()
    run(at)
    assert at.query_params["sampler"] == "sgld" and at.query_params["steps"] == "10"
    assert at.query_params["eps"] == "0.1" and at.query_params["chains"] == "1000"


# -- sampler zoo -----------------------------------------------------------------------------


@pytest.mark.parametrize("view,expect", [
    ("phase", "phase space"), ("race", "underdamped (BAOAB)"),
    ("stepwise", "accepted proposal")])
def test_zoo_views_open(view, expect):
    at = open_page("samplers.py", {"view": view, "rc_chains": "500", "rc_steps": "50"})
    (fig,) = charts(at)
    assert expect in json.dumps(fig, default=str)
    assert at.query_params["view"] == view


def test_zoo_annealed_needs_the_mixture_and_offers_it():
    at = open_page("samplers.py", {"view": "annealed", "an_chains": "500", "an_steps": "50"})
    assert not charts(at) and "mixture" in at.info[0].value
    at.button(key=state.widget_key("samplers", "to_mixture")).click()
    run(at)
    (fig,) = charts(at)
    assert {t["name"] for t in fig["data"]} == {
        "exact weight (±2 s.e.)", "annealed Langevin", "plain Langevin (SGLD)"}
    assert at.query_params["target"] == "mixture"


def test_zoo_stepwise_controls_change_the_animation():
    at = open_page("samplers.py", {"view": "stepwise", "sb_steps": "5", "sb_chains": "2"})
    hmc = charts(at)[0]
    assert len(hmc["frames"]) == 5
    widget(at, "samplers", "sb_sampler").set_value("mala")
    run(at)
    mala = charts(at)[0]
    # a MALA proposal is one segment per chain: start and proposal, 3 entries with the gap
    for fr in mala["frames"]:
        n = len(fr["data"][1]["x"]) + len(fr["data"][2]["x"])
        assert n == 2 * 3
    widget(at, "samplers", "sb_steps").set_value(8)
    run(at)
    assert len(charts(at)[0]["frames"]) == 8 and at.query_params["sb_steps"] == "8"


def test_zoo_theory_expander_shows_the_section():
    at = open_page("samplers.py", {"view": "phase"})
    assert any("BAOAB" in m.value for m in at.markdown)


# -- theory and playground -------------------------------------------------------------------


@pytest.mark.parametrize("key,expect", [
    ("go_fp", {"eps": "0.3", "init": "gaussian", "x0": "4, -3", "t": "10.0"}),
    ("go_sb_hmc", {"view": "stepwise", "target": "banana", "sb_sampler": "hmc"}),
    ("go_annealed", {"view": "annealed", "target": "mixture"})])
def test_theory_buttons_open_the_new_pages_with_their_settings(key, expect):
    at = open_page("theory.py", {})
    at.button(key=state.widget_key("theory", key)).click()
    run(at)
    q = at.query_params.to_dict() if hasattr(at.query_params, "to_dict") else dict(
        at.query_params)
    assert {k: q.get(k) for k in expect} == expect, q


def test_playground_offers_the_arviz_download(monkeypatch):
    at = open_page("playground.py", {"steps": "20", "chains": "20"})
    labels = [b.proto.label for b in at.get("download_button")]
    assert "download for ArviZ" in labels

    import dashboard.arviz_button as ab

    def missing() -> None:
        raise ValidationError(ab.__name__ + ": pip install -e \".[arviz]\"")

    monkeypatch.setattr(ab, "require_arviz", missing)
    widget(at, "playground", "seed").set_value(1)
    run(at)
    assert ".[arviz]" in " ".join(c.value for c in at.caption)
    assert "download for ArviZ" not in [b.proto.label for b in at.get("download_button")]


def _captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_flow_page_takes_the_targets_sgld_step_and_start():
    from ebmcore.targets.settings import settings_for
    short = {"chains": "1000", "t": "0.05", "grid": "64", "bins": "16"}  # eps left to the target
    at = open_page("dynamics.py", {**short, "target": "banana"})
    want = settings_for("banana", "sgld")
    w = lambda n: at.get_by_key(state.widget_key("dynamics", n)).value  # noqa: E731
    assert float(w("eps")) == want.step_size and w("init") == want.init  # a link's defaults
    at = open_page("dynamics.py", short)
    at.get_by_key(state.widget_key("dynamics", "target")).set_value("donut")
    at = finish_flow(run(at))
    want = settings_for("donut", "sgld")
    assert float(w("eps")) == want.step_size and w("std") == want.init_std
    assert w("chains") == 1000  # the flow's own settings stay
    assert f"donut's SGLD settings loaded: ε = {want.step_size:g}" in _captions(at)
    j = at.session_state[state.key("run", "dynamics")]
    assert j.config.step_size == want.step_size and j.config.init == "gaussian"


def test_flow_page_auto_eps_is_the_curvature_rule():
    from ebmcore.sampling.adapt import sgld_step_size
    at = open_page("dynamics.py", {"target": "formula", "eps": "auto", "chains": "1000",
                                   "t": "0.3", "grid": "64", "bins": "16"})
    at = finish_flow(at)
    j = at.session_state[state.key("run", "dynamics")]
    eps, _ = sgld_step_size(j.target, cache.density(j.key[0]))
    assert j.config.step_size == pytest.approx(eps) and "automatic ε" in _captions(at)
    # a formula starts over its view box (a Gaussian over it), not the whole quadrature box
    assert j.config.init == "view" and j.config.init_box == cache.view(j.key[0])


def test_zoo_takes_the_targets_step_sizes():
    from dashboard.url_views import zoo_defaults
    w = lambda n: at.get_by_key(state.widget_key("samplers", n)).value  # noqa: E731
    at = open_page("samplers.py", {"view": "phase", "ps_steps": "5", "target": "banana"})
    assert w("ps_eps") == zoo_defaults("banana")["ps_eps"] < 0.3  # a link's defaults
    at = open_page("samplers.py", {"view": "stepwise", "sb_steps": "3", "sb_chains": "2"})
    at.get_by_key(state.widget_key("samplers", "target")).set_value("donut")
    run(at)
    want = zoo_defaults("donut")
    assert w("sb_eps") == want["sb_eps"] != 0.3
    assert f"donut's step sizes loaded: ε = {want['ps_eps']:g} (phase space)" in _captions(at)
    assert zoo_defaults("gaussian") == {"ps_eps": 0.3, "rc_sgld": 0.1, "rc_ud": 0.3,
                                        "sb_eps": 0.3}  # the reference example keeps its own
