"""The MLP's input gradient by hand, checked against autograd (float64, to rounding)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ebmcore.box import Box
from ebmcore.ebm.data import make_dataset
from ebmcore.ebm.input_grad import (
    FAST_ROWS,
    energy_and_input_grad,
    fast_linear,
    input_grad_fn,
    mlp_energy_and_grad,
)
from ebmcore.ebm.models import ACTIVATIONS, MLPEnergy, ModelConfig
from ebmcore.ebm.negatives import langevin
from ebmcore.ebm.training import TrainConfig, Trainer
from ebmcore.energies import energy_and_grad
from ebmcore.sampling.kernels import init_state, mala_step, noise_std, sgld_update

BOX = (-3.0, 2.0, -1.0, 4.0)
# float64 rounding of a few hundred products of O(1..10) terms is ~1e-14; 1e-10 leaves room
# and still fails for any wrong factor (a missing 1/scale or derivative is an O(1) error)
TOL = 1e-10


def _model(activation: str, depth: int, gain: float = 4.0) -> MLPEnergy:
    torch.manual_seed(1)
    m = MLPEnergy(ModelConfig(width=32, depth=depth, activation=activation), BOX).double()
    with torch.no_grad():  # large pre-activations reach softplus's linear piece, ELU's both
        for lin in m.net[:-1:2]:
            lin.weight.mul_(gain)
    return m


def _points(n: int = 400) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.randn(n, 2, generator=g, dtype=torch.float64) * 4.0


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("depth", [1, 3])
def test_closed_form_matches_autograd(activation: str, depth: int) -> None:
    m, x = _model(activation, depth), _points()
    e_ref, g_ref = energy_and_grad(m, x)
    e, g = mlp_energy_and_grad(m, x)
    assert g_ref.abs().max() > 0.1  # a gradient worth checking
    torch.testing.assert_close(e, e_ref, rtol=TOL, atol=TOL)
    torch.testing.assert_close(g, g_ref, rtol=TOL, atol=TOL)


@pytest.mark.skipif(fast_linear is None, reason="this torch has no oneDNN linear kernel")
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_float32_onednn_products_match_autograd(activation: str) -> None:
    # float32 batches of FAST_ROWS or more take oneDNN's product for the width x width
    # layers; against float64 autograd they differ by float32 rounding only: ~6e-8 relative
    # per operation, summed over 32 terms and three layers, below 1e-5 of the largest value.
    # A transposed or missing factor is an O(1) error.
    m = _model(activation, 3, gain=2.0).float()
    x = _points(2 * FAST_ROWS)
    fn = input_grad_fn(m)
    assert fn._fast
    e, g = fn(x.float())
    e_ref, g_ref = energy_and_grad(_model(activation, 3, gain=2.0), x)
    for got, ref in ((e, e_ref), (g, g_ref), (fn.grad(x.float()), g_ref)):
        assert got.dtype == torch.float32
        err = (got.double() - ref).abs().max() / ref.abs().max()
        assert err < 1e-5, float(err)


def test_every_activation_has_a_closed_form() -> None:
    for activation in ACTIVATIONS:
        m = _model(activation, 2)
        mlp_energy_and_grad(m, _points(3))  # raises TypeError where no closed form applies


class _Quadratic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([1.5, 0.5], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.a * x**2).sum(1)


def test_other_modules_fall_back_to_autograd() -> None:
    m, x = _Quadratic(), _points(10)
    e, g = energy_and_input_grad(m, x)
    torch.testing.assert_close(g, m.a.detach() * x, rtol=TOL, atol=TOL)
    torch.testing.assert_close(e, m(x).detach(), rtol=TOL, atol=TOL)
    with pytest.raises(TypeError):
        mlp_energy_and_grad(m, x)


def _reference(m, x, gen, steps, eps, kernel, box, boundary="reflect", temperature=1.0):
    """The chains as before the closed form: autograd, the kernels' own MALA step, the
    shared SGLD update and the box's own wall rules (torch operations throughout)."""
    box = Box.of(box)
    if kernel == "mala":
        def boxed(z):
            e = m(z)
            return torch.where(box.contains(z), e, torch.full_like(e, math.inf))
        state = init_state(boxed, x)
        for _ in range(steps):
            state, _ = mala_step(boxed, state, gen, step_size=eps, temperature=temperature)
        return state.x
    sigma = noise_std(eps, temperature)
    xi = torch.randn((steps, *x.shape), generator=gen, dtype=x.dtype) if sigma > 0 else None
    for k in range(steps):
        _, g = energy_and_grad(m, x)
        x = sgld_update(x, g, eps, sigma, None if xi is None else xi[k])
        x = box.clamp(x) if boundary == "clamp" else box.reflect(x)
    return x


# (kernel, boundary, temperature): every wall rule, and SGLD without noise (descent)
CHAINS = [("sgld", "reflect", 1.0), ("sgld", "clamp", 1.0), ("sgld", "reflect", 0.0),
          ("mala", "reflect", 1.0), ("mala", "reflect", 0.5)]


@pytest.mark.parametrize(("kernel", "boundary", "temperature"), CHAINS)
def test_chains_match_the_autograd_reference(kernel: str, boundary: str,
                                             temperature: float) -> None:
    m = _model("silu", 2, gain=1.0)
    # a few starts outside the box: MALA must move them in (E = inf there), SGLD fold them
    x0 = Box.of(BOX).uniform(300, torch.Generator().manual_seed(3), dtype=torch.float64)
    x0[:5] += 6.0
    runs = []
    for fn in (langevin, _reference):
        gen = torch.Generator().manual_seed(4)
        if fn is langevin:
            runs.append(langevin(m, x0, gen, steps=30, step_size=0.05,
                                 temperature=temperature, box=BOX, boundary=boundary,
                                 kernel=kernel))
        else:
            runs.append(_reference(m, x0, gen, 30, 0.05, kernel, BOX, boundary, temperature))
    assert (runs[0] - x0).abs().max() > 0.1  # the chains moved
    torch.testing.assert_close(runs[0], runs[1], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("kernel", ["sgld", "mala"])
def test_float32_chains_match_the_reference(kernel: str) -> None:
    # training runs in float32: the compiled loops compute in float64 and store float32, the
    # reference in float32 throughout, so the two differ by float32 rounding (~1e-7 per step,
    # 30 steps of a contraction); a MALA decision at the edge could flip one chain, which
    # then differs by O(eps): compare the bulk
    m = _model("silu", 2, gain=1.0).float()
    x0 = Box.of(BOX).uniform(300, torch.Generator().manual_seed(3))
    a = langevin(m, x0, torch.Generator().manual_seed(4), steps=30, step_size=0.05,
                 temperature=1.0, box=BOX, kernel=kernel)
    b = _reference(m, x0, torch.Generator().manual_seed(4), 30, 0.05, kernel, BOX)
    assert a.dtype == torch.float32
    close = ((a - b).abs().amax(1) < 1e-4).float().mean()
    assert close >= 0.99, float(close)
    assert (a - x0).abs().max() > 0.1


class _ViaAutograd(nn.Module):
    """The same MLP behind a wrapper, so that its chains take the autograd path."""

    def __init__(self, inner: MLPEnergy) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.parametrize("method", ["short-run", "persistent", "replay"])
def test_training_losses_match_autograd(method: str) -> None:
    data = make_dataset("mixture", 500, 100, seed=0)
    cfg = TrainConfig(method=method, iters=15, eval_every=0, steps=10, batch_size=64)
    fast = Trainer(data, cfg)
    model = _ViaAutograd(MLPEnergy(fast.model.config, fast.model.box))
    model.inner.load_state_dict(fast.model.state_dict())
    slow = Trainer(data, cfg, model=model)
    with pytest.raises(TypeError):  # the wrapped model really takes the autograd path
        mlp_energy_and_grad(slow.model, data.train[:2])
    a = [e.loss for e in fast.run()]
    b = [e.loss for e in slow.run()]
    # float32: the two gradients differ by rounding (~1e-7 relative), which 15 iterations of
    # chains and Adam carry to ~1e-5 in the loss; a wrong gradient moves it by ~1e-1
    assert max(abs(u - v) for u, v in zip(a, b, strict=True)) < 1e-4
    assert max(abs(u - a[0]) for u in a) > 1e-3  # the loss changed: the check means something
