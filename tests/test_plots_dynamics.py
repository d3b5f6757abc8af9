"""Figures of the density flow and the sampler zoo: content, frames, colour scale, size, validity.

The records come from ebmcore itself (small runs), so the tests check that the figures draw
what the numerics computed: the same numbers, on the right panels, in every frame.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dashboard import flow_live
from dashboard.figures import dynamics as fd
from dashboard.figures import samplers as fs
from dashboard.figures.figkit import MAX_FIGURE_BYTES, figure_bytes
from ebmcore.exact.density import quadrature
from ebmcore.exact.modes import mixture_centres
from ebmcore.exact.view import view_box
from ebmcore.sampling.compare import equal_gradient_race, mode_weights, phase_space
from ebmcore.sampling.runner import SampleConfig
from ebmcore.sampling.stepwise import step_by_step
from ebmcore.targets.field import drift_field
from ebmcore.targets.registry import TARGETS, make_target


def valid(fig: go.Figure) -> go.Figure:
    """Re-create with Plotly's validation on (the builders skip it for speed)."""
    go.Figure(fig.to_dict())
    return fig


def finish(job: flow_live.FlowJob) -> flow_live.FlowJob:
    while not job.finished:
        flow_live.advance(job, 1.0)
    assert job.error is None, job.error
    return job


def flow_job(name: str, *, chains: int = 2000, steps: int = 20, eps: float = 0.05,
             grid: int = 32, bins: int = 16) -> flow_live.FlowJob:
    target = make_target(name)
    cfg = SampleConfig(steps=steps, step_size=eps, chains=chains, seed=3, keep_paths=0,
                       max_points=chains * (steps + 1))
    return finish(flow_live.start((name, cfg), target, cfg, grid=grid, bins=bins))


@pytest.fixture(scope="module")
def gauss_job():
    return flow_job("gaussian", chains=5000, steps=40, eps=0.1, grid=64, bins=32)


def test_frame_indices_keep_ends_and_cap():
    assert flow_live.frame_indices(5) == [0, 1, 2, 3, 4]
    idx = flow_live.frame_indices(121, 30)
    assert len(idx) == 30 and idx[0] == 0 and idx[-1] == 120 and np.all(np.diff(idx) > 0)


def test_flow_job_lines_up_every_recorded_step(gauss_job):
    j = gauss_job
    assert [c.step for c in j.curve] == j.trace.steps.tolist()
    assert len(j.frames) == len(j.frame_idx) == 30
    # the exact KL falls monotonically (the scheme never lets it grow)
    kl = [c.kl_exact for c in j.curve]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(kl))


def test_flow_figure_frames_carry_both_panels_on_one_scale(gauss_job):
    j = gauss_job
    steps = [int(j.trace.steps[i]) for i in j.frame_idx]
    times = [s * 0.1 for s in steps]
    fig = valid(fd.flow_figure(times, steps, j.frames, j.curve, j.target.box, eps=0.1,
                               rate=1 / 3))
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2
    assert all(h.zmin == 0 and h.zmax == pytest.approx(j.frames[0].zmax) for h in heat)
    assert len(fig.frames) == len(times)
    for fr, p in zip(fig.frames, j.frames, strict=True):
        exact, particles = fr.data[0], fr.data[1]
        # one colour scale for both panels of a time, the larger of the two maxima
        assert exact.zmax == particles.zmax == pytest.approx(
            max(float(p.exact.max()), float(p.particles.max())))
        np.testing.assert_allclose(np.asarray(exact.z), p.exact.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.asarray(particles.z), p.particles.numpy(), rtol=1e-6,
                                   atol=1e-7)
    names = [s["args"][0][0] for s in fig.layout.sliders[0].steps]
    assert names == [f.name for f in fig.frames]
    (kl,) = [t for t in fig.data if t.name == "KL(ρ_t ‖ p), exact"]
    np.testing.assert_allclose(np.asarray(kl.y), [max(c.kl_exact, fd.KL_MIN) for c in j.curve],
                               rtol=1e-6)
    assert any("slowest decay" in (t.name or "") for t in fig.data)
    assert figure_bytes(fig) < MAX_FIGURE_BYTES


def test_drift_traces_point_down_the_gradient():
    t = make_target("gaussian")
    f = drift_field(t, 6)
    shafts, heads = fd.drift_traces(f)
    xs = np.asarray(shafts["x"], dtype=np.float64).reshape(-1, 3)
    ys = np.asarray(shafts["y"], dtype=np.float64).reshape(-1, 3)
    pts = torch.tensor(np.stack([xs[:, 0], ys[:, 0]], 1))
    _, g = t.energy_and_grad(pts.to(torch.float32))
    d = np.stack([xs[:, 1] - xs[:, 0], ys[:, 1] - ys[:, 0]], 1)
    cos = (d * -g.double().numpy()).sum(1) / (np.linalg.norm(d, axis=1)
                                             * np.linalg.norm(g.double().numpy(), axis=1))
    assert np.all(cos > 0.999)  # the drawn arrow is -grad E's direction
    assert len(heads["x"]) == len(xs)
    fig = valid(go.Figure({"data": [shafts, heads]}))
    assert len(fig.data) == 2


@pytest.mark.parametrize("name", list(TARGETS))
def test_flow_figure_on_every_target(name):
    j = flow_job(name)
    steps = [int(j.trace.steps[i]) for i in j.frame_idx]
    fig = valid(fd.flow_figure([s * 0.05 for s in steps], steps, j.frames, j.curve,
                               j.target.box, eps=0.05, drift=drift_field(j.target, 8)))
    assert len(fig.frames) == len(steps) and fd.tv_figure(j.curve).data[1].y.shape[0] == len(
        j.curve)
    assert figure_bytes(fig) < MAX_FIGURE_BYTES


def test_flow_job_refuses_mala():
    from ebmcore.energies import ValidationError

    cfg = SampleConfig(sampler="mala", steps=5, chains=10)
    with pytest.raises(ValidationError, match="SGLD"):
        flow_live.start("k", make_target("gaussian"), cfg)


def test_flow_job_stop_keeps_what_was_done():
    t = make_target("gaussian")
    cfg = SampleConfig(steps=2000, step_size=0.01, chains=1000, keep_paths=0)
    j = flow_live.start("k", t, cfg)
    flow_live.advance(j, 0.0)
    flow_live.stop(j)
    assert j.finished and j.stopped and j.events is None


# -- the sampler zoo ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TARGETS))
@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_stepwise_figure_colours_follow_the_accept_decisions(name, sampler):
    t = make_target(name)
    gd = quadrature(t.energy, t.box, 64)
    x0 = torch.tensor([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]], dtype=torch.float64)
    rec = step_by_step(t, sampler, x0, 8, step_size=0.4, n_leapfrog=4, seed=2)
    json.dumps(rec, allow_nan=False)
    fig = valid(fs.stepwise_figure(rec, gd))
    assert len(fig.frames) == 8
    for s, fr in enumerate(fig.frames):
        acc = np.array(rec["accepted"][s])
        # one polyline per chain: green for the accepted ones, red for the rejected
        n_green = int(np.isnan(np.asarray(fr.data[1].x, dtype=float)).sum())
        n_red = int(np.isnan(np.asarray(fr.data[2].x, dtype=float)).sum())
        assert (n_green, n_red) == (acc.sum(), (~acc).sum())
        assert len(fr.data[3].x) == acc.sum() and len(fr.data[4].x) == (~acc).sum()
        la = np.array(rec["log_alpha"][s], dtype=float)
        np.testing.assert_allclose(np.asarray(fr.data[3].customdata), la[acc], rtol=1e-6)
        assert fr.data[5].y[0] == pytest.approx(rec["overall_rate"][s])
        assert f"{rec['overall_rate'][s]:.0%}" in fr.layout.title.text
        if sampler == "hmc":  # the whole leapfrog path: start plus 4 positions per chain
            assert len(fr.data[1].x) + len(fr.data[2].x) == 3 * (1 + 4 + 1)
    assert figure_bytes(fig) < MAX_FIGURE_BYTES


@pytest.mark.parametrize("name", list(TARGETS))
def test_phase_figure_draws_every_chain(name):
    t = make_target(name)
    gd = quadrature(t.energy, t.box, 64)
    rec = phase_space(t, torch.zeros(3, 2, dtype=torch.float64), 50, step_size=0.1)
    fig = valid(fs.phase_figure(rec, gd))
    phase = [tr for tr in fig.data if tr.xaxis == "x3" and tr.mode == "lines"
             and tr.name.startswith("chain")]
    assert len(phase) == 3
    v = np.array(rec["v"], dtype=float)
    np.testing.assert_allclose(np.asarray(phase[1].y, dtype=float), v[:, 1, 0], rtol=1e-5,
                               atol=1e-6)


def test_race_and_modes_figures_show_the_records():
    t = make_target("mixture")
    gd = quadrature(t.energy, t.box, 128)
    race = equal_gradient_race(t, gd, steps=40, chains=500, frames=5)
    fig = valid(fs.race_figure(race))
    ud = next(tr for tr in fig.data if tr.name.startswith("underdamped"))
    np.testing.assert_allclose(np.asarray(ud.y), race["underdamped"], rtol=1e-6)
    assert fig.layout.yaxis.type == "log"
    w = mode_weights(t, gd, mixture_centres(t), steps=50, chains=500)
    fig = valid(fs.modes_figure(w))
    bars = {tr.name: tr for tr in fig.data}
    np.testing.assert_allclose(np.asarray(bars["annealed Langevin"].y), w["annealed"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(bars["exact weight (±2 s.e.)"].error_y.array),
                               2 * np.array(w["se"]), rtol=1e-6)
    assert len(bars["plain Langevin (SGLD)"].x) == int(t.params["k"])


@pytest.mark.parametrize("name", ["banana", "funnel", "gaussian"])
def test_flow_and_zoo_figures_frame_the_view_box(name):
    # the view box (the smallest box holding 99.5% of the mass) frames the panels; the
    # densities still cover the whole quadrature box underneath
    t = make_target(name)
    gd = quadrature(t.energy, t.box, 64)
    view = tuple(view_box(quadrature(t.energy, t.box, 128)))
    assert view != tuple(t.box)

    def ranges(fig, ax: str = "") -> tuple:
        x, y = fig.layout[f"xaxis{ax}"].range, fig.layout[f"yaxis{ax}"].range
        return (*x, *y)

    x0 = torch.tensor([[0.1, 0.2], [-0.3, 0.4]], dtype=torch.float64)
    stepwise = fs.stepwise_figure(step_by_step(t, "mala", x0, 3, step_size=0.1, seed=1), gd,
                                  view=view)
    phase = fs.phase_figure(phase_space(t, x0, 5, step_size=0.05), gd, view=view)
    assert ranges(stepwise) == pytest.approx(view) and ranges(phase) == pytest.approx(view)
    assert phase.layout.xaxis3.range == pytest.approx(view[:2])  # the position axis too
    j = flow_job(name)
    steps = [int(j.trace.steps[i]) for i in j.frame_idx]
    flow = fd.flow_figure([s * 0.05 for s in steps], steps, j.frames, j.curve, j.target.box,
                          eps=0.05, view=view)
    assert ranges(flow) == pytest.approx(view) and ranges(flow, "2") == pytest.approx(view)
    heat = flow.data[0]
    assert heat.x0 - heat.dx / 2 == pytest.approx(j.target.box[0])  # the density: whole box
