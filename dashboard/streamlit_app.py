"""Langevin Lab: the Streamlit entry point, a thin ``st.navigation`` router.

Run with ``langevin-lab`` or ``python -m dashboard`` (or ``streamlit run`` on
this file).  Every page lives in ``app_pages/``; every setting is in the URL.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import streamlit as st
import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run dashboard/streamlit_app.py` from a checkout
    sys.path.insert(0, str(HERE.parent))

# One torch thread per operation: the server runs every session's work concurrently in its own
# thread, and on the small tensors of 2D work intra-op parallelism gains little while
# oversubscribed cores make some ops 100x slower (measured: exp of 5,000 floats, 16 ms with 2
# threads on a busy 2-core machine vs 0.005 ms with 1).  LANGEVIN_LAB_THREADS overrides.
THREADS = int(os.environ.get("LANGEVIN_LAB_THREADS", "1"))
if THREADS > 0 and torch.get_num_threads() != THREADS:
    torch.set_num_threads(THREADS)

from dashboard import scheduler  # noqa: E402 - after the path set-up above
from ebmcore.sampling.compiled_run import warm_up  # noqa: E402

warm_up()  # the compiled sampling kernels load in the background, once per server process
from dashboard.safe_text import md  # noqa: E402

PAGES = (  # file, title, icon, URL path
    ("playground.py", "Langevin playground", ":material/scatter_plot:", "playground"),
    ("versus.py", "SGLD vs MAP", ":material/compare:", "sgld-vs-map"),
    ("training.py", "Train an EBM", ":material/model_training:", "train"),
    ("dynamics.py", "Density flow", ":material/waves:", "flow"),
    ("samplers.py", "Sampler zoo", ":material/stacked_line_chart:", "samplers"),
    ("theory.py", "Theory", ":material/function:", "theory"),
)

st.set_page_config(page_title="Langevin Lab", page_icon=":material/blur_on:", layout="wide")
pages = [st.Page(HERE / "app_pages" / f, title=t, icon=i, url_path=u, default=f == PAGES[0][0])
         for f, t, i, u in PAGES]
page = st.navigation(pages, position="top")
try:
    # a page run: heavier sessions' live slices wait while it computes and draws
    with scheduler.TURNS.foreground(scheduler.owner()):
        page.run()
except Exception as exc:  # the last line of defence: a message, never a traceback
    logging.getLogger("langevin_lab").exception("page %s failed", page.title)
    st.error(f"**This page hit an unexpected problem** ({type(exc).__name__}: "
             f"{md(str(exc)[:300])}). The other pages keep working; changing a setting "
             "retries.", icon=":material/report:")
