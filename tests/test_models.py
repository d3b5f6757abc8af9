"""MLPEnergy: shapes, dtypes, gradients, parameter count, persistence, validation."""

from __future__ import annotations

import pytest
import torch

from ebmcore.ebm.models import ACTIVATIONS, MLPEnergy, ModelConfig
from ebmcore.energies import ValidationError, energy_and_grad

BOX = (-4.0, 4.0, -2.0, 6.0)


def points(n: int = 7, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)


def test_defaults():
    assert ModelConfig() == ModelConfig(width=128, depth=2, activation="silu")


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("depth", [1, 3])
def test_shape_and_dtype(activation, depth):
    torch.manual_seed(0)
    model = MLPEnergy(ModelConfig(width=16, depth=depth, activation=activation), box=BOX)
    e = model(points())
    assert e.shape == (7,) and e.dtype == torch.float32
    model64 = model.double()
    e64 = model64(points(dtype=torch.float64))
    assert e64.shape == (7,) and e64.dtype == torch.float64
    # Same weights, so float32 and float64 agree to float32 rounding: outputs are O(1)
    # and pass through ~3 layers of width 16, so a few ulps of 1.2e-7 each; 1e-5 is ample.
    torch.testing.assert_close(e64.float(), e, atol=1e-5, rtol=1e-5)
    assert model(torch.zeros(0, 2, dtype=torch.float64)).shape == (0,)


def test_output_follows_input_dtype():
    model = MLPEnergy(ModelConfig(width=8))  # float32 weights
    assert model(points(dtype=torch.float64)).dtype == torch.float64


def test_gradient_wrt_inputs_matches_finite_differences():
    torch.manual_seed(1)
    model = MLPEnergy(ModelConfig(width=32, activation="softplus"), box=BOX).double()
    x = points(5, torch.float64)
    e, g = energy_and_grad(model, x)
    assert e.shape == (5,) and g.shape == (5, 2)
    # Central differences with h = 1e-5 in float64: truncation error h^2 |E'''| / 6 ~ 1e-11
    # (E''' is O(1) for O(1) weights after normalisation), rounding ~ 1e-16 / h = 1e-11.
    h = 1e-5
    for d in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[d] = h
        with torch.no_grad():
            fd = (model(x + step) - model(x - step)) / (2 * h)
        torch.testing.assert_close(g[:, d], fd, atol=1e-8, rtol=1e-7)
    # Parameters still get gradients from a loss (training works).
    model(x).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_parameter_count_matches_formula():
    model = MLPEnergy(ModelConfig(width=128, depth=2))
    w = 128
    # 2->w (2w + w), w->w (w*w + w), w->1 (w + 1)
    expected = (2 * w + w) + (w * w + w) + (w + 1)
    assert expected == 17_025
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.config.num_parameters == expected
    for width, depth in [(1, 1), (5, 4), (64, 8)]:
        m = MLPEnergy(ModelConfig(width=width, depth=depth))
        assert sum(p.numel() for p in m.parameters()) == m.config.num_parameters


def test_box_normalisation():
    model = MLPEnergy(ModelConfig(width=8), box=BOX)
    torch.testing.assert_close(model.centre, torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(model.scale, torch.tensor([4.0, 4.0]))
    plain = MLPEnergy(ModelConfig(width=8))
    plain.net.load_state_dict(model.net.state_dict())
    x = points()
    # The normalised model at x equals the plain one at (x - centre) / scale.
    torch.testing.assert_close(model(x), plain((x - model.centre) / model.scale))
    assert not any(b.requires_grad for b in model.buffers())


def test_state_dict_round_trip():
    torch.manual_seed(2)
    config = ModelConfig(width=24, depth=3, activation="gelu")
    model = MLPEnergy(config, box=BOX)
    state = model.state_dict()
    assert set(state) >= {"centre", "scale"}  # the normalisation travels with the weights
    torch.manual_seed(3)  # different initial weights, and no box: all must be overwritten
    clone = MLPEnergy(config)
    clone.load_state_dict(state)
    x = points(50)
    assert torch.equal(clone(x), model(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 0},
        {"width": 1025},
        {"width": 2.5},
        {"width": True},
        {"depth": 0},
        {"depth": 9},
        {"depth": "2"},
        {"activation": "relu6"},
    ],
)
def test_invalid_configs_raise(kwargs):
    with pytest.raises(ValidationError):
        ModelConfig(**kwargs)


def test_invalid_box_and_input_raise():
    for box in [(1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, float("nan")), (0.0, 1.0), "abcd"]:
        with pytest.raises(ValidationError):
            MLPEnergy(ModelConfig(width=4), box=box)
    with pytest.raises(ValidationError):
        MLPEnergy(ModelConfig(width=4))(torch.zeros(3, 3))
    with pytest.raises(ValidationError):
        MLPEnergy({"width": 4})
