"""The theory page in a real browser: rendered math, and buttons that open a matching run."""

from __future__ import annotations

import pytest

from .harness import assert_no_crash, expect, wait_for
from .views import settle_playground

pytestmark = pytest.mark.browser


def test_theory_renders_math_and_opens_the_page_it_explains(new_page):
    page = new_page("/theory")
    n_math = wait_for(page, "(c) => { const n = document.querySelectorAll('.katex').length; "
                            "return n > 3 ? n : false; }")
    assert n_math > 3
    expect(page.get_by_role("heading", name="Theory")).to_be_visible()
    assert_no_crash(page)

    page.get_by_role("button", name="MALA at ε = 1.2 (exact)").click()
    _, m = settle_playground(page, "gaussian · MALA · ε = 1.2 · 5,000 chains")
    assert_no_crash(page)
    for part in ("sampler=mala", "eps=1.2", "chains=5000", "p.cov=2%2C+1%2C+1%2C+2"):
        assert part in page.url, page.url
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("radio", name="MALA")).to_be_checked()
    # a Metropolis-adjusted run reports its acceptance (SGLD shows a dash)
    assert m["acceptance"][0].endswith("%"), m["acceptance"]
