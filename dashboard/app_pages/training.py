"""Train an EBM: an MLP energy fitted to 2D data, live, with exact likelihood curves."""

from __future__ import annotations

import io
import time

import pandas as pd
import streamlit as st

from dashboard import cache, panels, state, train_live, url, url_build
from dashboard.figures import training as figures
from dashboard.live_view import SYNC_BUDGET_S, live_view
from dashboard.safe_text import md
from dashboard.url_fields import METHOD_LABELS, TRAIN_SECTIONS, TRAIN_STAGES
from ebmcore.energies import ValidationError

PAGE = "training"
ss = st.session_state
METHOD_NOTES = {
    "short-run": "Every iteration starts K Langevin steps from uniform noise over the box. "
                 "Cheap and robust, but the negatives are short-run samples, not p_θ's.",
    "persistent": "Chains persist from one iteration to the next (PCD): the model changes "
                  "slowly, so K steps continue where the chains were and track p_θ.",
    "replay": "Negatives are drawn from a buffer of past negatives (a small fraction, set per "
              "data set, restarted from noise), run K steps, and written back: persistence "
              "with diversity. The buffer is drawn under the negatives, darker where an "
              "entry has run longer since it left the noise.",
    "exact": "No chains at all: the negative phase E_pθ[∇θ E] is an exact weighted sum over "
             "the cells of a grid. The true maximum-likelihood gradient, the reference for "
             "the other methods.",
    "adversarial": "A sampler q_φ (a Gaussian pushed through T unit-Jacobian Langevin or "
                   "Hamiltonian steps) plays the generator: it tightens the bound "
                   "log Z ≥ E_q[−E] + H(q) while E_θ lowers the energy of data relative to "
                   "q's draws. The bound and its gap to the exact log Z are drawn live.",
}


def _w(name: str) -> str:
    return state.widget_key(PAGE, name)


def show(sess: train_live.TrainSession, shots: list | None = None) -> None:
    """Progress, numbers and figures of a session; ``shots``: while live, the snapshots a
    tick captured, oldest first (the model chart plays them back, updated in place)."""
    live = shots is not None
    # a worker may be training on: read one consistent copy
    snap = shots[-1] if live else train_live.snapshot(sess)
    tr, ev = sess.trainer, snap.last
    total = tr.config.iters
    st.progress(min(1.0, snap.iteration / total),
                text=f"iteration {snap.iteration:,} of {total:,} · {snap.rate:,.1f} it/s · "
                     f"{sess.status}")
    rows = snap.rows
    m = rows[-1] if rows else {}
    if not rows:
        every = tr.config.eval_every or total
        st.caption(f"The exact metrics are computed every {every:,} iterations.")
    c = st.columns(5)
    ent = tr.evaluator.entropy  # the data density's entropy (history rows may reuse the name)
    panels.metric(c[0], "test NLL", panels.fmt(m.get("nll_test"), 4),
                  None if ent is None else f"data entropy {panels.fmt(ent, 4)}",
                  "Exact negative log-likelihood of held-out points, nats per point.")
    panels.metric(c[1], "KL(p_data ‖ p_θ)", panels.fmt(m.get("kl"), 3),
                  None if m.get("kl") is not None or not rows else "data density unknown")
    panels.metric(c[2], "exact log Z_θ", panels.fmt(m.get("log_z"), 5))
    if sess.adversarial:
        panels.metric(c[3], "bound on log Z", panels.fmt(m.get("bound"), 5),
                      None if m.get("gap") is None else f"gap {panels.fmt(m.get('gap'), 3)}",
                      "E_q[−E] + H(q) (x-space); the gap to the exact log Z is KL(q ‖ p_θ).")
    else:
        panels.metric(c[3], "negatives vs p_θ (TV)", panels.fmt(m.get("neg_discrepancy")),
                      None if m.get("neg_floor") is None else
                      f"floor {panels.fmt(m.get('neg_floor'), 2)}",
                      "How far the current negatives are from the model's own density.")
    panels.metric(c[4], "loss", panels.fmt(None if ev is None else ev.loss, 4))
    left, right = st.columns([1, 1], gap="medium")
    with left:
        if live:
            panels.chart([_model(tr, s, *_shown_density(sess, s)) for s in shots],
                         live=_w("live_model"))
        else:
            panels.chart(_model(tr, snap, snap.density,
                                rows[-1]["iteration"] if rows else None, last=True))
    with right:
        def curves():
            return figures.training_curves(rows, snap.losses, total=total,
                                           entropy=tr.evaluator.entropy,
                                           adversarial=sess.adversarial)
        if live:
            panels.chart(_throttled("curves", sess, curves), live=_w("live_curves"))
        else:
            panels.chart(curves())


def _model(tr, snap: train_live.Snapshot, density, iteration: int | None,
           last: bool = False):
    """The model figure: ``density`` (of the evaluation at ``iteration``; ``last``: the
    run's last one so far), the data and the snapshot's negatives."""
    ev = snap.last
    return figures.model_figure(
        tr.box, density, tr.dataset.train, None if ev is None else ev.negatives,
        buffer=snap.buffer, buffer_age=snap.buffer_age,
        title=f"p_θ at iteration {iteration:,}{' (last evaluation)' if last else ''}"
        if iteration is not None else
        "the data and the negatives (p_θ from the first evaluation)")


def _shown_density(sess: train_live.TrainSession, snap: train_live.Snapshot) -> tuple:
    """While live, the density drawn and its evaluation's iteration: the newest, changed
    at most every ``REDRAW_S["density"]`` (the first evaluation at once)."""
    return _throttled("density", sess, lambda: (
        snap.density, snap.rows[-1]["iteration"] if snap.rows else None), bool(snap.rows))


# While live, a chart that a full Plotly redraw updates (new contours, more curve points)
# is rebuilt at most this often (seconds): at each evaluation, about every second at the
# defaults, the three cost the browser 80-140 ms each (measured), a fifth of a core beside
# the negatives moving five times a second.
REDRAW_S = {"density": 2.0, "curves": 2.0, "evolution": 5.0}


def _throttled(name: str, sess: train_live.TrainSession, build, first: bool = True):
    """``build()``, or what it gave less than ``REDRAW_S[name]`` ago for this session; built
    at once when ``first`` becomes true (the first evaluation is shown when it comes)."""
    key, now = (id(sess), first), time.monotonic()
    memo = ss.get(f"_training_{name}")
    if memo is None or memo[0] != key or now - memo[1] >= REDRAW_S[name]:
        memo = ss[f"_training_{name}"] = (key, now, build())
    return memo[2]


def live(sess_key: tuple) -> None:
    """The session's numbers and figures, trained and redrawn while it runs."""

    def job() -> train_live.TrainSession | None:
        sess = state.get(ss, "train", PAGE)
        return sess if sess is not None and sess.key == sess_key else None

    # pump: a worker trains on while the fragment draws, so drawing does not slow training;
    # the worker takes its turns itself (it steps aside for lighter sessions)
    def draw(s: train_live.TrainSession, shots: list) -> None:
        show(s, shots)
        evolution(s, live=True)

    live_view(job, step=train_live.pump, done=lambda s: s.status != "running", draw=draw,
              capture=train_live.snapshot, fair=False)


def evolution(sess: train_live.TrainSession, live: bool = False) -> None:
    """The model at each evaluation, replayed in the browser (and as an HTML file); while
    ``live``, in a live chart that keeps playing until a new snapshot arrives."""
    frames, tr = sess.frames, sess.trainer  # one list: the worker replaces it, never edits
    if len(frames) < 2:
        return

    def build():  # the figure, with how many snapshots it shows and the last one's iteration
        return (len(frames), frames[-1].iteration,
                figures.evolution_figure(tr.box, frames, tr.dataset.train, at_last=live))

    def fig():  # while live, at most every REDRAW_S["evolution"]; after, once per stop
        if live:
            return _throttled("evolution", sess, build)
        key = (id(sess), tuple(f.iteration for f in frames))
        memo = ss.get("_training_evolution_final")
        if memo is None or memo[0] != key:
            memo = ss["_training_evolution_final"] = (key, build())
        return memo[1]

    label = "how the model evolved: a snapshot per evaluation"  # one label: stays open
    with st.expander(label if live else f"{label} ({len(frames)})", icon=":material/movie:"):
        n, last, shown = fig()
        if live:
            st.caption(f"{n} snapshots so far, up to iteration {last:,}: the newest are "
                       f"added every {REDRAW_S['evolution']:g} s (once the animation playing "
                       "ends).")
        panels.chart(shown, live=_w("live_evolution") if live else None)
        panels.download_html("interactive HTML", lambda: [("the model at each evaluation",
                                                           fig()[2])],
                             "Langevin Lab: an EBM in training", "ebm_evolution.html",
                             key=_w("dl_evolution"))


def _replace(sess) -> None:
    """A run about to be replaced stops now (its worker thread too), not at its lease's end."""
    if sess is not None and sess.status in ("running", "paused"):
        train_live.set_status(sess, "stopped")


def buttons(sess, values: dict) -> None:
    status = None if sess is None else sess.status
    row = st.container(horizontal=True)
    start = row.button("start", key=_w("start"), type="primary", icon=":material/play_arrow:",
                       disabled=status == "running")
    pause = row.button("pause", key=_w("pause"), icon=":material/pause:",
                       disabled=status != "running")
    resume = row.button("resume", key=_w("resume"), icon=":material/resume:",
                        disabled=status != "paused")
    stop = row.button("stop", key=_w("stop"), icon=":material/stop:",
                      disabled=status not in ("running", "paused"))
    reset = row.button("reset", key=_w("reset"), icon=":material/restart_alt:",
                       disabled=sess is None)
    if start:
        try:
            trainer = url_build.build_trainer(values)
        except ValidationError as exc:
            st.error(md(exc), icon=":material/error:")
            return
        _replace(sess)
        state.put(ss, "train", PAGE, train_live.start(tuple(sorted(values.items())), trainer))
    elif pause or resume or stop:
        train_live.set_status(sess, "paused" if pause else "running" if resume else "stopped")
    elif reset:
        _replace(sess)
        state.pop(ss, "train", PAGE)
    else:
        return
    st.rerun()


def files(sess) -> None:
    c = st.columns(3)
    if sess is not None and sess.trainer.iteration > 0:
        with c[0]:
            st.download_button("checkpoint (.pt)", data=lambda: train_live.checkpoint_bytes(sess),
                               file_name="ebm_checkpoint.pt", key=_w("dl_ckpt"),
                               on_click="ignore", icon=":material/save:")
        with c[1]:
            panels.download_csv("metrics CSV", lambda: pd.DataFrame(
                train_live.metrics_rows(sess)), "metrics.csv", key=_w("dl_metrics"))
    with c[2].expander("load a checkpoint", icon=":material/upload_file:"):
        up = st.file_uploader("checkpoint (.pt)", type=["pt"], key=_w("upload"))
        if up is not None and st.button("load it (paused)", key=_w("load")):
            try:
                trainer = train_live.load_checkpoint_bytes(io.BytesIO(up.getvalue()).read())
            except Exception as exc:  # a bad file is reported, never raised
                st.error(f"could not load {md(up.name)}: {md(exc)}", icon=":material/error:")
            else:
                _replace(sess)
                s = train_live.start(("checkpoint", up.name), trainer)
                s.status = "finished" if trainer.finished else "paused"
                state.put(ss, "train", PAGE, s)
                st.rerun()


def main() -> None:
    st.markdown("## Train an EBM")
    st.caption("An MLP energy E_θ fitted to 2D points by maximum likelihood. The model's density "
               "exp(−E_θ)/Z_θ lives on a box where Z_θ is computed exactly, so the likelihood "
               "curves are exact, not estimates.")
    fields, values, _, _ = url.form(PAGE, TRAIN_STAGES, TRAIN_SECTIONS)
    url.write_url(PAGE, fields, values)

    sess = state.get(ss, "train", PAGE)
    buttons(sess, values)
    if sess is None:
        st.info("Press **start** to train with the settings on the left. The figures update "
                "live; pause, resume or stop at any time.", icon=":material/science:")
        try:
            ds = cache.dataset(values["data"], int(values["seed"]))
        except ValidationError as exc:
            st.error(md(exc), icon=":material/error:")
        else:
            left, right = st.columns([1, 1], gap="medium")
            with left:
                panels.chart(figures.model_figure(ds.box, None, ds.train, None,
                                                      title=f"{ds.name}: training data"))
            with right:
                st.markdown(f"##### {METHOD_LABELS[values['method']]}")
                st.markdown(METHOD_NOTES[values["method"]])
                st.caption(f"{len(ds.train):,} training and {len(ds.test):,} test points. "
                           + ("Exact samples of a known density: the KL and the best "
                              "possible NLL are shown." if ds.target is not None else
                              "Their density is unknown: the test NLL measures the fit."))
        files(None)
        return
    if sess.key != tuple(sorted(values.items())) and sess.key[0] != "checkpoint":
        st.caption("The settings changed since this run started: **start** runs them anew.")
    if sess.error:
        st.error(md(sess.error), icon=":material/report:")
    ev = sess.last
    if ev is not None and ev.message:
        (st.warning if ev.diverged else st.success)(ev.message)
    if sess.status == "running":
        train_live.advance(sess, SYNC_BUDGET_S)
    if sess.status == "running":
        live(sess.key)
    else:
        show(sess)
        evolution(sess)  # paused, stopped or finished: the snapshots so far
    files(sess)


main()
