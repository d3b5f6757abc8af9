"""The live chart's page on its own, driven as Streamlit drives it (render messages).

A render that only moves the points of scatter traces over fixed axes must move them
without Plotly.react (markers in place, lines through Plotly's animation path) and leave
every point where the new data puts it; any
other change (the layout, a trace's style, an autoranged axis, a WebGL trace) must go
through Plotly.react; an unchanged render draws nothing.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dashboard.live_chart import HERE, PLOTLY_JS

pytestmark = pytest.mark.browser

# Counts Plotly.react and Plotly.animate calls, then sends `render(parts)` as Streamlit does.
SPY = """() => {
  window.calls = {react: 0, animate: 0};
  for (const name of ['react', 'animate']) {
    const f = Plotly[name];
    Plotly[name] = function (...a) { window.calls[name] += 1; return f.apply(this, a); };
  }
  // `short`: indices of texts sent as [tag] only (the server's form for a text sent before)
  window.render = (texts, short = []) => {
    const tags = texts.map((t) => {  // a tag per text, as the server's hash gives one
      let h = 0;
      for (const c of t) h = (h * 31 + c.charCodeAt(0)) % 2 ** 40;
      return h;
    });
    const parts = texts.map((t, i) => short.includes(i) ? [tags[i]] : t);
    window.postMessage({type: 'streamlit:render', args: {parts: parts, tags: tags,
                        framed: false, config: '{}'}}, '*');
  };
  const tag = (t) => { let h = 0; for (const c of t) h = (h * 31 + c.charCodeAt(0)) % 2 ** 40;
                       return h; };
  // several states in one render, drawn `gap` ms apart: each text travels once
  // (`short`: every text as its [tag] only, as to a page that already has them)
  window.renderStates = (states, gap, short = false) => {
    const texts = [...new Set(states.flat())];
    window.postMessage({type: 'streamlit:render', args: {
      parts: texts.map((t) => short ? [tag(t)] : t), tags: texts.map(tag),
      states: states.map((s) => s.map(tag)), gap: gap, framed: false, config: '{}'}}, '*');
  };
  // the x of the points each animation moved to, in order
  window.moves = [];
  const animate = Plotly.animate;
  Plotly.animate = function (gd, frame, ...rest) {
    window.moves.push(frame.data[0].x);
    return animate.call(this, gd, frame, ...rest);
  };
}"""
UPDATES = "() => Number(document.getElementById('chart').dataset.updates || 0)"
RESENDS = "() => Number(document.getElementById('chart').dataset.resends || 0)"
# the chart has drawn what it was sent and rests no more: the next render is drawn at once
IDLE = "() => !drawing && queued === null && performance.now() >= restUntil"
# each drawn point's pixel position, and where the trace's data puts it (Plotly's own axes)
POINTS = """(i) => {
  const gd = document.getElementById('chart');
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const tr = gd._fullData[i];
  const layer = gd.querySelectorAll('.scatterlayer .trace')[i - 1];
  const drawn = [...layer.querySelectorAll('.point')].map((p) => p.getAttribute('transform')
    .match(/translate\\(([-\\d.e]+),\\s*([-\\d.e]+)\\)/).slice(1).map(Number));
  return {drawn: drawn, want: tr.x.map((x, k) => [xa.c2p(x), ya.c2p(tr.y[k])])};
}"""


def _trace(x, y, *, kind="scatter", color="#d9480f", name="chains") -> str:
    return json.dumps({"type": kind, "x": list(x), "y": list(y), "mode": "markers",
                       "name": name, "marker": {"size": 5, "color": color}})


def _layout(title="run", fixed=True) -> str:
    axes = {"xaxis": {"range": [-3, 3]}, "yaxis": {"range": [-3, 3]}} if fixed else {}
    return json.dumps({"title": {"text": title}, "height": 400, **axes})


DENSITY = json.dumps({"type": "contour", "x": [-3, 0, 3], "y": [-3, 0, 3],
                      "z": [[0, 1, 0], [1, 2, 1], [0, 1, 0]], "showscale": False})


@pytest.fixture
def chart(browser, tmp_path):
    """The component's page (its own files, no server), with the spies installed."""
    shutil.copy(HERE / "index.html", tmp_path / "index.html")
    shutil.copy(PLOTLY_JS, tmp_path / "plotly.min.js")
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((tmp_path / "index.html").as_uri())
    page.wait_for_function("() => typeof Plotly !== 'undefined'")
    page.evaluate(SPY)
    yield page
    page.close()
    assert not errors, errors


def _render(page, texts, updates):
    page.evaluate("(t) => window.render(t)", texts)
    page.wait_for_function(f"() => ({UPDATES})() >= {updates}")
    return page.evaluate("() => window.calls")


def test_moving_markers_are_moved_in_place_where_the_data_puts_them(chart):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-2, 2, (2, 40)).round(4)
    assert _render(chart, [DENSITY, _trace(a, b), _layout()], 1) == {"react": 1, "animate": 0}
    for step in range(1, 4):  # the chains move three times: no Plotly call at all
        a, b = (a + rng.normal(0, 0.3, 40)).round(4), (b + rng.normal(0, 0.3, 40)).round(4)
        calls = _render(chart, [DENSITY, _trace(a, b), _layout()], 1 + step)
        assert calls == {"react": 1, "animate": 0}
        pts = chart.evaluate(POINTS, 1)
        assert np.allclose(pts["drawn"], pts["want"], atol=0.5), "points not where data says"
        assert np.allclose(chart.evaluate("() => document.getElementById('chart')"
                                          "._fullData[1].x"), a)
        # what hover reads: Plotly's per-point record of the trace
        held = chart.evaluate("() => document.getElementById('chart').calcdata[1]"
                              ".map((d) => [d.x, d.y])")
        assert np.allclose(held, np.stack([a, b], axis=1))
    # a full redraw after the moves starts from the moved data (Plotly's own record)
    a2 = (a + 0.1).round(4)
    _render(chart, [DENSITY, _trace(a2, b), _layout(title="run, later")], 5)
    pts = chart.evaluate(POINTS, 1)
    assert np.allclose(pts["drawn"], pts["want"], atol=0.5)
    assert np.allclose(chart.evaluate("() => document.getElementById('chart')._fullData[1].x"),
                       a2)


@pytest.mark.parametrize("mode", ["lines", "lines+markers"])
def test_moving_lines_animate_and_land_where_the_data_puts_them(chart, mode):
    # a path grows and moves: Plotly's animation path (no full redraw)
    def path(n):
        x = np.linspace(-2, 2, n).round(4)
        return json.dumps({**json.loads(_trace(x, np.sin(x).round(4))), "mode": mode})

    _render(chart, [DENSITY, path(10), _layout()], 1)
    assert _render(chart, [DENSITY, path(12), _layout()], 2) == {"react": 1, "animate": 1}
    assert len(chart.evaluate("() => document.getElementById('chart')._fullData[1].x")) == 12


def test_markers_with_colours_per_point_animate_and_take_the_new_colours(chart):
    # the replay buffer: its points' colours (ages) and hover data change as they move
    def buffer(x, ages):
        return json.dumps({**json.loads(_trace(x, [1, 0])), "customdata": ages,
                           "marker": {"size": 5, "color": ages, "colorscale": "Viridis"}})

    _render(chart, [DENSITY, buffer([0, 1], [1, 2]), _layout()], 1)
    assert _render(chart, [DENSITY, buffer([0.5, 1.5], [3, 9]), _layout()], 2) == {
        "react": 1, "animate": 1}
    full = chart.evaluate("() => { const t = document.getElementById('chart')._fullData[1];"
                          " return [t.x, t.marker.color, t.customdata]; }")
    assert full == [[0.5, 1.5], [3, 9], [3, 9]]


def test_markers_in_a_new_number_animate(chart):
    _render(chart, [DENSITY, _trace([0, 1], [1, 0]), _layout()], 1)
    assert _render(chart, [DENSITY, _trace([0, 1, 2], [1, 0, 1]), _layout()], 2) == {
        "react": 1, "animate": 1}
    pts = chart.evaluate(POINTS, 1)
    assert len(pts["drawn"]) == 3 and np.allclose(pts["drawn"], pts["want"], atol=0.5)


@pytest.mark.parametrize("change", ["layout", "style", "autorange", "webgl"])
def test_any_other_change_redraws_with_react(chart, change):
    a, b = np.linspace(-2, 2, 30).round(4), np.linspace(2, -2, 30).round(4)
    fixed = change != "autorange"
    kind = "scattergl" if change == "webgl" else "scatter"
    _render(chart, [DENSITY, _trace(a, b, kind=kind), _layout(fixed=fixed)], 1)
    a2 = (a + 0.5).round(4)
    texts = {
        "layout": [DENSITY, _trace(a2, b), _layout(title="run, later")],
        "style": [DENSITY, _trace(a2, b, color="#1c7ed6"), _layout()],
        "autorange": [DENSITY, _trace(a2, b), _layout(fixed=False)],
        "webgl": [DENSITY, _trace(a2, b, kind="scattergl"), _layout()],
    }[change]
    assert _render(chart, texts, 2) == {"react": 2, "animate": 0}


def test_an_unchanged_render_draws_nothing(chart):
    texts = [DENSITY, _trace([0, 1], [1, 0]), _layout()]
    _render(chart, texts, 1)
    chart.wait_for_function(IDLE)
    chart.evaluate("(t) => window.render(t)", texts)
    chart.wait_for_function(IDLE)
    _render(chart, [DENSITY, _trace([0, 1], [1, 0]), _layout(title="next")], 2)  # in order
    assert chart.evaluate("() => window.calls") == {"react": 2, "animate": 0}


def test_renders_arriving_while_it_rests_are_skipped_but_their_texts_kept(chart):
    _render(chart, [DENSITY, _trace([0, 1], [1, 0]), _layout()], 1)
    z2 = [[2, 1, 2], [1, 0, 1], [2, 1, 2]]
    density2 = json.dumps({**json.loads(DENSITY), "z": z2})
    # while the chart rests, R1 brings a new density in full and R2 names it by its tag
    # only (as the server does once it sent a text): R1 is skipped, R2 drawn from R1's text
    chart.evaluate("(t) => { restUntil = performance.now() + 400;"
                   " window.render(t.r1); window.render(t.r2, [0, 2]); }",
                   {"r1": [density2, _trace([0, 1], [1, 0.5]), _layout()],
                    "r2": [density2, _trace([0.5, 1], [1, 0.5]), _layout()]})
    chart.wait_for_function(f"() => ({UPDATES})() >= 2")
    chart.wait_for_function(IDLE)
    assert chart.evaluate(UPDATES) == 2 and chart.evaluate(RESENDS) == 0
    assert chart.evaluate("() => window.calls") == {"react": 2, "animate": 0}
    drawn = chart.evaluate("() => { const d = document.getElementById('chart')._fullData;"
                           " return [d[0].z, d[1].x]; }")
    assert drawn == [z2, [0.5, 1]]


@pytest.mark.parametrize("gap", [150, 0])
def test_the_states_of_one_render_are_drawn_in_order_a_gap_apart(chart, gap):
    # a live view's tick sends the run at three moments; 150 ms apart, each is drawn (the
    # path moves three times, in order: Plotly.animate sees each); due all at once (gap
    # 0), only the newest is
    def path(x):
        return json.dumps({**json.loads(_trace(x, [1, 0])), "mode": "lines"})

    _render(chart, [DENSITY, path([0, 1]), _layout()], 1)
    chart.wait_for_function(IDLE)
    xs = [[0.1, 1.1], [0.2, 1.2], [0.3, 1.3]]
    states = [[DENSITY, path(x), _layout()] for x in xs]
    t0 = chart.evaluate("([s, g]) => { window.renderStates(s, g); return performance.now(); }",
                        [states, gap])
    drawn = 3 if gap else 1
    chart.wait_for_function(f"() => ({UPDATES})() >= {1 + drawn}")
    chart.wait_for_function(IDLE)
    t1 = chart.evaluate("() => performance.now()")
    assert chart.evaluate(UPDATES) == 1 + drawn and chart.evaluate(RESENDS) == 0
    assert chart.evaluate("() => window.calls") == {"react": 1, "animate": drawn}
    assert chart.evaluate("() => window.moves") == xs[-drawn:]
    assert chart.evaluate("() => document.getElementById('chart')._fullData[1].x") == xs[-1]
    if gap:  # the last state waits its turn: two gaps after the first
        assert t1 - t0 >= 2 * gap


def test_a_page_missing_texts_asks_once_per_render(chart):
    # a new iframe sent tags it never got the texts of (three states of one render): it
    # asks for everything once and draws nothing until the answer
    states = [[DENSITY, _trace([0, k], [1, 0]), _layout()] for k in range(3)]
    chart.evaluate("([s, g]) => window.renderStates(s, g, true)", [states, 50])
    chart.wait_for_function(f"() => ({RESENDS})() >= 1")
    chart.wait_for_function(IDLE)
    assert chart.evaluate(RESENDS) == 1 and chart.evaluate(UPDATES) == 0
    chart.evaluate("([s, g]) => window.renderStates(s, g)", [states, 50])  # the answer
    chart.wait_for_function(f"() => ({UPDATES})() >= 1")
    chart.wait_for_function(IDLE)
    assert chart.evaluate(RESENDS) == 1
    assert chart.evaluate("() => document.getElementById('chart')._fullData[1].x") == [0, 2]
