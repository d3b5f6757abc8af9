"""The in-place SGLD loop: same law (same draws) as ``samplers.sgld_step``, exact kernels."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from ebmcore.energies import ValidationError
from ebmcore.exact.density import sgld_stationary_cov
from ebmcore.sampling.fast import (
    banana_grad,
    gaussian_grad,
    inplace_grad,
    mixture_grad,
    sgld_loop,
    wrap_grad,
)
from ebmcore.sampling.kernels import init_state, sgld_step
from ebmcore.targets.registry import make_target


def _step_loop(target, x0, steps, eps, temperature, seed):
    gen = torch.Generator().manual_seed(seed)
    st = init_state(target.energy, x0.clone(), target.grad)
    for _ in range(steps):
        st, _ = sgld_step(target.energy, st, gen, step_size=eps, temperature=temperature,
                          grad=target.grad)
    return st.x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("name", "eps"), [("gaussian", 0.3), ("banana", 0.002), ("double_well", 0.01)])
def test_same_positions_as_sgld_step(name, eps, dtype):
    # Both consume one randn(N, 2) per step from the same generator, so they follow the same
    # path; they differ only by rounding (x - eps g vs x + (-eps) g, fused or not).  A few ulp
    # of max|x| per step, accumulated over the steps, bounds the difference (the maps are
    # contracting or nearly so at these eps).
    target, steps = make_target(name), 100
    x0 = target.sample(500, torch.Generator().manual_seed(0)).to(dtype)
    ref = _step_loop(target, x0, steps, eps, 1.0, seed=5)
    x = x0.clone()
    out = sgld_loop(x, inplace_grad(target), steps, eps, 1.0, torch.Generator().manual_seed(5))
    assert out is x  # advanced in place
    bound = steps * 4 * torch.finfo(dtype).eps * float(ref.abs().max())
    assert float((x - ref).abs().max()) <= bound


def test_paths_out_records_every_step():
    target = make_target("gaussian")
    x0 = target.sample(20, torch.Generator().manual_seed(1))
    paths = torch.empty(3, 7, 2)
    x = sgld_loop(x0.clone(), inplace_grad(target), 7, 0.3, 1.0, torch.Generator().manual_seed(2),
                  paths_out=paths)
    torch.testing.assert_close(paths[:, -1], x[:3].float())
    y = x0.clone()
    gen = torch.Generator().manual_seed(2)
    for i in range(7):  # one step at a time from the same stream walks the same path
        sgld_loop(y, inplace_grad(target), 1, 0.3, 1.0, gen)
        torch.testing.assert_close(paths[:, i], y[:3].float())
    with pytest.raises(ValidationError, match="paths_out"):
        sgld_loop(x0.clone(), inplace_grad(target), 7, 0.3, 1.0, gen, paths_out=paths[:, :3])


def test_zero_temperature_is_gradient_descent_and_draws_nothing():
    target = make_target("gaussian")
    x0 = target.sample(50, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    x = sgld_loop(x0.clone(), inplace_grad(target), 100, 0.3, 0.0, gen)
    assert torch.equal(gen.get_state(), state)
    torch.testing.assert_close(x, _step_loop(target, x0, 100, 0.3, 0.0, seed=3),
                               rtol=0, atol=1e-12)
    # The slowest direction contracts by (1 - 0.3 / 3) = 0.9 per step: 0.9^100 = 2.7e-5 of
    # the initial spread (< 10 for these samples) is left, < 3e-4 from the mode (0, 0).
    assert float(x.abs().max()) < 3e-4


def test_stationary_cov_matches_the_exact_ula_covariance():
    # Start from exact samples of N(0, S) with S = [[2, 1], [1, 2]]: eps = 0.3 moves the law to
    # the ULA covariance S_eps = (A - eps A^2 / 2)^-1 = [[2.167, 0.991], ...]; the excess
    # decays like 0.9^(2 * steps) = 1e-27 after 300 steps.  Sample covariance standard
    # error with n = 96,000 Gaussian draws: sqrt((S_ii S_jj + S_ij^2) / n) <= 0.0099; 4 sigma
    # = 0.04, well below the bias 0.167 that must show.  Blocks of 16,000 chains keep each
    # operation single-threaded (fast on a shared machine); blocks are independent chains.
    target, block, blocks = make_target("gaussian"), 16_000, 6
    gen, kernel = torch.Generator().manual_seed(4), inplace_grad(target)
    xs = []
    for i in range(blocks):
        x = target.sample(block, torch.Generator().manual_seed(100 + i))
        xs.append(sgld_loop(x, kernel, 300, 0.3, 1.0, gen))
    x, n = torch.cat(xs), block * blocks
    s_eps = sgld_stationary_cov(torch.tensor(target.cov), 0.3)
    cov = torch.cov(x.T)
    se = torch.sqrt((s_eps.diagonal()[:, None] * s_eps.diagonal()[None, :] + s_eps**2) / n)
    assert bool(((cov - s_eps).abs() < 4 * se).all())
    assert float(cov[0, 0]) - 2.0 > 4 * float(se[0, 0])  # the SGLD bias is visible


@pytest.mark.parametrize("seed", range(5))
def test_inplace_kernels_equal_closed_form(seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(6, generator=g, dtype=torch.float64).tolist()
    banana = make_target("banana", x_std=0.3 + 2 * u[0], bend=-6 + 12 * u[1], y_std=0.1 + u[2])
    c = 0.5 + 2 * u[3]
    gauss = make_target("gaussian", mean=(u[4] - 0.5, 3 * u[5]), cov=(c, 0.4, 0.4, 1.0))
    mix = make_target("mixture", k=1 + seed * 7, radius=8 * u[0], std=0.05 + 2 * u[1])
    for target, kernel in ((banana, banana_grad(**banana.params)),
                           (gauss, gaussian_grad(**gauss.params)),
                           (mix, mixture_grad(**mix.params))):
        x = 5 * torch.randn(300, 2, generator=g, dtype=torch.float64)
        torch.testing.assert_close(kernel(x, torch.empty_like(x)), target.grad(x),
                                   rtol=1e-12, atol=1e-12)
        assert inplace_grad(target).__qualname__.startswith(kernel.__qualname__.split(".")[0])


def test_inplace_grad_falls_back_safely():
    gauss = make_target("gaussian")
    assert inplace_grad(dataclasses.replace(gauss, grad=None)) is None
    # Parameters that do not describe this gradient: the specialised kernel must not be used.
    lying = dataclasses.replace(gauss, params={"mean": (1.0, 1.0), "cov": (1.0, 0.0, 0.0, 1.0)})
    x = torch.randn(10, 2, dtype=torch.float64)
    torch.testing.assert_close(inplace_grad(lying)(x, torch.empty_like(x)), gauss.grad(x))
    odd = dataclasses.replace(gauss, params={"unexpected": 1.0})
    torch.testing.assert_close(inplace_grad(odd)(x, torch.empty_like(x)), gauss.grad(x))
    torch.testing.assert_close(wrap_grad(gauss.grad)(x, torch.empty_like(x)), gauss.grad(x))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_steps": -1}, "n_steps"), ({"step_size": 0.0}, "step size"),
     ({"step_size": math.nan}, "step size"), ({"temperature": -1.0}, "temperature")],
)
def test_bad_arguments_raise_validation_error(kwargs, match):
    args = {"n_steps": 1, "step_size": 0.1, "temperature": 1.0} | kwargs
    with pytest.raises(ValidationError, match=match):
        sgld_loop(torch.zeros(3, 2), wrap_grad(lambda x: x), generator=torch.Generator(), **args)
    with pytest.raises(ValidationError, match=r"\(N, 2\)"):
        sgld_loop(torch.zeros(3, 3), wrap_grad(lambda x: x), 1, 0.1, 1.0, torch.Generator())
