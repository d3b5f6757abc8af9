"""The dashboard's pure figure builders: content, fixed ranges, point caps, size, validity."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dashboard.figures import figkit
from dashboard.figures import sampling as plots
from dashboard.figures import training as plots_train
from ebmcore.energies import Target
from ebmcore.exact.density import quadrature
from ebmcore.exact.sweep import SweepPoint
from ebmcore.sampling.runner import SampleConfig, sample

BOX = (-4.0, 4.0, -3.0, 5.0)


def _gauss(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((x - torch.tensor([0.0, 1.0], dtype=x.dtype)) ** 2).sum(1)


@pytest.fixture(scope="module")
def gd():
    return quadrature(_gauss, BOX, 256)


@pytest.fixture(scope="module")
def trace():
    t = Target("g", _gauss, BOX, grad=lambda x: x - torch.tensor([0.0, 1.0], dtype=x.dtype))
    return sample(t, SampleConfig(steps=200, chains=300, seed=1))


def unpacked(spec: dict) -> np.ndarray:
    """A typed array of a figure's JSON (:func:`figkit.packed`) as a NumPy array."""
    import base64

    out = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=spec["dtype"])
    return out.reshape([int(k) for k in spec["shape"].split(",")]) if "shape" in spec else out


def test_packed_arrays_are_what_plotly_writes_for_numpy_arrays():
    a = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    for arr in (a[:, 1], a):  # 1-D (a strided view) and 2-D
        ours = go.Figure({"data": [{"type": "heatmap", "z": figkit.packed(arr)}]},
                         _validate=False).to_json(validate=False)
        theirs = go.Figure({"data": [{"type": "heatmap", "z": np.ascontiguousarray(arr)}]},
                           _validate=False).to_json(validate=False)
        assert ours == theirs
        assert np.array_equal(unpacked(figkit.packed(arr)), arr)


def valid(fig: go.Figure) -> go.Figure:
    """Check the figure with Plotly's validation on (raises on any invalid property).

    Builders skip validation for speed; this is where it happens instead.
    """
    go.Figure(fig.to_dict())
    return fig


def by_type(fig: go.Figure, *types: str) -> list:
    return [t for t in fig.data if t.type in types]


def test_decimate_keeps_ends_and_caps():
    assert list(figkit.decimate(5, 10)) == [0, 1, 2, 3, 4]
    idx = figkit.decimate(1000, 7)
    assert len(idx) == 7 and idx[0] == 0 and idx[-1] == 999 and np.all(np.diff(idx) > 0)
    assert list(figkit.decimate(10, 1)) == [9] and len(figkit.decimate(10, 0)) == 0


def test_chains_figure_content_and_fixed_box(gd, trace):
    fig = valid(plots.chains_figure(gd, trace.x, paths=trace.paths, n_paths=2, title="t"))
    (contour,) = by_type(fig, "contour")
    assert contour.z.shape[0] <= figkit.MAX_CELLS and contour.showscale is False
    scatters = by_type(fig, "scatter", "scattergl")
    (pts,) = [t for t in scatters if t.mode == "markers" and t.name.startswith("chains")]
    assert len(pts.x) == 300 and pts.type == "scatter"  # few points: SVG
    assert len([t for t in scatters if t.mode == "lines"]) == 2
    assert list(fig.layout.xaxis.range) == [-4, 4] and list(fig.layout.yaxis.range) == [-3, 5]
    assert fig.layout.yaxis.scaleanchor == "x"


def test_many_chains_are_capped_drawn_in_webgl_and_light(gd):
    x = torch.randn(100_000, 2)
    fig = plots.chains_figure(gd, x)
    pts = by_type(fig, "scattergl")[0]
    assert len(pts.x) == plots.MAX_POINTS and "of 100,000 drawn" in pts.name
    assert figkit.figure_bytes(fig) < figkit.MAX_FIGURE_BYTES


def test_non_finite_points_are_not_drawn(gd):
    x = torch.tensor([[0.0, 0.0], [float("nan"), 1.0], [1.0, float("inf")]])
    pts = by_type(plots.chains_figure(gd, x), "scatter", "scattergl")[-1]
    assert len(pts.x) == 1


def test_replay_frames_are_capped_and_animate_the_chains(gd):
    steps = torch.arange(0, 1001)
    positions = torch.randn(1001, 100_000, 2)
    fig = valid(plots.replay_figure(gd, steps, positions, max_frames=40, max_points=300))
    assert len(fig.frames) == 40
    assert fig.frames[0].name == "0" and fig.frames[-1].name == "1000"
    assert all(f.traces == (0,) for f in fig.frames)
    chains = figkit.decimate(100_000, 300)
    for f in fig.frames:  # each frame: the drawn chains where they were at its step
        xy = positions[int(f.name)][chains].numpy()
        assert np.array_equal(unpacked(f.data[0].x), xy[:, 0])
        assert np.array_equal(unpacked(f.data[0].y), xy[:, 1])
    # the density is a picture under the plot: Plotly's animations drop contour traces
    assert by_type(fig, "contour") == [] and fig.layout.images[0].layer == "below"
    assert fig.layout.images[0].source.startswith("data:image/png;base64,")
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["play", "pause"]
    assert len(fig.layout.sliders[0].steps) == 40
    assert list(fig.layout.xaxis.range) == [-4, 4]  # fixed while it plays
    assert figkit.figure_bytes(fig) < figkit.MAX_FIGURE_BYTES


def test_marginals_are_normalised_histograms_against_exact(gd):
    rng = np.random.default_rng(0)
    pts = rng.normal([0.0, 1.0], 1.0, size=(20_000, 2))
    fig = valid(plots.marginals_figure(gd, pts, bins=40))
    bars = by_type(fig, "bar")
    assert len(bars) == 2
    for bar, (lo, hi) in zip(bars, ((-4, 4), (-3, 5)), strict=True):
        width = (hi - lo) / 40
        # all but the tails beyond 4 sd (6e-5 of the mass) fall inside the box: integral ~ 1
        assert float(np.sum(bar.y) * width) == pytest.approx(1.0, abs=2e-3)
    exact = [t for t in fig.data if t.name == "exact"]
    assert len(exact) == 2 and exact[0].line.dash == "dash"


def test_curves_show_the_exact_levels_fixed_x_and_burn_in(gd, trace):
    lik = -trace.mean_energy - gd.log_z
    fig = valid(plots.curves_figure(trace.steps, lik, gd.neg_entropy, trace.mean_energy,
                                    log_z=gd.log_z, burn_in=50, total=200))
    ref = [t for t in fig.data if t.legendgroup == "exact"]
    assert float(ref[0].y[0]) == pytest.approx(gd.neg_entropy)
    assert float(ref[1].y[0]) == pytest.approx(-gd.neg_entropy - gd.log_z)  # E_p[E]
    assert list(fig.layout.xaxis.range) == [0, 200] and list(fig.layout.xaxis2.range) == [0, 200]
    assert len(fig.layout.shapes) == 2 and fig.layout.shapes[0].x1 == 50
    lo, hi = fig.layout.yaxis.range
    assert lo < gd.neg_entropy < hi


def test_curves_with_a_map_run(gd, trace):
    lik = -trace.mean_energy - gd.log_z
    fig = valid(plots.curves_figure(trace.steps, lik, gd.neg_entropy, trace.mean_energy,
                                    map_likelihood=lik + 1.0, map_energy=trace.mean_energy))
    assert sum(t.name == "noise off (MAP)" for t in fig.data) == 2


def test_twin_panels_share_fixed_axes(gd):
    left, right = torch.randn(500, 2), torch.zeros(500, 2)
    fig = valid(plots.twin_figure(gd, left, right, titles=("SGLD", "MAP")))
    assert len(by_type(fig, "contour")) == 2
    assert list(fig.layout.xaxis.range) == list(fig.layout.xaxis2.range) == [-4, 4]
    assert list(fig.layout.yaxis2.range) == [-3, 5]
    assert [a.text for a in fig.layout.annotations] == ["SGLD", "MAP"]
    assert fig.layout.xaxis.domain[1] < fig.layout.xaxis2.domain[0]


def test_sweep_figure_lines_floor_and_fixed_log_axes():
    pts = [SweepPoint(s, e, 100, tv, 0.04, 0, None, 0.1) for s, e, tv in
           (("sgld", 0.1, 0.05), ("mala", 0.1, 0.04), ("sgld", 1.0, 0.3), ("mala", 1.0, 0.0))]
    fig = valid(plots.sweep_figure(pts, eps_range=(0.1, 1.0)))
    names = [t.name for t in fig.data]
    assert names == ["SGLD", "MALA", "floor (exact iid samples)"]
    assert list(fig.data[0].x) == [0.1, 1.0] and fig.data[1].y[1] == plots.TV_MIN  # 0 on log
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert fig.layout.yaxis.range[0] == pytest.approx(np.log10(plots.TV_MIN))
    assert valid(plots.sweep_figure([])).data == ()  # empty while the first run computes


def test_model_figure_with_buffer_and_negatives(gd):
    fig = valid(plots_train.model_figure(BOX, gd, torch.randn(5000, 2), torch.randn(256, 2),
                                         buffer=torch.randn(10_000, 2)))
    names = [t.name for t in fig.data]
    assert names[0] == "p_θ" and names[-1] == "negatives" and "replay buffer (10,000)" in names
    assert all(len(t.x) <= 3000 for t in fig.data if t.type != "contour")
    assert list(fig.layout.xaxis.range) == [-4, 4]
    assert by_type(valid(plots_train.model_figure(BOX, None, torch.randn(5, 2), None)),
                   "contour") == []


def test_replay_buffer_is_coloured_by_age_each_age_with_its_point(gd):
    buf = torch.randn(10_000, 2)
    buf[7] = float("nan")  # a diverged entry is not drawn, and its age goes with it
    age = torch.arange(10_000, dtype=torch.int32)  # entry i has age i: checkable per point
    fig = valid(plots_train.model_figure(BOX, gd, torch.randn(50, 2), None, buffer=buf,
                                         buffer_age=age, max_points=500))
    tr = next(t for t in fig.data if t.name.startswith("replay buffer"))
    assert "darker = older" in tr.name and len(tr.x) <= 500
    ages = np.asarray(tr.customdata)
    assert 7 not in ages
    np.testing.assert_allclose(tr.x, buf[ages, 0].numpy())  # each age beside its own point
    np.testing.assert_allclose(tr.marker.color, np.log1p(ages), rtol=1e-6)
    assert tr.marker.cmin == 0 and tr.marker.cmax == pytest.approx(np.log1p(ages.max()))


def test_evolution_figure_steps_through_the_evaluations():
    from dashboard.train_live import MAX_FRAMES, Frame
    from ebmcore.exact.density import quadrature as quad

    # a density moving along x over the evaluations, and its negatives with it
    frames = []
    for k in range(MAX_FRAMES):
        shift = -2 + 4 * k / (MAX_FRAMES - 1)
        frames.append(Frame(50 * (k + 1), quad(
            lambda x, s=shift: 0.5 * ((x - torch.tensor([s, 0.0], dtype=x.dtype)) ** 2).sum(1),
            BOX, 256), torch.randn(2000, 2, generator=torch.Generator().manual_seed(k))
            + torch.tensor([shift, 0.0])))
    data = torch.randn(3000, 2, generator=torch.Generator().manual_seed(99))
    fig = valid(plots_train.evolution_figure(BOX, frames, data))
    assert [t.name for t in fig.data] == ["p_θ", "data", "negatives"]
    assert len(fig.frames) == MAX_FRAMES and fig.layout.title.text == "p_θ at iteration 50"
    steps = fig.layout.sliders[0].steps
    assert [s.args[0][0] for s in steps] == [str(f.iteration) for f in frames]
    for f, fr in zip(frames, fig.frames, strict=True):
        contour, neg = fr.data
        assert fr.name == str(f.iteration) and list(fr.traces) == [0, 2]
        assert fr.layout.title.text == f"p_θ at iteration {f.iteration:,}"
        # the drawn density peaks where that evaluation's does (the grids' argmax agree)
        # a frame carries only what changes, its arrays in Plotly's typed-array form
        assert contour.type == "contour" and contour.colorscale is None
        z = unpacked(contour.z)
        j = np.unravel_index(np.argmax(z), z.shape)
        assert float(z.max()) == pytest.approx(contour.zmax) == pytest.approx(
            contour.contours.end)
        assert float(unpacked(contour.x)[j[1]]) == pytest.approx(
            float(f.density.xs[np.unravel_index(int(f.density.density.argmax()),
                                                 f.density.density.shape)[1]]), abs=0.2)
        # at most 400 drawn, evenly spaced among iid draws: their mean is within 3 standard
        # errors (3 / sqrt(400) = 0.15) of all 2000's (fixed seeds)
        assert len(unpacked(neg.x)) <= 400 and np.mean(unpacked(neg.x)) == pytest.approx(
            float(f.negatives[:, 0].mean()), abs=0.15)
    # every frame, the data and the slider stay within what one figure may weigh
    assert figkit.figure_bytes(fig) < figkit.MAX_FIGURE_BYTES
    assert valid(plots_train.evolution_figure(BOX, [], data)).frames == ()


def test_training_curves_exact_and_adversarial():
    rows = [{"iteration": i, "nll_train": 3 - i / 1000, "nll_test": 3.1 - i / 1000,
             "kl": 1 / i, "log_z": 2.0, "bound": 1.9, "gap": 0.1} for i in (50, 100, 150)]
    losses = [(i, 0.01 * i) for i in range(1, 151)]
    fig = valid(plots_train.training_curves(rows, losses, total=3000, entropy=2.1,
                                            adversarial=True))
    names = [t.name for t in fig.data]
    for name in ("train NLL", "test NLL", "data entropy (best possible)", "KL", "exact log Z",
                 "bound (≤ log Z)", "gap = KL(q ‖ p_θ)", "loss"):
        assert name in names
    assert list(fig.layout.xaxis4.range) == [0, 3000]
    plain = valid(plots_train.training_curves([{"iteration": 50, "nll_train": 3.0,
                                                "kl": None}], [], total=100))
    assert "bound (≤ log Z)" not in [t.name for t in plain.data]
    assert any("no KL" in a.text for a in plain.layout.annotations)


def test_grid_layout_domains_are_inside_the_unit_square():
    layout, refs = figkit.grid_layout(2, 2, titles=("a", "b", "c", "d"), vspace=0.18)
    assert refs == [("x", "y"), ("x2", "y2"), ("x3", "y3"), ("x4", "y4")]
    for k in ("xaxis", "yaxis", "xaxis4", "yaxis4"):
        lo, hi = layout[k]["domain"]
        assert 0 <= lo < hi <= 1
