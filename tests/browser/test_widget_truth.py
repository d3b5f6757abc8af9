"""Widgets tell the truth: every fresh load, and a reconnect mid-run, draw the values that ran.

Streamlit tells the browser a widget's value only on the runs where session state sets it;
a browser that lost the widget's state (a reconnect during a slow first run, a remount) drew
the element's own default instead: the noise toggle OFF while the URL and the run said on.
"""

from __future__ import annotations

import os

import pytest

from .harness import assert_no_crash
from .views import settle_playground, sidebar_slider

pytestmark = pytest.mark.browser

FRESH_LOADS = int(os.environ.get("LANGEVIN_LAB_FRESH_LOADS", "50"))
RECONNECTS = 3  # without the fix, about one in two reconnects drew the toggle off
DEFAULTS_IN_URL = ("target=gaussian", "eps=0.3", "steps=1000", "chains=500", "noise=1")


def _drawn_defaults(page) -> dict:
    sidebar = page.get_by_test_id("stSidebar")
    return {"noise": sidebar.get_by_role("switch", name="noise").is_checked(),
            "eps": sidebar.get_by_role("textbox", name="ε (exact)").input_value(),
            "steps": sidebar_slider(page, "chain length (steps)"),
            "chains": sidebar_slider(page, "number of chains")}


WANT = {"noise": True, "eps": "0.3", "steps": "1,000", "chains": "500"}


def _check(page) -> None:
    settle_playground(page, "ε = 0.3 · 500 chains")
    assert_no_crash(page)
    for part in DEFAULTS_IN_URL:
        assert part in page.url, page.url
    assert _drawn_defaults(page) == WANT


def test_fresh_loads_draw_the_defaults_every_time(new_page):
    drawn = []
    for _ in range(FRESH_LOADS):
        page = new_page("/")  # a new browser context: a new user, a new session
        settle_playground(page, "ε = 0.3 · 500 chains")
        drawn.append(_drawn_defaults(page))
        page.context.close()
    wrong = [d for d in drawn if d != WANT]
    assert not wrong, f"{len(wrong)} of {FRESH_LOADS} fresh loads drew other values: {wrong[:3]}"


def _drop_first_connection(ws_route, seen: list) -> None:
    """Forward the app's websocket, except that the first connection loses every server
    message after the first two and is then closed: the browser never draws that run and
    reconnects into the same session."""
    server = ws_route.connect_to_server()
    first, count = not seen, [0]
    seen.append(ws_route)

    def from_server(msg) -> None:
        count[0] += 1
        if first and count[0] > 2:
            if count[0] == 3:
                ws_route.close()
            return
        ws_route.send(msg)

    server.on_message(from_server)
    ws_route.on_message(server.send)


def test_a_reconnect_mid_run_draws_the_values_that_run(browser, server):
    from .conftest import PAGE_TIMEOUT_MS
    from .harness import VIEWPORT

    for _ in range(RECONNECTS):
        ctx = browser.new_context(viewport=VIEWPORT)
        ctx.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            page = ctx.new_page()
            seen: list = []
            page.route_web_socket("**/_stcore/stream",
                                  lambda ws, seen=seen: _drop_first_connection(ws, seen))
            page.goto(server.url + "/")
            _check(page)
            assert len(seen) >= 2, "the browser did not reconnect"
        finally:
            ctx.close()
