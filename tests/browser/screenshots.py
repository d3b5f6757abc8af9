"""Screenshots of the dashboard's main pages for the README, taken in a real browser.

Regenerate them all (from the repository root; needs Chromium and Playwright)::

    python -m tests.browser.screenshots            # writes assets/<page>.png
    python -m tests.browser.screenshots --only training --out /tmp/shots

Each page is opened in its own browser session at 1400x900 and photographed once its
figures are drawn (the training page after a short run has finished), scrolled so that
its numbers and figures are in view.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .harness import ROOT, VIEWPORT, browser_problem, launch, start_server, wait_for
from .views import playground_done, versus_done

__all__ = ["SHOTS", "main", "take"]

TRAIN_ITERS = 600


def _playground(page: Any) -> None:
    wait_for(page, playground_done, "ε = 0.3", timeout_s=180)


def _versus(page: Any) -> None:
    wait_for(page, versus_done, "ε = 0.3", timeout_s=180)


def _training(page: Any) -> None:
    wait_for(page, "(c) => c.figs().some((f) => f.traces.some((t) => t.name === 'data'))")
    page.get_by_test_id("stMain").get_by_role("button", name="start", exact=True).click()
    wait_for(page, "(c, n) => c.text.includes(`iteration ${n} of ${n}`) && "
                   "c.text.includes('· finished') && "
                   "c.figs().some((f) => f.traces.some((t) => t.name === 'p_θ'))",
             f"{TRAIN_ITERS:,}", timeout_s=600)


def _theory(page: Any) -> None:
    wait_for(page, "(c) => document.querySelectorAll('.katex').length > 3", timeout_s=120)


def _animated(want: str, frame: float) -> Callable[[Any], None]:
    """Wait for the chart with a trace named ``want``, then show its frame at ``frame`` (0..1
    of the way through), as a user dragging the slider would."""

    def ready(page: Any) -> None:
        wait_for(page, "(c, w) => c.figs().some((f) => f.traces.some((t) => t.name === w))",
                 want, timeout_s=240)
        page.evaluate("""([w, at]) => {
          for (const g of document.querySelectorAll('.js-plotly-plot')) {
            if (!(g.data || []).some((t) => t.name === w)) continue;
            const names = g._transitionData._frames.map((f) => f.name);
            const name = names[Math.round(at * (names.length - 1))];
            return Plotly.animate(g, [name], {frame: {duration: 0, redraw: true},
                                              transition: {duration: 0}, mode: 'immediate'});
          }
        }""", [want, frame])

    return ready


def _drawn(want: str) -> Callable[[Any], None]:
    return lambda page: wait_for(
        page, "(c, w) => c.figs().some((f) => f.traces.some((t) => t.name === w))", want,
        timeout_s=240)


FLOW_G = "/flow?eps=0.8&chains=20000&t=10&init=gaussian&x0=4%2C+-3&std=1"
FLOW_M = "/flow?target=mixture&eps=0.02&chains=20000&t=3&init=point&x0=2%2C+0&arrows=1"
# the zoo: its figure under the view selector at the top
ZOO_TOP = '[data-testid="stMain"] [data-testid="stCaptionContainer"]'
# file name -> (path with its settings, wait until drawn, element scrolled to the top or None)
SHOTS: dict[str, tuple[str, Callable[[Any], None], str | None]] = {
    "playground": ("/", _playground, '[data-testid="stMetric"]'),
    "versus": ("/sgld-vs-map", _versus, '[data-testid="stMetric"]'),
    "training": (f"/train?data=mixture&iters={TRAIN_ITERS}&width=64&seed=0", _training,
                 '[data-testid="stProgress"]'),
    "theory": ("/theory", _theory, None),
    "flow": (FLOW_G, _animated("KL(ρ_t ‖ p), exact", 0.25), '[data-testid="stMetric"]'),
    "flow-mixture": (FLOW_M, _animated("KL(ρ_t ‖ p), exact", 0.35),
                     '[data-testid="stMetric"]'),
    "zoo-phase": ("/samplers?view=phase&target=donut&ps_steps=200", _drawn("±2√T (Maxwellian)"),
                  ZOO_TOP),
    "zoo-race": ("/samplers?view=race&target=mixture", _drawn("floor for 5,000 iid samples"),
                 ZOO_TOP),
    "zoo-annealed": ("/samplers?view=annealed&target=mixture", _drawn("annealed Langevin"),
                     ZOO_TOP),
    "zoo-stepwise": ("/samplers?view=stepwise&target=donut&sb_sampler=mala&sb_eps=0.6",
                     _animated("accepted proposal", 0.3), ZOO_TOP),
    "zoo-leapfrog": ("/samplers?view=stepwise&target=donut&sb_sampler=hmc&sb_eps=0.25",
                     _animated("accepted proposal", 0.3), ZOO_TOP),
}
HEADER_PX = 80  # Streamlit's top bar (with the page menu) covers the top of the main area


def take(browser: Any, base_url: str, out: Path, names: list[str]) -> list[Path]:
    """Photograph the pages ``names`` (keys of :data:`SHOTS`) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        path, ready, top = SHOTS[name]
        ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        try:
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(base_url + path)
            ready(page)
            if top:  # the figures in view rather than the page's title block
                page.locator(top).first.evaluate(
                    "(e, px) => { e.style.scrollMarginTop = px + 'px'; "
                    "e.scrollIntoView({block: 'start'}); }", HEADER_PX)
            page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover label in the picture
            target = out / f"{name}.png"
            page.screenshot(path=str(target), animations="disabled")
            written.append(target)
        finally:
            ctx.close()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.browser.screenshots",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "assets", help="folder (default assets/)")
    ap.add_argument("--only", nargs="+", choices=list(SHOTS), default=list(SHOTS),
                    help="pages to photograph (default: all)")
    args = ap.parse_args(argv)
    problem = browser_problem()
    if problem:
        print(f"cannot take screenshots: {problem}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    server = start_server(Path(tempfile.mkdtemp(prefix="langevin-lab-shots-")))
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            try:
                written = take(browser, server.url, args.out, args.only)
            finally:
                browser.close()
    finally:
        server.stop()
    for p in written:
        print(f"wrote {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    print(f"{len(written)} screenshots in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
