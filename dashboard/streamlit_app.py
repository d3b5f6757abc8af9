"""Langevin Lab: the Streamlit entry point, a thin ``st.navigation`` router.

Run with ``langevin-lab`` or ``python -m dashboard`` (or ``streamlit run`` on
this file).  Every page lives in ``app_pages/``; every setting is in the URL.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run dashboard/streamlit_app.py` from a checkout
    sys.path.insert(0, str(HERE.parent))

from dashboard import preload, scheduler  # noqa: E402 - after the path set-up above
from ebmcore.sampling.compiled_run import warm_up  # noqa: E402

preload.configure_torch()
warm_up()  # the compiled kernels load in the background, once per server process (when
# ``langevin-lab`` started the server, its preload has done this already)
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
