"""The compiled gradient of typed formulas against torch.autograd on the same energy.

The compiled rules are autograd's own derivative formulas, so the two agree to rounding
(1e-10 relative in float64 leaves room for a different order of summing the terms of a
variable used several times) and exactly in where they are nan or +-inf, at random points
and at the singular ones: the origin for r/theta, ties for min/max, 0 for abs/relu/sqrt,
clamp's bounds, powers of 0 and of negative numbers.  Inputs are finite: a chain whose
position is not is frozen by the runner before its gradient is used.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from hypothesis import given
from test_formula_fuzz import FUZZ, PARAMS, TREES, render

from ebmcore.energies import energy_and_grad
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.formula import FUNCTIONS, _compile, compile_formula, formula_target
from ebmcore.targets.formula_grad import RULES

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.0, 3.0, 1e-170, -1e-160, 30.0]


def points(n: int = 200, seed: int = 0) -> torch.Tensor:
    """Random points in [-3, 3]^2, all pairs of SPECIAL values, and the diagonal x = y."""
    g = torch.Generator().manual_seed(seed)
    rand = torch.rand(n, 2, generator=g, dtype=torch.float64) * 6 - 3
    pairs = torch.tensor(list(itertools.product(SPECIAL, SPECIAL)), dtype=torch.float64)
    diag = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None].expand(13, 2)
    return torch.cat([rand, pairs, diag])


def assert_same_gradient(expr: str, X: torch.Tensor, params: dict | None = None) -> None:
    t = formula_target(expr, params=params, check=False)
    _, want = energy_and_grad(t.energy, X)
    got = t.grad(X)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert torch.equal(torch.isnan(got), torch.isnan(want)), (expr, X[torch.isnan(got) ^
                                                                     torch.isnan(want)][:4])
    inf = torch.isinf(want)
    assert torch.equal(torch.isinf(got), inf), expr
    # torch's contiguous and strided kernels may differ in the sign of a zero (max(-0., 0.)),
    # which flips an infinite derivative there (sqrt, log, 1/x at 0): only at a -0 input.
    flipped = (got != want) & inf
    assert not (flipped & ~(torch.signbit(X) & (X == 0)).any(1, keepdim=True)).any(), expr
    fin = torch.isfinite(want)
    err = (got[fin] - want[fin]).abs()
    bad = err > 1e-10 * want[fin].abs().clamp(min=1.0)
    assert not bad.any(), (expr, X[fin.all(1)][:0], got[fin][bad][:4], want[fin][bad][:4])


# Every operator and function, applied to arguments that depend on x, on y, on both, and
# mixed with constants; each argument position is once live and once constant.
UNARY = [n for n, (lo, hi, _) in FUNCTIONS.items() if lo == hi == 1]
ARGS = ["x", "x*y - y", "2*x + 0.5", "r", "theta", "x - y"]
OPERATOR_CASES = [
    "x + y", "x - y", "x * y", "x / y", "x ** y", "-x", "+x", "2 - x", "x / 3", "3 / x",
    "x ** 2", "x ** 0", "x ** 0.5", "x ** -1", "x ** 3.5", "2 ** x", "(-2) ** x", "0 ** x",
    "y ** x", "x ** (1 - 1)", "(x*y) ** (x + y)", "x ** 1", "x ** -0.5", "x ** 3", "x ** -2",
    "(x - y) ** 3 + (x*y) ** -1", "x ** 4",
]
FUNCTION_CASES = [f"{f}({a})" for f in UNARY for a in ARGS] + [
    "log(x**2)", "sqrt(x**2)", "sqrt(abs(x)) + y", "exp(50*x)", "tan(pi/2 + 0*x)",
    "softplus(800*x)", "softplus(-800*x)", "sigmoid(800*x)", "tanh(800*y)", "relu(x - y)",
    "atan2(y, x)", "atan2(x, 2)", "atan2(2, y)", "atan2(x*y, x - y)", "atan2(x, x)",
    "clamp(x, -1, 1)", "clamp(x, y, 1)", "clamp(x, -1, y)", "clamp(1, x, y)", "clamp(x, y, x)",
    "clamp(x, 1, -1)", "clamp(x, y, -y)", "clamp(0.5, x, 2)", "clamp(0.5, -1, x)",
    "min(x)", "min(x, y)", "min(x, 1)", "min(1, x)", "min(x, y, 0.5, x*y)", "min(x, x)",
    "max(x)", "max(x, y)", "max(x, 1)", "max(-1, y)", "max(x, y, 0.5, x*y)", "max(y, y, x)",
    "logsumexp(x)", "logsumexp(x, y)", "logsumexp(x, 1)", "logsumexp(2, x, y, x*y)",
    "logsumexp(800*x, 800*y)", "logsumexp(-800*x, -800*y)", "logsumexp(x, x)",
    "log(min(x, y))", "sqrt(max(x, 0))", "1 / clamp(x, 0, 1)", "log(abs(x)) * relu(y)",
    "r", "theta", "r**2/2 + sin(3*theta)", "log(r)", "sqrt(r)", "1/r + theta*x", "r*theta*y",
    "2 + 3", "pi * e", "exp(1)", "x + pi", "s * x**2 + t", "r ** 0.5",
]


def test_every_operator_and_function_has_a_rule_and_a_case():
    cases = " ".join(OPERATOR_CASES + FUNCTION_CASES)
    for name in FUNCTIONS:
        assert name in RULES and f"{name}(" in cases, name
    for op in ("+", "-", "*", "/", "**"):
        assert f" {op} " in cases


@pytest.mark.parametrize("expr", OPERATOR_CASES + FUNCTION_CASES)
def test_gradient_equals_autograd(expr):
    assert_same_gradient(expr, points(), {"s": 0.5, "t": -1.0} if " t" in expr else None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_energy_and_grad_share_one_sweep_and_match_the_energy(dtype):
    X = points().to(dtype)
    for expr in OPERATOR_CASES + FUNCTION_CASES:
        if " t" in expr:
            continue
        t = formula_target(expr, check=False)
        e, g = _compile(expr, None)[1].energy_and_grad(X)
        want = t.energy(X)
        assert e.shape == want.shape and e.dtype == dtype
        # The same operations but x**2 computed as x*x (and 1/x, x*x*x, 1/(x*x)) and logsumexp
        # of two as logaddexp: a few ulp of the intermediate values, the same infinities.
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(e, want, rtol=tol, atol=10 * tol, equal_nan=True, msg=expr)
        assert torch.equal(g.isnan(), t.grad(X).isnan()), expr


def test_gradient_of_an_integer_or_float32_batch():
    t = formula_target("x**2 * y + r")
    g32 = t.grad(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32, torch.tensor([[4.0 + 1 / 5**0.5, 1.0 + 2 / 5**0.5],
                                                  [0.0, 0.0]]))
    gi = t.grad(torch.tensor([[1, 2]]))
    assert gi.dtype == torch.get_default_dtype()


def test_generated_formulas_gradient_equals_autograd():
    X = points(60, seed=1)
    stats = {"examples": 0, "finite gradients compared": 0}

    @FUZZ
    @given(TREES)
    def run(tree: tuple) -> None:
        text = render(tree)[0]
        t = formula_target(text, params=PARAMS, check=False)
        assert_same_gradient(text, X, PARAMS)
        stats["examples"] += 1
        stats["finite gradients compared"] += int(torch.isfinite(t.grad(X)).sum())

    run()
    print(f"generated formulas: {stats}")
    assert stats["examples"] >= 100


# Same seed, same random numbers: the fused closed-form run and the autograd reference
# agree to rounding (see tests/test_fused.py for why 1e-10 holds over these steps).
@pytest.mark.parametrize("sampler", ["sgld", "mala", "hmc"])
@pytest.mark.parametrize("expr", ["-logsumexp(-((x - 2)**2 + y**2) / 2, -((x + 2)**2 + y**2) / 2)",
                                  "(r - 2)**2 / 0.1 + 0.1*abs(x) + 0.5*relu(y)"])
def test_sampling_with_the_compiled_gradient_equals_autograd(expr, sampler):
    t = formula_target(expr)
    auto = dataclasses.replace(t, grad=None)
    cfg = SampleConfig(steps=150, chains=40, dtype="float64", keep_paths=5, seed=3,
                       step_size=2e-3, sampler=sampler, n_leapfrog=3)
    a, b = sample(t, cfg), sample(auto, cfg)
    assert a.n_diverged == b.n_diverged == 0
    for field in ("x", "positions", "paths", "mean_energy"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=1e-10)
    if sampler != "sgld":
        assert abs(a.acceptance - b.acceptance) < 1e-12


def test_compile_formula_energy_is_unchanged_for_autograd():
    # The value path still differentiates under autograd (the Hessian of adapt.py uses it).
    e = compile_formula("r + theta")
    X = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(e(X).sum(), X)
    assert torch.equal(g, torch.zeros(1, 2, dtype=torch.float64))
