"""Train an EBM: an MLP energy fitted to 2D data, live, with exact likelihood curves."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from dashboard import cache, panels, plots_train, state, train_live
from dashboard.live_view import SYNC_BUDGET_S, live_view
from dashboard.settings import Field, boolean, choice, fmt_bool, fmt_float, number
from ebmcore.ebm.data import dataset_names
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.training import METHOD_DEFAULTS
from ebmcore.energies import ValidationError

PAGE = "training"
ss = st.session_state
METHOD_LABELS = {"short-run": "short-run", "persistent": "persistent (PCD)",
                 "replay": "replay buffer", "exact": "exact gradient (grid)",
                 "adversarial": "adversarial (dynamics embedding)"}
WIDTHS = (16, 32, 64, 128, 256, 512)
METHOD_NOTES = {
    "short-run": "Every iteration starts K Langevin steps from uniform noise over the box. "
                 "Cheap and robust, but the negatives are short-run samples, not p_θ's.",
    "persistent": "Chains persist from one iteration to the next (PCD): the model changes "
                  "slowly, so K steps continue where the chains were and track p_θ.",
    "replay": "Negatives are drawn from a buffer of past negatives (5% restarted from noise), "
              "run K steps, and written back: persistence with diversity.",
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


def method_defaults(method: str, flow: str = train_live.DEFAULT_FLOW) -> dict:
    """eps, K, lr, iters of a method (the trainer's tuned defaults)."""
    if method == train_live.ADVERSARIAL:
        from ebmcore.ebm.adversarial import FLOW_DEFAULTS

        d = FLOW_DEFAULTS[flow]
        return {"eps": d["flow_step_size"], "K": d["flow_steps"], "lr": d["lr"],
                "iters": d["iters"]}
    d = METHOD_DEFAULTS[method]
    return {"eps": d["step_size"], "K": max(1, d["steps"]), "lr": d["lr"], "iters": d["iters"]}


def fields(method: str, flow: str) -> list[Field]:
    d = method_defaults(method, flow)
    return [
        Field("data", "mixture", choice(tuple(dataset_names()))),
        Field("method", "persistent", choice(train_live.ALL_METHODS)),
        Field("flow", train_live.DEFAULT_FLOW, choice(train_live.FLOWS)),
        Field("width", 128, number(1, 1024, integer=True)),
        Field("depth", 2, number(1, 8, integer=True)),
        Field("eps", float(d["eps"]), number(hi=10, positive=True), fmt_float),
        Field("K", int(d["K"]), number(0 if method == "adversarial" else 1, 10_000,
                                       integer=True)),
        Field("noise", True, boolean, fmt_bool),
        Field("lr", float(d["lr"]), number(hi=1, positive=True), fmt_float),
        Field("iters", int(d["iters"]), number(1, 1_000_000, integer=True)),
        Field("seed", 0, number(0, 2**31 - 1, integer=True)),
    ]


def _on_method() -> None:
    """A new method (or flow) brings its own tuned eps, K, lr and iterations."""
    for k, v in method_defaults(ss[_w("method")], ss[_w("flow")]).items():
        ss[_w(k)] = v


def sidebar() -> None:
    with st.sidebar:
        st.markdown("#### Data")
        st.selectbox("data set", dataset_names(), key=_w("data"),
                     help="Toy point clouds, or exact samples of a registry target (then the "
                          "KL to the true density is exact too).")
        st.markdown("#### Method")
        st.selectbox("negatives from", train_live.ALL_METHODS, key=_w("method"),
                     format_func=METHOD_LABELS.get, on_change=_on_method)
        adv = ss[_w("method")] == train_live.ADVERSARIAL
        if adv:
            st.radio("flow of q_φ", train_live.FLOWS, key=_w("flow"), horizontal=True,
                     on_change=_on_method, help="Unit-Jacobian dynamics from a Gaussian q₀.")
        st.markdown("#### Model")
        c1, c2 = st.columns(2)
        with c1:
            opts = sorted(set(WIDTHS) | {ss[_w("width")]})
            st.select_slider("width", opts, key=_w("width"))
        c2.number_input("depth", min_value=1, max_value=8, step=1, key=_w("depth"))
        st.markdown("#### Sampler" if not adv else "#### Flow")
        exact = ss[_w("method")] == "exact"
        if not exact:
            st.number_input("ε (step size)", min_value=1e-6, max_value=10.0, format="%g",
                            key=_w("eps"))
            st.number_input("flow steps T" if adv else "Langevin steps K per iteration",
                            min_value=0 if adv else 1, max_value=10_000, step=1, key=_w("K"))
            if not adv:
                st.toggle("noise", key=_w("noise"),
                          help="Off: the negatives descend the energy without noise.")
        else:
            st.caption("No chains: the negative phase is an exact sum over a grid.")
        st.markdown("#### Optimisation")
        st.number_input("learning rate", min_value=1e-7, max_value=1.0, format="%g",
                        key=_w("lr"))
        st.number_input("iterations", min_value=1, max_value=1_000_000, step=100,
                        key=_w("iters"))
        st.number_input("seed", min_value=0, max_value=2**31 - 1, step=1, key=_w("seed"))


def build(values: dict):
    ds = cache.dataset(values["data"], int(values["seed"]))
    model = ModelConfig(width=int(values["width"]), depth=int(values["depth"]))
    return train_live.make_trainer(
        ds, values["method"], model, eps=float(values["eps"]), steps=int(values["K"]),
        noise=bool(values["noise"]), lr=float(values["lr"]), iters=int(values["iters"]),
        seed=int(values["seed"]), flow=values["flow"], flow_steps=int(values["K"]))


def relevant(fl: list[Field], values: dict) -> list[Field]:
    skip = set()
    if values["method"] != train_live.ADVERSARIAL:
        skip.add("flow")
    else:
        skip.add("noise")
    if values["method"] == "exact":
        skip |= {"eps", "K", "noise"}
    return [f for f in fl if f.name not in skip]


def show(sess: train_live.TrainSession, live: bool = False) -> None:
    """Progress, numbers and figures of a session (``live``: in charts updated in place)."""
    snap = train_live.snapshot(sess)  # a worker may be training on: read one consistent copy
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
        panels.chart(plots_train.model_figure(
            tr.box, snap.density, tr.dataset.train, None if ev is None else ev.negatives,
            buffer=snap.buffer, title=f"p_θ at iteration {snap.iteration:,}"),
            live=_w("live_model") if live else None)
    with right:
        panels.chart(plots_train.training_curves(
            rows, snap.losses, total=total, entropy=tr.evaluator.entropy,
            adversarial=sess.adversarial), live=_w("live_curves") if live else None)


def live(sess_key: tuple) -> None:
    """The session's numbers and figures, trained and redrawn while it runs."""

    def job() -> train_live.TrainSession | None:
        sess = state.get(ss, "train", PAGE)
        return sess if sess is not None and sess.key == sess_key else None

    # pump: a worker trains on while the fragment draws, so drawing does not slow training
    live_view(job, step=train_live.pump, done=lambda s: s.status != "running",
              draw=lambda s: show(s, live=True))


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
            trainer = build(values)
        except ValidationError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        state.put(ss, "train", PAGE, train_live.start(tuple(sorted(values.items())), trainer))
    elif pause or resume or stop:
        sess.status = "paused" if pause else "running" if resume else "stopped"
    elif reset:
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
                st.error(f"could not load {up.name}: {exc}", icon=":material/error:")
            else:
                s = train_live.start(("checkpoint", up.name), trainer)
                s.status = "finished" if trainer.finished else "paused"
                state.put(ss, "train", PAGE, s)
                st.rerun()


def main() -> None:
    st.markdown("## Train an EBM")
    st.caption("An MLP energy E_θ fitted to 2D points by maximum likelihood. The model's density "
               "exp(−E_θ)/Z_θ lives on a box where Z_θ is computed exactly, so the likelihood "
               "curves are exact, not estimates.")
    q = st.query_params.to_dict()
    method = q.get("method") if q.get("method") in train_live.ALL_METHODS else (
        ss.get(_w("method"), "persistent"))
    flow = q.get("flow") if q.get("flow") in train_live.FLOWS else ss.get(
        _w("flow"), train_live.DEFAULT_FLOW)
    fl = fields(method, flow)
    notes = panels.load_settings(PAGE, fl)
    sidebar()
    values = panels.values_of(PAGE, fl)
    panels.show_notes(PAGE, notes, values)
    panels.write_url(PAGE, relevant(fl, values), values)

    sess = state.get(ss, "train", PAGE)
    buttons(sess, values)
    if sess is None:
        st.info("Press **start** to train with the settings on the left. The figures update "
                "live; pause, resume or stop at any time.", icon=":material/science:")
        try:
            ds = cache.dataset(values["data"], int(values["seed"]))
        except ValidationError as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            left, right = st.columns([1, 1], gap="medium")
            with left:
                panels.chart(plots_train.model_figure(ds.box, None, ds.train, None,
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
        st.error(sess.error, icon=":material/report:")
    ev = sess.last
    if ev is not None and ev.message:
        (st.warning if ev.diverged else st.success)(ev.message)
    if sess.status == "running":
        train_live.advance(sess, SYNC_BUDGET_S)
    if sess.status == "running":
        live(sess.key)
    else:
        show(sess)
    files(sess)


main()
