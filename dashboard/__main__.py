"""``python -m dashboard`` / ``langevin-lab``: open the dashboard in the browser.

Runs ``streamlit run`` on the packaged ``streamlit_app.py`` in this process, after
:mod:`dashboard.preload`; extra arguments are passed to Streamlit (e.g.
``--server.port 8600 --server.headless true``).
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["APP", "main", "streamlit_args"]

APP = Path(__file__).resolve().parent / "streamlit_app.py"
DEFAULT_FLAGS = (
    "--browser.gatherUsageStats=false",
    "--server.runOnSave=false",
    "--client.toolbarMode=minimal",
    "--theme.base=light",
    "--theme.primaryColor=#d9480f",
    "--theme.font=sans-serif",
    # Streamlit runs a full garbage collection after every script run, fragment ticks
    # included: 5-8 times a second per live view, each holding the interpreter lock for
    # tens of milliseconds on a torch-sized heap, which starved the training beside it
    # (10% of its speed alone). Python's own generational collector still runs.
    "--runner.postScriptGC=false",
)


def streamlit_args(extra: list[str]) -> list[str]:
    """The ``streamlit`` command line: ``run APP``, our flags, then the user's (which win)."""
    given = {a.split("=", 1)[0] for a in extra if a.startswith("--")}
    flags = [f for f in DEFAULT_FLAGS if f.split("=", 1)[0] not in given]
    return ["streamlit", "run", str(APP), *flags, *extra]


def main(argv: list[str] | None = None) -> int:
    """Start the Streamlit server on the dashboard (blocks until it stops)."""
    from streamlit.web import cli as stcli

    from dashboard import preload

    preload.preload()  # what the first page would wait for, before the server listens
    sys.argv = streamlit_args(list(sys.argv[1:] if argv is None else argv))
    try:
        stcli.main()
    except SystemExit as exc:  # click exits; report its code
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
