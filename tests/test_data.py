"""Datasets: exact geometry of the toy sets, seeding, boxes, targets, validation."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from ebmcore.box import Box
from ebmcore.ebm.data import DATASETS, PAD, Dataset, dataset_names, make_dataset
from ebmcore.energies import ValidationError

TOYS = sorted(DATASETS)


@pytest.mark.parametrize("name", TOYS)
def test_toy_shapes_dtype_box_and_range(name):
    d = make_dataset(name, n_train=3000, n_test=500, seed=1)
    assert isinstance(d, Dataset) and d.name == name and d.target is None
    assert d.train.shape == (3000, 2) and d.test.shape == (500, 2)
    assert d.train.dtype == torch.float32 and d.test.dtype == torch.float32
    both = torch.cat([d.train, d.test]).double()
    assert torch.isfinite(both).all()
    # The box is the data's own bounding box, padded by PAD per side.
    lo, hi = both.min(0).values, both.max(0).values
    expected = Box(lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item()).pad(PAD)
    assert d.box == pytest.approx(expected)
    # "Roughly [-4, 4]^2": the noiseless shapes are built inside [-4, 4]^2 except the
    # pinwheel, whose radius 2 (1 + 0.3 z) exceeds 4 only for z > 3.3; Gaussian noise of std s
    # exceeds 5 s with probability 6e-7 per coordinate, i.e. < 5e-3 over 7000 coordinates.
    noise = d.params["noise"]
    assert both.abs().max() <= max(4.0 + 5 * noise, 2 * (1 + 0.3 * 5.5))
    assert (hi - lo).min() >= 3.0  # and the data fill a good part of it
    assert DATASETS[name].doc and len(DATASETS[name].box) == 4


def on_curve(name: str, p: torch.Tensor) -> torch.Tensor:
    """Distance of noiseless points ``p (n, 2)`` float64 from the set's defining curve."""
    y = p[:, 1]
    r = p.norm(dim=1)
    if name == "moons":  # arcs of radius 2.4 about (-1.2, -0.6) (upper) and (1.2, 0.6) (lower)
        up = ((p - torch.tensor([-1.2, -0.6])).norm(dim=1) - 2.4).abs() + (-0.6 - y).clamp(min=0)
        lo = ((p - torch.tensor([1.2, 0.6])).norm(dim=1) - 2.4).abs() + (y - 0.6).clamp(min=0)
        return torch.minimum(up, lo)
    if name == "circles":
        return torch.minimum((r - 3.5).abs(), (r - 1.75).abs())
    if name == "2spirals":  # +-r (-cos t, sin t) with t = 3 pi r / 3.5
        t = 3 * math.pi * r / 3.5
        arm = r[:, None] * torch.stack([-torch.cos(t), torch.sin(t)], 1)
        return torch.minimum((p - arm).norm(dim=1), (p + arm).norm(dim=1))
    if name == "swissroll":  # (t cos t, t sin t) / 3.6 with t in [1.5 pi, 4.5 pi]
        t = 3.6 * r
        roll = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 3.6
        return (p - roll).norm(dim=1) + (1.5 * math.pi - t).clamp(min=0)
    if name == "checkerboard":  # inside [-4, 4]^2, cells (i, j) of side 2 with i + j even
        cell = torch.floor((p + 4) / 2)
        outside = (p.abs() - 4).clamp(min=0).sum(1)
        return outside + (cell.sum(1) % 2)
    if name == "8gaussians":  # with noise 0, exactly the 8 centres
        k = torch.arange(8) * math.pi / 4
        centres = 2.8 * torch.stack([torch.cos(k), torch.sin(k)], 1).double()
        return torch.cdist(p, centres).min(1).values
    raise AssertionError(name)


@pytest.mark.parametrize("name", [n for n in TOYS if n != "pinwheel"])
def test_noiseless_points_lie_on_the_shape(name):
    d = make_dataset(name, n_train=2000, n_test=10, params={"noise": 0.0})
    # float32 storage: coordinates <= 4 carry rounding <= 2.4e-7; the curve formulas
    # magnify it by at most |dt/dr| * r ~ 3 pi / 3.5 * 4 < 11, so 1e-5 is ample.
    assert on_curve(name, d.train.double()).max() < 1e-5


def test_pinwheel_has_five_arms():
    d = make_dataset("pinwheel", n_train=5000, n_test=10, seed=2)
    p = d.train.double()
    # A point of arm k is 2 R(a) (f0, f1) with a = 2 pi k / 5 + 0.25 e^f0, f0 ~ N(1, 0.3^2),
    # f1 ~ N(0, 0.1^2): its radius is 2 f0 (to 1 %) and its angle a + atan(f1 / f0).  Undoing
    # the bend leaves the angle 2 pi k / 5 + atan(f1 / f0), within pi / 5 of the arm's axis
    # unless |f1| > 0.73 f0 (a > 6 sd event), so each sector of width 2 pi / 5 centred on an
    # axis holds exactly one arm.
    theta = torch.atan2(p[:, 1], p[:, 0]) - 0.25 * torch.exp(p.norm(dim=1) / 2)
    shifted = (theta + math.pi / 5) % (2 * math.pi)
    sector = torch.floor(shifted / (0.4 * math.pi)).long().clamp(0, 4)
    resid = shifted - (sector + 0.5) * 0.4 * math.pi
    counts = torch.bincount(sector, minlength=5).double()
    # Multinomial(5000, 1/5): sd sqrt(5000 * 0.2 * 0.8) = 28.3; 4 sd = 113 around 1000.
    assert (counts - 1000).abs().max() < 113
    # Arms are thin: median |atan(f1 / f0)| ~ 0.674 * 0.1 / 1 = 0.067 rad; a uniform
    # angle would give pi / 10 = 0.31.  sd of a median of 5000 is ~0.002.
    assert resid.abs().median() < 0.09


@pytest.mark.parametrize("name", TOYS)
def test_noise_parameter_is_the_jitter_std(name):
    s = 0.2
    noisy = make_dataset(name, n_train=2000, n_test=10, seed=3, params={"noise": s})
    clean = make_dataset(name, n_train=2000, n_test=10, seed=3, params={"noise": 0.0})
    assert noisy.params["noise"] == s
    diff = (noisy.train.double() - clean.train.double()).reshape(-1)
    # Same shape draws, then s z added: diff holds N = 4000 iid N(0, s^2) values, whose
    # sample std has relative sd 1/sqrt(2N) = 0.011; 4 sd = 4.5 % (float32 rounding ~1e-7).
    assert abs(diff.std().item() / s - 1) < 4 / math.sqrt(2 * diff.numel())


def test_8gaussians_moments():
    d = make_dataset("8gaussians", n_train=20_000, n_test=10, seed=4)
    x = d.train.double()
    # Per axis: mean 0, variance R^2/2 + s^2 = 2.8^2/2 + 0.3^2 = 4.01.  sd of the mean
    # sqrt(4.01/2e4) = 0.014 -> 4 sd = 0.057.  Fourth moment R^4 (3/8) + 3 R^2 s^2 + 3 s^4
    # = 25.19, so the sample variance has sd sqrt((25.19 - 4.01^2)/2e4) = 0.021 -> 4 sd = 0.085.
    assert x.mean(0).abs().max() < 0.057
    assert (x.var(0) - 4.01).abs().max() < 0.085


@pytest.mark.parametrize("name", TOYS)
def test_seeding_and_disjoint_train_test(name):
    a = make_dataset(name, n_train=300, n_test=200, seed=5)
    b = make_dataset(name, n_train=300, n_test=200, seed=5)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test) and a.box == b.box
    c = make_dataset(name, n_train=300, n_test=200, seed=6)
    assert not torch.equal(a.train, c.train)
    # Test and train come from independent streams: the test set ignores n_train,
    # and no test point repeats a training point (continuous laws).
    longer = make_dataset(name, n_train=1000, n_test=200, seed=5)
    assert torch.equal(longer.test, a.test)
    assert torch.cdist(a.test, a.train).min() > 0


def test_validation():
    with pytest.raises(ValidationError, match="moons"):
        make_dataset("no-such-set")
    for bad_name in [None, ["moons"], 3]:
        with pytest.raises(ValidationError):
            make_dataset(bad_name)
    with pytest.raises(ValidationError, match="noise"):
        make_dataset("moons", params={"nois": 0.1})
    with pytest.raises(ValidationError):
        make_dataset("moons", params=[("noise", 0.1)])
    for bad in [-0.1, 1.5, "x", float("nan")]:
        with pytest.raises(ValidationError):
            make_dataset("moons", params={"noise": bad})
    for bad in [0, -5, 2.5, True, "10", 10**7]:
        with pytest.raises(ValidationError):
            make_dataset("moons", n_train=bad)
        with pytest.raises(ValidationError):
            make_dataset("moons", n_test=bad)
    for bad in [-1, 1.5, None]:
        with pytest.raises(ValidationError):
            make_dataset("moons", seed=bad)


def test_tiny_datasets():
    d = make_dataset("8gaussians", n_train=1, n_test=1, params={"noise": 0.0})
    x0, x1, y0, y1 = d.box
    assert x1 > x0 and y1 > y0  # even coincident points get a usable box


def sampled_targets() -> list[str]:
    from ebmcore.targets.registry import TARGETS

    return [k for k, s in TARGETS.items() if s.has_sampler]


def test_dataset_names_are_toys_then_sampled_targets():
    names = dataset_names()
    assert names[: len(TOYS)] == list(DATASETS)
    assert names[len(TOYS) :] == [n for n in sampled_targets() if n not in DATASETS]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", sampled_targets())
def test_target_datasets_are_exact_samples(name):
    from ebmcore.targets.registry import make_target

    d = make_dataset(name, n_train=4000, n_test=100, seed=7)
    t = make_target(name)
    assert d.target is not None and d.target.name == t.name
    assert d.box == pytest.approx(t.box)  # the target's own box, not the data's
    assert dict(d.params) == dict(t.params)
    assert d.train.shape == (4000, 2) and d.train.dtype == torch.float32
    assert d.test.shape == (100, 2) and d.test.dtype == torch.float32
    assert torch.cdist(d.test, d.train).min() > 0  # independent draws
    again = make_dataset(name, n_train=4000, n_test=100, seed=7)
    assert torch.equal(again.train, d.train) and torch.equal(again.test, d.test)
    if t.mean is not None and t.cov is not None:
        # The sample mean of n = 4000 exact draws has sd sqrt(cov_ii / n); allow 4 sd
        # (plus float32 rounding, < 1e-6 relative).
        sd = torch.tensor(t.cov, dtype=torch.float64).diagonal().div(4000).sqrt()
        mean = torch.tensor(t.mean, dtype=torch.float64)
        assert ((d.train.double().mean(0) - mean).abs() <= 4 * sd + 1e-5).all()


def test_target_params_are_passed_through():
    from ebmcore.targets.registry import TARGETS

    name = next(n for n in sampled_targets() if TARGETS[n].params)
    spec = TARGETS[name]
    d = make_dataset(name, n_train=10, n_test=10, params=spec.defaults)
    assert dict(d.params) == dict(spec.make().params)
    with pytest.raises(ValidationError):
        make_dataset(name, params={"no_such_param": 1.0})


def test_target_without_sampler_is_refused(monkeypatch):
    from ebmcore.targets import registry as targets

    name = sampled_targets()[0]
    monkeypatch.setitem(targets.TARGETS, name, replace(targets.TARGETS[name], has_sampler=False))
    with pytest.raises(ValidationError, match="no exact sampler") as err:
        make_dataset(name)
    assert "moons" in str(err.value) and name not in dataset_names()
