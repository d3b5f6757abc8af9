"""The Streamlit app, page by page, with AppTest; and the live step logic as plain functions.

AppTest runs every page script in this process without a browser.  It does not
tick ``st.fragment(run_every=...)``: the pages compute a first slice of every run
in the page run itself, and :func:`finish_live` drives what is left through the
step the live fragment runs before a test reads the final page; the live-update
logic (:mod:`dashboard.live`, :mod:`dashboard.train_live`) is tested directly below.
Figures are read back from the element's Plotly JSON, with Plotly's base64 typed
arrays decoded.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import dashboard
from dashboard import live, state, train_live, url_fields
from ebmcore.exact.density import quadrature
from ebmcore.exact.sweep import SweepConfig, sweep
from ebmcore.sampling.runner import SampleConfig
from ebmcore.targets.registry import make_target

APP = str(Path(dashboard.__file__).parent / "streamlit_app.py")
FAST = {"steps": "200", "chains": "300"}  # small runs: each page run finishes them
TINY = {"steps": "10", "chains": "10"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: intra-op threads only add contention (the app does the same)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- helpers ---------------------------------------------------------------------------


def open_app(query: dict | None = None, page: str | None = None) -> AppTest:
    """The app on ``page`` (a file in app_pages) with ``query`` in the URL."""
    at = AppTest.from_file(APP, default_timeout=60)
    if page is None:
        at.query_params.update(query or {})
        return finish_live(run(at), "playground", "playground.py")
    at.query_params.update(TINY)  # the default page runs first: keep it cheap
    run(at)
    at.query_params.clear()
    at.query_params.update(query or {})
    run(at.switch_page(f"app_pages/{page}"))
    live_page = {"playground.py": "playground", "versus.py": "versus"}.get(page)
    return at if live_page is None else finish_live(at, live_page, page)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not [e for e in at.error if "unexpected problem" in e.value]
    return at


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
    """Every Plotly chart on the page as a dict with numpy arrays."""
    return [_decode(json.loads(el.proto.spec)) for el in at.get("plotly_chart")]


def chain_points(at: AppTest) -> np.ndarray:
    """The chain positions drawn in the page's first chart."""
    for tr in charts(at)[0]["data"]:
        if tr.get("mode") == "markers" and str(tr.get("name", "")).startswith("chains"):
            return np.stack([np.asarray(tr["x"]), np.asarray(tr["y"])], 1)
    raise AssertionError("no chain points in the first chart")


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def widget(at: AppTest, page: str, name: str):
    return at.get_by_key(state.widget_key(page, name))


def finish_live(at: AppTest, page: str, file: str) -> AppTest:
    """Drive ``page``'s live run to its end through the step the live fragment runs, then
    rerun that page (``file`` in app_pages): AppTest does not tick fragments, and a big run
    outlasts the page run."""
    r = at.session_state[state.key("run", page)]
    runs = r if isinstance(r, tuple) else (r,)
    if all(x.finished for x in runs):
        return at
    while not all(x.finished for x in runs):
        live.advance_all(runs, 1.0)
    assert not any(x.error for x in runs), [x.error for x in runs]
    return run(at.switch_page(f"app_pages/{file}"))


def warnings(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning)


# -- playground ------------------------------------------------------------------------


def test_playground_opens_on_the_reference_example():
    at = open_app()
    w = lambda n: widget(at, "playground", n).value  # noqa: E731
    assert (w("target"), w("sampler"), w("eps"), w("steps"), w("chains"), w("noise")) == (
        "gaussian", "sgld", "0.3", 1000, 500, True)
    assert w("p.cov") == "2, 1, 1, 2"
    # exact log Z of N(0, [[2,1],[1,2]]): log(2 pi sqrt(det)) = log(2 pi sqrt 3)
    assert float(metric(at, "log Z (exact)")) == pytest.approx(math.log(2 * math.pi * 3**0.5),
                                                               abs=1e-4)
    # chains (the open tab), marginals, curves: the Replay tab's chart waits for its tab
    assert len(charts(at)) == 3 and len(chain_points(at)) == 500
    assert at.query_params["eps"] == "0.3" and at.query_params["p.cov"] == "2, 1, 1, 2"


def test_a_big_live_run_draws_a_sample_of_its_chains_as_movable_svg_points():
    """While 1e5 chains run, the live chart shows LIVE_POINTS of them as SVG markers (the
    chart moves those without a redraw); the finished run's chart draws up to MAX_POINTS."""
    from dashboard.figures.sampling import LIVE_POINTS, MAX_POINTS

    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"chains": "100000", "steps": "3000"})  # seconds: live at first
    run(at)
    (live_el,) = at.get("component_instance")
    traces = live_states(live_el)[-1][:-1]  # the newest state's traces (the layout last)
    chains = [t for t in traces if str(t.get("name", "")).startswith("chains")]
    assert len(chains) == 1 and chains[0]["type"] == "scatter"
    assert len(chains[0]["x"]) == LIVE_POINTS and f"of {100_000:,} drawn" in chains[0]["name"]
    finish_live(at, "playground", "playground.py")
    (final,) = [tr for tr in charts(at)[0]["data"] if str(tr.get("name", "")).startswith("chains")]
    assert final["type"] == "scattergl" and len(final["x"]) == MAX_POINTS


def live_states(el) -> list[list[dict]]:
    """The states a live chart's render carries, oldest first, each its parsed parts."""
    args = json.loads(el.proto.json_args)
    text = dict(zip(args["tags"], args["parts"], strict=True))
    assert all(isinstance(t, str) for t in text.values()), "a first render carries every text"
    return [[json.loads(text[tag]) for tag in state] for state in args["states"]]


def test_a_live_tick_sends_the_run_at_successive_moments_each_text_once():
    # a tick computes SHOTS slices and captures the run after each: the chart plays them
    # back a frame apart; what the states share (the density, the layout) travels once
    from dashboard.live_view import FRAME_S, SHOTS

    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"chains": "100000", "steps": "3000"})  # seconds: live at first
    run(at)
    (live_el,) = at.get("component_instance")
    args = json.loads(live_el.proto.json_args)
    states = live_states(live_el)
    assert len(states) == SHOTS and args["gap"] == round(FRAME_S * 1000)
    assert len(args["parts"]) == len({t for st_ in args["states"] for t in st_})
    assert len({st_[0] for st_ in args["states"]}) == 1  # one density tag for all
    assert states[0][0]["type"] == "contour"
    chains = [next(t for t in st_ if str(t.get("name", "")).startswith("chains"))["x"]
              for st_ in states]
    assert all(a != b for a, b in itertools.pairwise(chains)), "the run moved between states"


def test_the_replay_tab_draws_its_chart_from_the_same_run_when_opened():
    at = open_app(TINY)
    before = chain_points(at)
    assert not any(c.get("frames") for c in charts(at))
    at.session_state[state.widget_key("playground", "view_tab")] = "Replay"
    run(at)
    figs = charts(at)
    replay = [c for c in figs if c.get("frames")]
    assert len(figs) == 3 and len(replay) == 1  # replay instead of the chains, same run:
    last = replay[0]["frames"][-1]["data"][0]  # its last frame is the chains' final positions
    assert np.allclose(np.stack([np.asarray(last["x"]), np.asarray(last["y"])], 1), before,
                       atol=1e-6)


def test_the_moments_table_gives_chains_and_exact_values():
    at = open_app(TINY)
    table = next(m.value for m in at.markdown if m.value.startswith("| "))
    rows = {r.split("|")[1].strip(): r.split("|")[2:-1] for r in table.splitlines()[2:]}
    assert set(rows) >= {"chains (final positions)", "exact target"}
    # the exact target of the reference example: mean 0, Sigma = [[2, 1], [1, 2]]
    assert [float(v) for v in rows["exact target"]] == pytest.approx([0, 0, 2, 1, 2], abs=1e-4)



def test_every_run_tells_the_browser_each_widgets_value(monkeypatch):
    """A browser that lost its widget states (a reconnect, a remount) must still be sent the
    values that run, not left to draw each element's own default (the toggle off)."""
    from streamlit.testing.v1 import element_tree

    at = open_app(TINY)
    full = element_tree.ElementTree.get_widget_states

    def lost(tree):  # the browser reports no widget state at all
        ws = full(tree)
        del ws.widgets[:]
        return ws

    monkeypatch.setattr(element_tree.ElementTree, "get_widget_states", lost)
    run(at)
    fields = url_fields.sampler_fields() + url_fields.param_fields("gaussian")
    names = ["target", "sampler"] + [  # the others are drawn only for other settings
        f.name for f in fields
        if f.name not in ("x0", "std", "leapfrog", "friction", "levels", "sigma_max")]
    for name in names:
        el = widget(at, "playground", name)
        assert el.proto.set_value, name
    noise = widget(at, "playground", "noise").proto
    assert noise.value is True and at.session_state[state.widget_key("playground", "noise")]

CONTROLS = [  # (widget, new value, how the run must change)
    ("eps", "1.0", "spread"), ("eps_slider", 1.0, "spread"), ("sampler", "mala", "accept"),
    ("noise", False, "collapse"), ("steps", 500, "xrange"), ("chains", 1000, "count"),
    ("T", 2.0, "spread"), ("seed", 1, "points"), ("init", "point", "points"),
    ("burn", 100, "burn"), ("target", "banana", "logz"), ("p.cov", "1, 0, 0, 1", "logz"),
]


@pytest.mark.parametrize(("name", "value", "effect"), CONTROLS, ids=[c[0] for c in CONTROLS])
def test_each_playground_control_changes_the_run(name, value, effect):
    at = open_app(FAST)
    before_pts, before_logz = chain_points(at), metric(at, "log Z (exact)")
    before_tv = metric(at, "discrepancy (TV)")
    w = widget(at, "playground", name)
    (w.input(value) if name in ("eps", "p.cov") else w.set_value(value))
    finish_live(run(at), "playground", "playground.py")  # a new target brings longer runs
    pts, figs = chain_points(at), charts(at)
    if effect == "spread":  # a larger eps or T widens SGLD's law
        assert np.std(pts) > 1.05 * np.std(before_pts)
        assert metric(at, "discrepancy (TV)") != before_tv
    elif effect == "accept":
        assert metric(at, "acceptance").endswith("%")
    elif effect == "collapse":  # gradient descent: every chain on the mode (0, 0)
        assert np.abs(pts).max() < 1e-2
    elif effect == "xrange":
        assert figs[-1]["layout"]["xaxis"]["range"] == [0, 500]  # the curves, the last chart
    elif effect == "count":
        assert len(pts) == 1000
    elif effect == "points":
        assert not np.allclose(pts, before_pts)
    elif effect == "burn":
        assert figs[-1]["layout"]["shapes"][0]["x1"] == 100
    elif effect == "logz":
        assert metric(at, "log Z (exact)") != before_logz
    key = "eps" if name == "eps_slider" else name  # the slider and the field share the URL
    url = at.query_params[key]
    if key in ("T", "eps"):
        assert float(url) == float(value)
    else:
        assert url == ("0" if key == "noise" else str(value))


def test_url_round_trip_reopens_the_same_run():
    at = open_app(FAST)
    widget(at, "playground", "sampler").set_value("mala")
    widget(at, "playground", "eps").input("0.7")
    widget(at, "playground", "seed").set_value(5)
    run(at)
    link = dict(at.query_params)
    again = open_app(link)
    for name in ("sampler", "eps", "seed", "steps", "chains", "p.cov"):
        assert widget(again, "playground", name).value == widget(at, "playground", name).value
    for label in ("discrepancy (TV)", "ESS (min)", "acceptance"):
        assert metric(again, label) == metric(at, label)
    np.testing.assert_array_equal(chain_points(again), chain_points(at))


def test_bad_url_values_fall_back_to_defaults_with_a_note():
    at = open_app({**FAST, "eps": "abc", "chains": "-5", "sampler": "gibbs", "noise": "maybe",
                   "p.cov": "1, 2, 3"})
    note = warnings(at)
    for name in ("eps='abc'", "chains='-5'", "sampler='gibbs'", "noise='maybe'", "p.cov="):
        assert name in note
    w = lambda n: widget(at, "playground", n).value  # noqa: E731
    assert (w("eps"), w("chains"), w("sampler"), w("noise"), w("p.cov")) == (
        "0.3", 500, "sgld", True, "2, 1, 1, 2")
    assert w("steps") == 200  # the valid values are kept
    assert len(chain_points(at)) == 500


def test_bad_input_is_reported_and_the_previous_run_kept():
    at = open_app(FAST)
    tv = metric(at, "discrepancy (TV)")
    widget(at, "playground", "eps").input("-1")
    run(at)
    assert any("eps" in e.value and "> 0" in e.value for e in at.error)
    assert metric(at, "discrepancy (TV)") == tv and at.query_params["eps"] == "0.3"
    widget(at, "playground", "eps").input("0.3")
    widget(at, "playground", "burn").set_value(500)  # >= steps: invalid
    run(at)
    assert any("burn-in" in e.value for e in at.error)
    assert metric(at, "discrepancy (TV)") == tv


def test_own_formula_errors_show_under_it_and_the_last_valid_energy_stays():
    at = open_app({**FAST, "target": "formula", "expr": "x**2/2 + y**2/2",
                   "box": "-4, 4, -4, 4"})
    # N(0, I) restricted to [-4, 4]^2: log Z = log(2 pi) + 2 log(1 - 2 Phi(-4))
    exact = math.log(2 * math.pi) + 2 * math.log(math.erf(4 / math.sqrt(2)))
    assert float(metric(at, "log Z (exact)")) == pytest.approx(exact, abs=1e-4)
    widget(at, "playground", "expr").input("x**2 + * y")
    run(at)
    assert any("column" in e.value for e in at.error)
    assert float(metric(at, "log Z (exact)")) == pytest.approx(exact, abs=1e-4)
    assert at.query_params["expr"] == "x**2/2 + y**2/2"
    widget(at, "playground", "expr").input("log(x)")
    run(at)
    assert any("not finite" in e.value for e in at.error)
    widget(at, "playground", "expr").input("(x**2 + y**2 - 4)**2 / 0.5")
    run(at)
    assert not at.error and float(metric(at, "log Z (exact)")) != pytest.approx(exact, abs=1e-3)
    assert at.query_params["expr"] == "(x**2 + y**2 - 4)**2 / 0.5"


def test_divergence_is_reported_in_words():
    at = open_app({"eps": "2.5", "steps": "50", "chains": "100"})
    assert "100 of 100 chains diverged" in warnings(at) and "lower" in warnings(at)
    assert metric(at, "diverged chains") == "100"


# -- SGLD vs MAP -----------------------------------------------------------------------


def test_versus_runs_the_same_chains_with_and_without_noise():
    at = open_app(FAST, page="versus.py")
    runs = at.session_state[state.key("run", "versus")]
    a, b = (r.trace for r in runs)
    torch.testing.assert_close(a.positions[0], b.positions[0])  # same initial points
    assert a.config.noise and not b.config.noise
    exact = float(metric(at, "SGLD: mean log p(x)").replace("−", "-"))
    assert float(metric(at, "MAP: mean log p(x)")) > exact  # MAP climbs above E_p[log p]
    twin = charts(at)[0]
    right = next(t for t in twin["data"] if t.get("xaxis") == "x2" and t["type"] != "contour")
    assert np.abs(np.asarray(right["x"])).max() < 1e-2  # collapsed on the mode
    before = metric(at, "SGLD discrepancy")
    widget(at, "versus", "eps").input("1.2")
    run(at)
    assert metric(at, "SGLD discrepancy") != before and at.query_params["eps"] == "1.2"


def test_versus_sweep_starts_from_its_button():
    at = open_app({**FAST, "sw_chains": "1000", "sw_lo": "0.3", "sw_hi": "1.2"},
                  page="versus.py")
    at.button(key=state.widget_key("versus", "sweep_go")).click()
    run(at)
    sw = at.session_state[state.key("sweep", "versus")]
    assert sw.points and sw.config.chains == 1000
    while sw.events is not None:  # the rest of the sweep, through the live fragment's step
        live.advance_sweep(sw, 1.0)
    run(at.switch_page("app_pages/versus.py"))
    assert len(sw.points) == sw.total and sw.error is None
    assert charts(at)[-1]["layout"]["yaxis"]["type"] == "log"


# -- theory --------------------------------------------------------------------------


def test_theory_explains_with_math_and_opens_the_matching_page():
    at = open_app(page="theory.py")
    assert len(at.latex) >= 8
    assert any("Fokker" in m.value for m in at.markdown)
    at.button(key=state.widget_key("theory", "go_mala")).click()
    run(at)
    w = lambda n: widget(at, "playground", n).value  # noqa: E731
    assert (w("sampler"), w("eps"), w("chains")) == ("mala", "1.2", 5000)
    finish_live(at, "playground", "playground.py")  # 5,000 chains outlast the page run
    assert metric(at, "acceptance").endswith("%")


# -- training ------------------------------------------------------------------------

TRAIN = {"method": "persistent", "iters": "5000", "width": "32", "K": "5", "data": "mixture"}


def test_training_start_pause_resume_stop_reset():
    at = open_app(TRAIN, page="training.py")
    assert any("start" in i.value for i in at.info)
    at.button(key=state.widget_key("training", "start")).click()
    run(at)
    sess = at.session_state[state.key("train", "training")]
    assert sess.trainer.iteration > 0 and sess.losses
    at.button(key=state.widget_key("training", "pause")).click()
    run(at)
    it = sess.trainer.iteration
    assert sess.status == "paused"
    run(at)
    assert sess.trainer.iteration == it  # paused: nothing runs
    at.button(key=state.widget_key("training", "resume")).click()
    run(at)
    assert sess.trainer.iteration > it and sess.status == "running"
    while sess.trainer.iteration < 100:  # each page run trains for a time slice
        run(at)
    at.button(key=state.widget_key("training", "stop")).click()
    run(at)
    it = sess.trainer.iteration
    assert sess.status == "stopped" and metric(at, "KL(p_data ‖ p_θ)") != "—"
    nll_curve = next(t for c in charts(at) for t in c["data"] if t.get("name") == "test NLL")
    assert list(nll_curve["x"])[:2] == [50, 100]
    # stopped: the scrubber replays the model at each evaluation so far
    assert any(e.label.startswith("how the model evolved") for e in at.expander)
    evo = next(c for c in charts(at) if c.get("frames"))
    assert [f["name"] for f in evo["frames"]] == [str(f.iteration) for f in sess.frames]
    assert len(sess.frames) >= 2
    run(at)
    assert sess.trainer.iteration == it  # stopped: nothing runs
    at.button(key=state.widget_key("training", "reset")).click()
    run(at)
    assert state.key("train", "training") not in at.session_state


def test_a_replaced_training_stops_at_once_with_its_worker():
    from dashboard import train_live

    at = open_app(TRAIN, page="training.py")
    at.button(key=state.widget_key("training", "start")).click()
    run(at)
    first = at.session_state[state.key("train", "training")]
    train_live.pump(first, 0.0)  # as the live view does: a worker thread trains it
    assert first.status == "running" and first.worker.is_alive()
    at.button(key=state.widget_key("training", "reset")).click()  # reset mid-run
    run(at)
    assert state.key("train", "training") not in at.session_state
    first.worker.join(60)  # it stops after the iteration in flight, not at its lease's end
    assert first.status == "stopped" and first.error is None and not first.worker.is_alive()


def test_training_method_brings_its_defaults_and_goes_in_the_url():
    at = open_app(TRAIN, page="training.py")
    widget(at, "training", "method").set_value("exact")
    run(at)
    assert at.query_params["method"] == "exact" and "K" not in at.query_params
    from ebmcore.ebm.training import METHOD_DEFAULTS

    assert widget(at, "training", "lr").value == pytest.approx(METHOD_DEFAULTS["exact"]["lr"])
    assert widget(at, "training", "iters").value == METHOD_DEFAULTS["exact"]["iters"]


def test_training_bad_url_value_gets_a_note():
    at = open_app({**TRAIN, "method": "magic", "width": "0"}, page="training.py")
    assert "method='magic'" in warnings(at) and "width='0'" in warnings(at)
    assert widget(at, "training", "method").value == "persistent"


def test_training_adversarial_shows_the_bound():
    if train_live.ADVERSARIAL not in train_live.ALL_METHODS:
        pytest.skip("no adversarial trainer in this checkout")
    at = open_app({"method": "adversarial", "iters": "50", "width": "32", "K": "3"},
                  page="training.py")
    at.button(key=state.widget_key("training", "start")).click()
    run(at)
    sess = at.session_state[state.key("train", "training")]
    while sess.status == "running":
        run(at)
    assert metric(at, "bound on log Z") != "—"
    row = sess.trainer.history[-1]
    # a lower bound up to its Monte Carlo error: 4 standard errors plus the quadrature error
    assert row["bound"] <= row["log_z"] + 4 * row["bound_se"] + row["log_z_err"]


# -- step logic, as plain functions ------------------------------------------------------


def test_live_run_advances_by_budget_and_stops_keeping_its_trace():
    t = make_target("gaussian")
    r = live.start("k", t, SampleConfig(steps=400, chains=50, report_every=10))
    assert not r.finished and r.trace is None
    live.advance(r, 0.0)  # a zero budget still makes progress: one event
    assert r.step == 10 and r.trace.done == 10 and not r.finished
    live.stop(r)
    assert r.finished and r.stopped and r.trace.done == 10
    r2 = live.start("k", t, SampleConfig(steps=400, chains=50, report_every=10))
    live.advance(r2, 60.0)
    assert r2.finished and not r2.stopped and r2.step == 400 and r2.fraction == 1.0


def test_live_runs_advance_in_lockstep_and_errors_are_captured():
    t = make_target("gaussian")
    cfg = SampleConfig(steps=100, chains=20, report_every=10)
    a, b = live.start("a", t, cfg), live.start("b", t, cfg)
    live.advance_all([a, b], 0.0)
    assert a.step == b.step == 10

    def boom():
        yield from ()
        raise RuntimeError("kaboom")

    bad = live.LiveRun("bad", boom())
    live.advance(bad, 1.0)
    assert bad.finished and "kaboom" in bad.error


def test_two_runs_of_a_session_never_step_one_live_run_at_once():
    """A reconnect starts a new script run while the old one still computes: the second
    advance must leave the run to the first, not raise 'generator already executing'."""
    import threading
    from types import SimpleNamespace

    inside, go_on = threading.Event(), threading.Event()

    def events():
        for step in (1, 2):
            if step == 2:
                inside.set()
                assert go_on.wait(60)
            yield SimpleNamespace(trace=None, step=step, total=2, finished=step == 2)

    r = live.LiveRun("k", events(), total=2)
    live.advance(r, 0.0)
    first = threading.Thread(target=live.advance, args=(r, 60.0))
    first.start()
    assert inside.wait(60)
    live.advance(r, 60.0)  # the other run of the session: returns at once, no error
    assert r.error is None and not r.finished and r.step == 1
    go_on.set()
    first.join(60)
    assert r.finished and r.error is None and r.step == 2


def test_sweep_advances_point_by_point():
    t = make_target("gaussian")
    gd = quadrature(t.energy, t.box, 256)
    cfg = SweepConfig(eps=(0.3, 1.0), chains=500)
    sw = live.SweepRun("k", cfg, sweep(t, gd, cfg))
    live.advance_sweep(sw, 0.0)
    assert len(sw.points) == 1 and sw.total == 4
    live.advance_sweep(sw, 60.0)
    assert len(sw.points) == 4 and sw.events is None and sw.error is None


def test_training_session_pauses_exactly_and_checkpoints_round_trip():
    from ebmcore.ebm.data import make_dataset
    from ebmcore.ebm.models import ModelConfig

    ds = make_dataset("mixture", 500, 200, seed=0)
    make = lambda: train_live.make_trainer(  # noqa: E731
        ds, "persistent", ModelConfig(width=16), eps=0.01, steps=3, noise=True, lr=1e-3,
        iters=30, seed=0)
    s = train_live.start("k", make())
    train_live.advance(s, 0.0)
    assert s.trainer.iteration == 1 and s.status == "running"
    s.status = "paused"
    train_live.advance(s, 60.0)
    assert s.trainer.iteration == 1  # paused sessions do not train
    s.status = "running"
    train_live.advance(s, 60.0)
    assert s.status == "finished" and s.trainer.iteration == 30
    whole = train_live.start("k2", make())
    train_live.advance(whole, 60.0)
    assert [x for _, x in whole.losses] == [x for _, x in s.losses]  # pausing changes nothing
    back = train_live.load_checkpoint_bytes(train_live.checkpoint_bytes(s))
    assert back.iteration == 30 and back.finished
    with pytest.raises(ValueError, match="checkpoint"):
        train_live.load_checkpoint_bytes(b"not a checkpoint")


# -- entry point and last line of defence ---------------------------------------------------


def test_console_script_runs_streamlit_on_the_packaged_app():
    from dashboard.__main__ import APP as packaged
    from dashboard.__main__ import streamlit_args

    args = streamlit_args(["--server.port", "8600", "--theme.base=dark"])
    assert args[:3] == ["streamlit", "run", str(packaged)] and Path(packaged).is_file()
    assert "--server.port" in args and "--theme.base=dark" in args
    assert "--theme.base=light" not in args and "--browser.gatherUsageStats=false" in args


def test_the_launcher_preloads_the_pages_before_the_server_starts(monkeypatch):
    import sys

    from streamlit.web import cli as stcli

    from dashboard import __main__ as launcher
    from dashboard import preload

    calls = []
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main() sets Streamlit's command line
    monkeypatch.setattr(preload, "preload", lambda: calls.append("preload"))
    monkeypatch.setattr(stcli, "main", lambda: calls.append("server"))
    assert launcher.main(["--server.headless", "true"]) == 0
    assert calls == ["preload", "server"]


def test_preload_imports_the_pages_modules_and_builds_the_default_density():
    """In a fresh interpreter: what the first page would import and build is there after."""
    import subprocess
    import sys

    code = ("import sys; from dashboard import preload, cache; preload.preload(); "
            "from ebmcore.sampling import compiled_run as c; "
            "print(all(m in sys.modules for m in preload.MODULES), c._WARM.is_set(), "
            "cache.view_density.cache_info().currsize, cache.modes_of.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    assert out == ["True", "True", "1", "1"]


def test_an_unexpected_error_is_a_message_not_a_traceback(monkeypatch):
    from dashboard.figures import sampling as plots

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(plots, "chains_figure", broken)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({**FAST, "seed": "11"})
    at.run()
    assert not at.exception
    assert any("unexpected problem" in e.value and "simulated bug" in e.value for e in at.error)


def test_figures_export_as_one_interactive_html_page():
    from dashboard import panels
    from dashboard.figures import sampling as plots

    gd = quadrature(make_target("gaussian").energy, make_target("gaussian").box, 64)
    figs = [("a", plots.chains_figure(gd, torch.randn(50, 2))),
            ("b", plots.sweep_figure([]))]
    html = panels.figures_html(figs, "Langevin Lab")
    assert html.startswith("<!doctype html>") and html.count("<h2>") == 2
    assert html.count("plotly.js v") == 1  # plotly.js inlined once: works offline
    assert html.count('class="plotly-graph-div"') == 2
