"""Every registered target against exact answers: closed forms, finite differences, quadrature."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch

from ebmcore.energies import Target, ValidationError, energy_and_grad
from ebmcore.exact.density import discrepancy, grid_points, quadrature
from ebmcore.targets.registry import TARGETS, make_target

NAMES = list(TARGETS)
SAMPLED = [n for n in NAMES if TARGETS[n].has_sampler]
WITH_GRAD = [n for n in NAMES if TARGETS[n].has_grad]
N_SAMPLES = 20_000
U32 = torch.finfo(torch.float32).eps / 2  # float32 unit round-off, 6e-8
EPS64 = torch.finfo(torch.float64).eps


@functools.cache
def target(name: str) -> Target:
    return make_target(name)


@functools.cache
def grid(name: str):
    t = target(name)
    return quadrature(t.energy, t.box, n=256)


@functools.cache
def samples(name: str) -> torch.Tensor:
    return target(name).sample(N_SAMPLES, torch.Generator().manual_seed(1234))


def probe_points(name: str, cells: int = 40) -> torch.Tensor:
    """``(cells² + 200, 2)`` float64: cell centres over the box plus exact samples."""
    _, _, pts = grid_points(target(name).box, cells)
    return torch.cat([pts, samples(name)[:200]]) if target(name).sampler else pts


def as_tensors(t: Target) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(t.mean, dtype=torch.float64), torch.tensor(t.cov, dtype=torch.float64)


# --- registry ---------------------------------------------------------------------------------


def test_registry_order_and_contents():
    assert NAMES == ["gaussian", "mixture", "banana", "donut", "funnel", "squiggle",
                     "double_well", "rings", "u1", "u2", "u3", "u4"]
    assert {"gaussian", "mixture", "banana", "funnel", "squiggle"} <= set(SAMPLED)


@pytest.mark.parametrize("name", NAMES)
def test_built_target_matches_its_spec(name):
    spec, t = TARGETS[name], target(name)
    assert t.name == name and spec.doc
    assert all(p.doc for p in spec.params.values())
    assert dict(t.params) == {k: p.validate(k, p.default) for k, p in spec.params.items()}
    assert spec.has_grad == (t.grad is not None)
    assert spec.has_sampler == (t.sampler is not None)
    x0, x1, y0, y1 = t.box
    assert all(math.isfinite(v) for v in t.box) and x0 < x1 and y0 < y1
    assert t.log_z is not None and t.mean is not None and t.cov is not None


# --- energies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_energy_follows_dtype_and_is_finite_on_the_box(name):
    t = target(name)
    x = probe_points(name, cells=64)
    e64, g64 = energy_and_grad(t.energy, x)
    e32 = t(x.float())
    assert e64.shape == e32.shape == (x.shape[0],)
    assert e64.dtype == torch.float64 and e32.dtype == torch.float32
    assert torch.isfinite(e64).all() and torch.isfinite(e32).all()
    if t.grad is not None:
        assert t.grad(x.float()).dtype == torch.float32 and t.grad(x).shape == x.shape
    # float32 vs float64: rounding the input moves E by <= u sum_i |x_i dE/dx_i|, and each of
    # the <= ~15 float ops (exp amplifying by its argument, <= ~10 here) adds <= u times the
    # terms' size (<= 1 + |E| + |x||grad E|); 32 u bounds both with room to spare.
    scale = 1.0 + e64.abs() + (x.abs() * g64.abs()).sum(1)
    assert ((e32.double() - e64).abs() <= 32 * U32 * scale).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_energy_and_grad_are_safe_far_from_the_mode(name, dtype):
    t = target(name)
    ang = torch.arange(16, dtype=torch.float64) * (2 * math.pi / 16)
    pts = [torch.stack((r * ang.cos(), r * ang.sin()), 1) for r in (1e2, 1e3)]
    x = torch.cat([*pts, torch.tensor([[0.0, 1e3], [0.0, -1e3], [1e3, 0.0], [0.0, 0.0]])])
    x = x.to(dtype)
    e, g = t.energy_and_grad(x)
    assert not torch.isnan(e).any() and not torch.isnan(g).any()
    assert (e > -math.inf).all()
    if name == "funnel":
        # E includes x² e^{-v} / 2, which for v = -1e3 exceeds any float: inf is the correctly
        # rounded value there (the density is 0 in floating point), and only there.
        xd = x.double()
        log_t = 2 * torch.log(xd[:, 0].abs()) - xd[:, 1] - math.log(2)
        assert torch.isfinite(e[log_t < math.log(torch.finfo(dtype).max) - 1]).all()
    else:
        assert torch.isfinite(e).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
    t = target(name)
    x = probe_points(name)
    e, g = t.energy_and_grad(x)
    h = 1e-5
    fd = torch.stack([(t(x + h * d) - t(x - h * d)) / (2 * h) for d in torch.eye(2).double()], 1)
    # Central differences err by h²/6 |E'''| (truncation) + eps |E| / h (round-off).  With
    # h = 1e-5 round-off is 2.2e-11 |E|; every target varies on scales >= 0.05 on these points
    # (the cells avoid the ring centre), so |E'''| <= (1 / 0.05)³ (1 + |E|) = 8e3 (1 + |E|)
    # and truncation is <= 1.4e-7 (1 + |E|).  Both sit below 1e-6 (1 + |E|).
    assert ((fd - g).abs().max(1).values <= 1e-6 * (1 + e.abs())).all()


@pytest.mark.parametrize("name", WITH_GRAD)
def test_closed_form_gradient_equals_autograd(name):
    t = target(name)
    x = probe_points(name)
    e, g_auto = energy_and_grad(t.energy, x)
    g = t.grad(x)
    # Same maths in another order: differences are round-off of O(10) operations on terms of
    # size <= 1 + |E| + |grad E| (softmax weights condition them by <= 10); 1e-12 = 4500 eps.
    assert EPS64 * 4500 < 1.01e-12
    bound = 1e-12 * (1 + e.abs() + g.abs().max(1).values)
    assert ((g - g_auto).abs().max(1).values <= bound).all()


# --- exact samplers ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLED)
def test_sampler_is_reproducible_and_uses_only_its_generator(name):
    t = target(name)
    state = torch.random.get_rng_state()
    a = t.sample(500, torch.Generator().manual_seed(7))
    b = t.sample(500, torch.Generator().manual_seed(7))
    c = t.sample(500, torch.Generator().manual_seed(8))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.shape == (500, 2) and a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", SAMPLED)
def test_samples_stay_in_the_box(name):
    # The box holds all but < 1e-8 of the mass, so all 20,000 samples fall inside but with
    # probability < 2e-4.
    x0, x1, y0, y1 = target(name).box
    s = samples(name)
    assert torch.isfinite(s).all()
    assert ((s[:, 0] > x0) & (s[:, 0] < x1) & (s[:, 1] > y0) & (s[:, 1] < y1)).all()


def clt_check(s: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, slack: float = 0.0):
    """Sample mean and covariance of ``s (n, 2)`` against a reference, at 5 standard errors.

    The sample mean's error is N(0, cov_ii / n) by the CLT.  For the covariance we centre at
    the reference mean, which makes mean((x_i - m_i)(x_j - m_j)) unbiased with variance
    Var(product) / n; that variance is estimated from the sample (every target has finite
    fourth moments).  5 standard errors fail with probability 5.7e-7 per check.  ``slack``
    (relative to the standard deviations) absorbs a reference's own error.
    """
    n = s.shape[0]
    sd = cov.diagonal().sqrt()
    assert ((s.mean(0) - mean).abs() <= 5 * sd / math.sqrt(n) + slack * sd).all()
    d = s - mean
    for i, j in itertools.combinations_with_replacement(range(2), 2):
        prod = d[:, i] * d[:, j]
        se = float(prod.std()) / math.sqrt(n)
        err = abs(float(prod.mean()) - float(cov[i, j]))
        assert err <= 5 * se + slack * float(sd[i] * sd[j]), (i, j, err, se)


@pytest.mark.parametrize("name", SAMPLED)
def test_sample_moments_match_exact_moments(name):
    mean, cov = as_tensors(target(name))
    clt_check(samples(name), mean, cov)


@pytest.mark.parametrize("name", SAMPLED)
def test_sample_moments_match_quadrature(name):
    gd = grid(name)
    clt_check(samples(name), gd.mean, gd.cov, slack=1e-4)  # quadrature error, see below


@pytest.mark.parametrize("name", SAMPLED)
def test_samples_match_the_quadrature_density(name):
    # Total variation on 32 x 32 bins.  Moving one sample changes it by <= 1/n, so McDiarmid
    # gives P(tv > E[tv] + t) <= exp(-2 n t²); E[tv] is the reported floor, and
    # t = sqrt(log(1e6) / 2n) = 0.019 makes a false failure a 1e-6 event.  (The grid's bin
    # masses are exact to ~1e-6, which shifts E[tv] by far less than t.)
    d = discrepancy(samples(name), grid(name), bins=32)
    assert d.tv <= d.floor + math.sqrt(math.log(1e6) / (2 * N_SAMPLES))


# --- quadrature ground truth ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_log_z_and_moments_match_quadrature(name):
    # The midpoint rule on a box holding 1 - 1e-8 of the mass of a smooth density converges
    # spectrally; we ask for 1e-4 in log Z and in the moments (relative to the sds).
    t, gd = target(name), grid(name)
    assert abs(gd.log_z - t.log_z) < 1e-4
    mean, cov = as_tensors(t)
    sd = cov.diagonal().sqrt()
    assert ((gd.mean - mean).abs() <= 1e-4 * sd).all()
    assert ((gd.cov - cov).abs() <= 1e-4 * torch.outer(sd, sd)).all()


def corners(name: str) -> list[dict[str, object]]:
    """Every combination of the scalar parameters' bounds."""
    axes = [[(k, p.low), (k, p.high)] for k, p in TARGETS[name].params.items() if p.size == 1]
    return [dict(c) for c in itertools.product(*axes)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "params"), [(n, c) for n in NAMES for c in corners(n) if c],
    ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x:g}" for k, x in v.items()),
)
def test_boxes_hold_the_mass_at_parameter_bounds(name, params):
    # The box is the quadrature domain: if it cut off mass or under-resolved the density,
    # log Z from the grid would miss the closed form.
    t = make_target(name, **params)
    gd = quadrature(t.energy, t.box, n=256)
    assert abs(gd.log_z - t.log_z) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "params"),
    [("mixture", {"k": 1}), ("mixture", {"k": 2}), ("mixture", {"k": 3, "radius": 3.0}),
     ("gaussian", {"mean": (1.0, -2.0), "cov": (0.5, -0.6, -0.6, 3.0)}),
     ("banana", {"bend": -3.0}), ("funnel", {"sigma": 1.0}), ("squiggle", {"freq": 0.0}),
     ("donut", {"radius": 0.0}), ("u4", {"wall": 0.05})],
)
def test_moments_match_quadrature_off_defaults(name, params):
    t = make_target(name, **params)
    gd = quadrature(t.energy, t.box, n=256)
    mean, cov = as_tensors(t)
    sd = cov.diagonal().sqrt()
    assert abs(gd.log_z - t.log_z) < 1e-4
    assert ((gd.mean - mean).abs() <= 1e-4 * sd).all()
    assert ((gd.cov - cov).abs() <= 1e-4 * torch.outer(sd, sd)).all()


# --- validation -------------------------------------------------------------------------------


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(ValidationError, match="unknown target 'nope'") as err:
        make_target("nope")
    assert all(n in str(err.value) for n in NAMES)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("mixture", {"kk": 3}, r"no parameter 'kk' \(known: k, radius, std\)"),
        ("mixture", {"std": float("nan")}, "not finite"),
        ("banana", {"x_std": float("inf")}, "not finite"),
        ("gaussian", {"mean": "0, inf"}, "not finite"),
        ("gaussian", {"cov": (1.0, 2.0, 2.0, 1.0)}, "positive definite"),
        ("gaussian", {"cov": (1.0, 0.5, 0.4, 1.0)}, "symmetric"),
        ("gaussian", {"cov": (1.0, 0.999, 0.999, 1.0)}, "correlation"),
        ("gaussian", {"mean": (1.0,)}, "expected 2"),
        ("mixture", {"k": 2.5}, "whole number"),
        ("mixture", {"k": 0}, "below the minimum"),
        ("funnel", {"sigma": 1.5}, "above the maximum"),
        ("donut", {"width": "wide"}, "not a number"),
        ("u1", {"wall": 1.0}, r"no parameter 'wall' \(known: none\)"),
    ],
)
def test_bad_parameters_raise_a_clear_validation_error(name, params, message):
    with pytest.raises(ValidationError, match=message):
        make_target(name, **params)


def test_parameters_accept_strings_and_sequences():
    t = make_target("gaussian", mean="1, -2", cov=[3, 0, 0, 1])
    assert t.params == {"mean": (1.0, -2.0), "cov": (3.0, 0.0, 0.0, 1.0)}
    assert t.mean == (1.0, -2.0)
    assert make_target("mixture", k="5").params["k"] == 5
