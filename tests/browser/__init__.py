"""Real-browser end-to-end tests of the dashboard (Playwright driving Debian's Chromium).

Run them alone with ``python -m pytest tests/browser`` (they are part of the default
``python -m pytest`` run); regenerate the README screenshots in ``assets/`` with
``python -m tests.browser.screenshots``.  Without ``/usr/bin/chromium`` or Playwright
they skip, except in CI (``CI`` or ``LANGEVIN_LAB_REQUIRE_BROWSER`` set), where they fail.
"""
