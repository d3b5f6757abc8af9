"""What the first visitor's page would otherwise wait for, done when the server starts.

Streamlit runs the app's script only when a session connects, so the first visitor after a
start paid for every import the pages make (torch, Plotly, pandas, ArviZ, our own modules),
the compiled kernels' load, and the default target's exact density: 3.8 s of a 6.6 s first
chart (measured in Chromium, against 0.5 s for the next visitor). ``langevin-lab`` runs
:func:`preload` before it starts the server (about 3 s), in the same thread: imports run
beside a page's own imports can each see the other's half-initialised module (seen, with a
preload thread: ``cannot import name 'Progress'``).  Only the kernels' load (a compile on a
fresh install: tens of seconds) goes on in the background, as it did before.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["MODULES", "configure_torch", "preload"]

# Every module the pages import that costs time to load (the pages themselves run on import).
MODULES = (
    "torch", "numpy", "pandas", "plotly.graph_objects", "plotly.io",
    "dashboard.panels", "dashboard.figures.sampling", "dashboard.figures.training",
    "dashboard.figures.samplers", "dashboard.figures.dynamics", "dashboard.url_build",
    "dashboard.live", "dashboard.train_live", "dashboard.flow_live", "dashboard.live_view",
    "dashboard.arviz_button", "ebmcore.exact.summary", "ebmcore.exact.sweep",
    "ebmcore.sampling.compare", "ebmcore.sampling.stepwise", "ebmcore.sampling.runner",
    "streamlit.elements.plotly_chart",
)


def configure_torch() -> None:
    """One torch thread per operation (``LANGEVIN_LAB_THREADS`` overrides).

    The server runs every session's work concurrently in its own thread, and on the small
    tensors of 2D work intra-op parallelism gains little while oversubscribed cores make some
    ops 100x slower (measured: exp of 5,000 floats, 16 ms with 2 threads on a busy 2-core
    machine vs 0.005 ms with 1).
    """
    import torch

    threads = int(os.environ.get("LANGEVIN_LAB_THREADS", "1"))
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def preload() -> None:
    """Import :data:`MODULES`, build the default target's density, and start loading the
    compiled kernels in the background (:func:`~ebmcore.sampling.compiled_run.warm_up`)."""
    configure_torch()
    for name in MODULES:
        importlib.import_module(name)
    try:
        from ebmcore.interop import require_arviz

        require_arviz()  # the optional extra's imports, when it is installed
    except Exception:  # the optional extra is absent: the page says so itself
        pass
    from dashboard import cache
    from ebmcore.defaults import DEFAULT_TARGET
    from ebmcore.sampling.compiled_run import warm_up

    warm_up()
    key = cache.target_key(DEFAULT_TARGET, {})
    cache.view_density(key)
    cache.modes_of(key)
