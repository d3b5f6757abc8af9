"""The sampler pages on every target: settings a target brings, links that pin values,
the automatic step size, the view box, and the words under a large R-hat (AppTest)."""

from __future__ import annotations

import pytest
import torch
from test_app import FAST, TINY, charts, finish_live, metric, open_app, run, warnings, widget

from dashboard import state
from ebmcore.exact.density import quadrature
from ebmcore.exact.view import view_box
from ebmcore.sampling import SAMPLERS
from ebmcore.targets.registry import TARGETS, make_target
from ebmcore.targets.settings import settings_for


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_config(at, page="playground"):
    r = at.session_state[state.key("run", page)]
    return (r[0] if isinstance(r, tuple) else r).memo["cfg"]


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_picking_a_target_loads_its_settings_with_a_note():
    at = open_app(TINY)
    widget(at, "playground", "target").set_value("banana")
    at = finish_live(run(at), "playground", "playground.py")
    want = settings_for("banana", "sgld")
    w = lambda n: widget(at, "playground", n).value  # noqa: E731
    assert float(w("eps")) == want.step_size and w("steps") == want.steps
    assert w("chains") == want.chains and w("burn") == want.burn_in and w("init") == want.init
    assert f"banana's SGLD settings loaded: ε = {want.step_size:g}" in captions(at)
    cfg = run_config(at)
    assert (cfg.step_size, cfg.steps, cfg.init_std) == (want.step_size, want.steps,
                                                        want.init_std)
    assert at.query_params["eps"] == f"{want.step_size:g}" and at.query_params["target"] == "banana"
    # a sampler brings its own step size on the same target, and keeps the run's length
    widget(at, "playground", "sampler").set_value("hmc")
    at = finish_live(run(at), "playground", "playground.py")
    assert float(widget(at, "playground", "eps").value) == settings_for("banana", "hmc").step_size
    assert widget(at, "playground", "steps").value == want.steps
    assert "banana's HMC settings loaded" in captions(at)
    widget(at, "playground", "eps").input("0.05")  # the user's own value: the note goes
    at = finish_live(run(at), "playground", "playground.py")
    assert "settings loaded" not in captions(at) and at.query_params["eps"] == "0.05"


def test_a_link_pins_what_it_names_and_the_target_fills_the_rest():
    at = open_app({"target": "funnel", "eps": "0.02", "steps": "300", "chains": "100"})
    want = settings_for("funnel", "sgld")
    w = lambda n: widget(at, "playground", n).value  # noqa: E731
    assert (w("eps"), w("steps"), w("chains")) == ("0.02", 300, 100)  # pinned
    assert w("init") == want.init and w("std") == want.init_std  # the target's own
    assert w("burn") < 300  # the target's burn-in would exceed the pinned length: a quarter
    assert run_config(at).step_size == 0.02 and at.query_params["eps"] == "0.02"
    assert "settings loaded" not in captions(at)  # nothing was replaced


def test_auto_step_size_on_sgld_is_half_the_inverse_curvature():
    at = open_app({**FAST, "eps": "auto"})
    # N(0, S), S = [[2, 1], [1, 2]]: the Hessian of E is S^-1, eigenvalues 1/3 and 1, so
    # lambda_max = 1 and SGLD's automatic eps is 0.5 / 1 (the Hessian of a quadratic is
    # exact at every grid point).
    cfg = run_config(at)
    assert cfg.step_size == pytest.approx(0.5, rel=1e-6)
    assert "ε = 0.5 (auto)" in str(charts(at)[0]["layout"]["title"])
    assert "Automatic step size" in captions(at) and "lambda_max" in captions(at)
    assert at.query_params["eps"] == "auto" and widget(at, "playground", "eps").value == "auto"
    assert not at.error


def test_auto_step_size_on_mala_tunes_acceptance():
    at = open_app({"eps": "auto", "sampler": "mala", "steps": "1000", "burn": "500",
                   "chains": "500"})
    cfg = run_config(at)
    assert "dual averaging" in captions(at)
    # dual averaging aims at MALA's 0.574; with 500 chains each step's mean acceptance has
    # sd < 0.5 / sqrt(500) = 0.022, and the frozen eps leaves the run within 0.1 of it
    acc = float(metric(at, "acceptance").rstrip("%")) / 100
    assert abs(acc - 0.574) < 0.1, (acc, cfg.step_size)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_target_and_sampler_opens_at_its_defaults(target, sampler):
    # The full-length runs at every default are checked in ebmcore
    # (tests/test_target_settings.py); here the page loads each target's eps, start and
    # burn-in and runs 300 steps of them, where an unstable eps diverges within a few steps.
    at = open_app({"target": target, "sampler": sampler, "chains": "40", "steps": "300"})
    assert not at.error, [e.value for e in at.error]
    assert "diverged" not in warnings(at)
    assert metric(at, "diverged chains") == "0"


def test_the_chains_figure_frames_the_view_box():
    at = open_app({"target": "banana", "sampler": "hmc", "steps": "200", "chains": "100"})
    t = make_target("banana")
    x0, x1, y0, y1 = view_box(quadrature(t.energy, t.box, 256))
    lay = charts(at)[0]["layout"]
    assert lay["xaxis"]["range"] == pytest.approx([x0, x1], abs=1e-6)
    assert lay["yaxis"]["range"] == pytest.approx([y0, y1], abs=1e-6)
    assert (y1 - y0) < 0.5 * (t.box[3] - t.box[2])  # far tighter than the quadrature box
    # the exact numbers still integrate over the full box
    gd = quadrature(t.energy, t.box, 256)
    assert float(metric(at, "log Z (exact)")) == pytest.approx(gd.log_z, abs=1e-3)


def test_r_hat_card_says_when_chains_sit_in_separate_modes():
    at = open_app({"target": "mixture", "chains": "200"})
    text = " ".join(i.value for i in at.info)
    assert "separate modes" in text and "kT" in text
    one = open_app(FAST)  # one Gaussian mode: no such words
    assert "separate modes" not in " ".join(i.value for i in one.info)


@pytest.mark.parametrize("target", list(TARGETS))
def test_versus_sweep_range_surrounds_the_targets_default(target):
    at = open_app({**TINY, "target": target}, page="versus.py")
    assert not at.error, [e.value for e in at.error]
    eps = settings_for(target, "sgld").step_size
    lo, hi = widget(at, "versus", "sw_lo").value, widget(at, "versus", "sw_hi").value
    assert lo < eps < hi and lo == pytest.approx(eps / 15, rel=0.05)
    assert hi == pytest.approx(eps * 5, rel=0.05)
    assert float(at.query_params["sw_lo"]) == lo  # and the link reopens them
    again = open_app(dict(at.query_params), page="versus.py")
    assert widget(again, "versus", "sw_lo").value == lo and not warnings(again)
