"""Fixtures of the browser tests: one dashboard server and one Chromium for the session.

The browser tests skip, with the reason, where Chromium or Playwright is missing;
where the environment variable ``CI`` or ``LANGEVIN_LAB_REQUIRE_BROWSER`` is set (to
anything but ``0`` / ``false``) they fail instead, so that CI can never pass with the
browser tests silently skipped (``.ci/run`` sets ``LANGEVIN_LAB_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from .harness import VIEWPORT, Server, browser_problem, launch, start_server

PAGE_TIMEOUT_MS = 60_000  # playwright's default per action, on a busy 2-core machine
_NOTES = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_NOTES] = []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Measurements the browser tests report (e.g. the server's peak memory), in every log."""
    notes = config.stash.get(_NOTES, [])
    if notes:
        terminalreporter.section("browser tests: measurements")
        for line in notes:
            terminalreporter.line(line)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Any:
    """``report(line)``: show ``line`` in the terminal summary of the run."""
    return lambda line: request.config.stash[_NOTES].append(f"{request.node.name}: {line}")


def browser_required() -> bool:
    """True in CI: there a missing browser is a failure, not a skip."""
    return any(os.environ.get(v, "").strip().lower() not in ("", "0", "false", "no")
               for v in ("CI", "LANGEVIN_LAB_REQUIRE_BROWSER"))


@pytest.fixture(scope="session")
def browser_ready() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if browser_required():
        pytest.fail(f"browser tests cannot run in CI: {problem}", pytrace=False)
    pytest.skip(f"browser tests skipped: {problem}")


@pytest.fixture(scope="session")
def server(browser_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The dashboard, served on a free port for the whole session; stopped at the end.

    The compiled kernels are built first, here: on a fresh clone the server's background
    warm-up would otherwise compile them while the first tests measure live views.
    """
    from ebmcore.sampling.compiled_run import warm_up

    warm_up(background=False)  # on-disk cache: the server's own warm-up then only loads it
    srv = start_server(tmp_path_factory.mktemp("streamlit"))
    try:
        yield srv
    finally:
        srv.stop()
    if srv.process.returncode not in (0, -15):  # -15: our SIGTERM
        print(f"streamlit exited with {srv.process.returncode}; log:\n{srv.log_tail()}")


@pytest.fixture(scope="session")
def browser(browser_ready: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session", autouse=True)
def expect_timeout() -> None:
    """``expect(...)`` waits for its state up to the same bound as every page action
    (Playwright's own default for assertions is 5 s, too short on a busy 2-core machine)."""
    try:
        from playwright.sync_api import expect
    except ImportError:  # no Playwright: browser_ready skips or fails the tests
        return
    expect.set_options(timeout=PAGE_TIMEOUT_MS)


@pytest.fixture
def new_page(browser: Any, server: Server) -> Iterator[Any]:
    """A factory of pages, each in its own browser context (a separate user / session).

    Uncaught JavaScript errors in any of them fail the test at teardown.
    """
    contexts, errors = [], []

    def make(path: str = "/", init_script: str | None = None) -> Any:
        """A new user opening ``path`` (or a full URL, e.g. a copied link); ``init_script``:
        JavaScript run in the page before any of its own."""
        ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        ctx.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(ctx)
        page = ctx.new_page()
        if init_script:
            page.add_init_script(init_script)
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        page.goto(path if path.startswith("http") else server.url + path)
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert not errors, "JavaScript errors in the page:\n" + "\n".join(errors)
