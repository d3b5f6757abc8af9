"""Responsiveness of the dashboard, as rows of the ``bench`` table (no Streamlit import).

Measures what happens on the server after a slider change on the playground at
default settings (the reference Gaussian, eps 0.3, 1000 steps, 500 chains):

- ``figures``: building every figure the page draws from a finished run (the replay only
  when its tab is opened: a row of its own);
- ``page``: the whole response: the run itself, its summary, and the figures;
- ``size``: the largest figure sent to the browser, at 500 and at 100,000 chains;
- ``per target``: the whole response on every registry target at its own default settings
  (:func:`ebmcore.defaults.sampling_defaults`), with the kernel threads an idle server gives
  it (:func:`dashboard.scheduler.kernel_threads`) and ``randn_s``, the time drawing the
  run's noise alone takes on one thread.

Registered as ``dashboard`` in :data:`ebmcore.bench.core.BENCHES` when imported.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from dashboard import scheduler
from dashboard.figures import figkit
from dashboard.figures import sampling as plots
from ebmcore.bench.core import median_seconds, register_bench
from ebmcore.defaults import sampling_defaults
from ebmcore.exact.density import quadrature
from ebmcore.exact.summary import GRID, summarize
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.registry import TARGETS, make_target

__all__ = ["build_figures", "dashboard_bench", "measure"]

BUDGET_S = 0.150  # what a slider change may cost on the server at default settings


def build_figures(gd, trace, summary, *, replay: bool = False) -> dict:
    """The playground's figures for a finished run (what the page draws; the replay only
    once its tab is opened, ``replay``)."""
    pts = trace.x[trace.alive]
    extra = {"replay": plots.replay_figure(gd, trace.steps, trace.positions)} if replay else {}
    return {
        "chains": plots.chains_figure(gd, pts, paths=trace.paths),
        **extra,
        "marginals": plots.marginals_figure(gd, pts),
        "curves": plots.curves_figure(summary.likelihood_steps, summary.likelihood,
                                      summary.neg_entropy, trace.mean_energy,
                                      log_z=summary.log_z, total=trace.config.steps),
    }



def _row(impl: str, chains: int, seconds: float, nbytes: int | None, target: str = "gaussian",
         steps: int | None = None) -> dict:
    return {"bench": "dashboard", "impl": impl, "target": target, "chains": chains,
            "steps": SampleConfig().steps if steps is None else steps, "seconds": seconds,
            "rate": 1.0 / seconds if seconds > 0 else float("nan"), "unit": "responses/s",
            "bytes": nbytes, "budget_s": BUDGET_S, "load1": os.getloadavg()[0]}


def measure(quick: bool = False) -> list[dict]:
    """Figure build time, full response time and figure sizes (see the module docstring)."""
    repeats = 2 if quick else 7
    target = make_target("gaussian")
    gd = quadrature(target.energy, target.box, GRID)
    rows = []
    for chains in (500, 100_000):
        cfg = SampleConfig(chains=chains)
        trace = sample(target, cfg)
        summary = summarize(trace, target, gd)
        size = max(figkit.figure_bytes(f) for f in
                   build_figures(gd, trace, summary, replay=True).values())
        def figures(trace=trace, summary=summary) -> None:
            for f in build_figures(gd, trace, summary).values():
                f.to_json(validate=False)  # what Streamlit sends: building + serialising

        t_fig = median_seconds(figures, repeats)
        rows.append(_row("figures after a slider change (build + JSON)", chains, t_fig, size))
        rows.append(_row("the Replay tab opened (build + JSON)", chains, median_seconds(
            lambda trace=trace: plots.replay_figure(gd, trace.steps, trace.positions).to_json(
                validate=False), repeats), None))
        if chains == 500:
            def page(cfg=cfg) -> None:
                tr = sample(target, cfg)
                for f in build_figures(gd, tr, summarize(tr, target, gd)).values():
                    f.to_json(validate=False)

            rows.append(_row("whole response (run + summary + figures)", chains,
                             median_seconds(page, repeats), size))
        if quick:
            break
    return rows + _per_target(quick)


def _randn_seconds(chains: int, steps: int, repeats: int) -> float:
    out, gen = torch.empty(chains, 2), torch.Generator().manual_seed(0)

    def draw() -> None:
        for _ in range(steps):
            torch.randn(out.shape, generator=gen, out=out)

    return median_seconds(draw, repeats)


def _per_target(quick: bool) -> list[dict]:
    """The whole response at each registry target's defaults (gaussian only when quick)."""
    rows = []
    for name in ["gaussian"] if quick else list(TARGETS):
        target = make_target(name)
        gd = quadrature(target.energy, target.box, GRID)
        cfg = SampleConfig(**sampling_defaults(name))
        # as the page starts it on an idle server (dashboard.live.start)
        cfg = replace(cfg, threads=scheduler.kernel_threads("-", cfg))
        repeats = 2 if quick else max(2, min(7, round(5e6 / (cfg.chains * cfg.steps))))

        def page(cfg=cfg, target=target, gd=gd) -> None:
            tr = sample(target, cfg)
            for f in build_figures(gd, tr, summarize(tr, target, gd)).values():
                f.to_json(validate=False)

        row = _row("whole response at the target's defaults", cfg.chains,
                   median_seconds(page, repeats), None, name, cfg.steps)
        row["sampler"], row["threads"] = cfg.sampler, cfg.threads
        row["randn_s"] = _randn_seconds(cfg.chains, cfg.steps, repeats)
        rows.append(row)
    return rows


dashboard_bench = register_bench("dashboard")(measure)
