"""A hostile URL corpus for every page, in AppTest: no exception, no traceback, page keeps working.

Overflowing numbers, odd text (markup, NUL, emoji, code), 100 kB values and requests over
the dashboard's work budget.  After each, the page still shows a usable state: charts (the
values fell back to defaults with a note), or a one-line refusal, and a small valid request
then runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import dashboard
from dashboard import state

APP = str(Path(dashboard.__file__).parent / "streamlit_app.py")
LONG = "x" * 100_000
SMALL = {"steps": "10", "chains": "10"}
ODD = ["1e308", "-1e308", "nan", "inf", "-1", "0", "<script>alert(1)</script>", "\x00",
       "🙂", "__import__('os')", "**bold**", "[a](javascript:x)", "1" * 400]
SAMPLER_KEYS = ("target", "eps", "steps", "chains", "T", "seed", "init", "std", "burn",
                "noise", "sampler", "leapfrog", "p.cov", "box")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _open(query: dict, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if page is not None:
        at.query_params.update(SMALL)
        _run(at)
        at.query_params.clear()
        at.query_params.update(query)
        return _run(at.switch_page(f"app_pages/{page}"))
    at.query_params.update(query)
    return _run(at)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    shown = [e.value for e in at.error] + [w.value for w in at.warning]
    assert not [m for m in shown if "unexpected problem" in m or "Traceback" in m], shown
    return at


def _charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


@pytest.mark.parametrize("value", ODD, ids=repr)
def test_playground_survives_odd_values_in_every_setting(value):
    at = _open({**SMALL, **{k: value for k in SAMPLER_KEYS if k not in SMALL}})
    assert _charts(at) > 0  # fell back to defaults with a note, and ran


@pytest.mark.parametrize("key", ["target", "expr", "p.cov", "eps", "sampler"])
def test_playground_survives_a_100_kB_value(key):
    query = {**SMALL, key: LONG}
    if key == "expr":
        query["target"] = "formula"
    at = _open(query)
    assert _charts(at) > 0


def _message_chars(at: AppTest) -> int:
    return sum(len(m.value) for m in [*at.error, *at.warning, *at.info, *at.caption])


def test_a_100_kB_value_is_not_repeated_on_the_page():
    at = _open({**SMALL, "target": LONG})
    assert _message_chars(at) < 5_000


def test_playground_run_over_the_budget_is_refused_and_the_page_keeps_working():
    at = _open({"chains": "2000000", "steps": "1000000"})  # 4e13 operations
    refusals = [e.value for e in at.error if "over the budget" in e.value]
    assert refusals and "\n" not in refusals[0] and "lower chains, steps" in refusals[0]
    at.get_by_key(state.widget_key("playground", "chains")).set_value(10)
    at.get_by_key(state.widget_key("playground", "steps")).set_value(10)
    _run(at)
    assert _charts(at) > 0 and not [e for e in at.error if "over the budget" in e.value]


@pytest.mark.parametrize("value", ["1e308", "nan", "<b>x</b>", "\x00", LONG])
def test_versus_survives_hostile_values(value):
    keys = (*SAMPLER_KEYS, "sw_lo", "sw_hi", "sw_chains")
    at = _open({**SMALL, **{k: value for k in keys if k not in SMALL}}, page="versus.py")
    assert _charts(at) > 0


@pytest.mark.parametrize("value", ["1e308", "nan", "<b>x</b>", "\x00", LONG, "__import__"])
def test_theory_survives_hostile_values(value):
    at = _open({k: value for k in ("target", "eps", "sampler", "T", "topic", "page")},
               page="theory.py")
    assert at.markdown  # the page still explains


TRAIN_KEYS = ("data", "method", "flow", "width", "depth", "eps", "K", "noise", "lr", "iters",
              "seed")


@pytest.mark.parametrize("value", ["1e308", "-1", "nan", "<b>x</b>", "\x00", LONG])
def test_training_survives_hostile_values(value):
    at = _open({k: value for k in TRAIN_KEYS}, page="training.py")
    assert any("start" in i.value for i in at.info)  # fell back; ready to start


def test_training_over_the_budget_is_refused_at_start_and_the_page_keeps_working():
    heavy = {"data": "mixture", "method": "short-run", "width": "1024", "depth": "8",
             "K": "10000", "iters": "10"}
    at = _open(heavy, page="training.py")
    at.button(key=state.widget_key("training", "start")).click()
    _run(at)
    refusals = [e.value for e in at.error if "over the budget" in e.value]
    assert refusals and "\n" not in refusals[0]
    assert state.key("train", "training") not in at.session_state  # nothing runs
    at.get_by_key(state.widget_key("training", "width")).set_value(16)
    at.get_by_key(state.widget_key("training", "depth")).set_value(1)
    at.get_by_key(state.widget_key("training", "K")).set_value(5)
    at.button(key=state.widget_key("training", "start")).click()
    _run(at)
    sess = at.session_state[state.key("train", "training")]
    assert sess.trainer.iteration > 0 and sess.error is None
