"""The energy and its input gradient ``grad_x E(x)`` of an MLP energy in one pass, without autograd.

Langevin chains need ``grad_x E`` at every step while the weights stay fixed.  For an
MLP of Linear layers and elementwise activations the chain rule is a few matrix
products: ``z_l = h_{l-1} W_l^T + b_l``, ``h_l = f(z_l)``, ``E = h_L w^T + b``, so
``dE/dh_L = w`` and ``dE/dh_{l-1} = (dE/dh_l * f'(z_l)) W_l``.  Running that by hand
skips building and walking a graph (most of the cost at these sizes) and computes
``f`` and ``f'`` from one shared intermediate (``sigmoid(z)`` for SiLU).

:func:`mlp_energy_and_grad` handles :class:`~ebmcore.ebm.models.MLPEnergy` with any
activation of :data:`~ebmcore.ebm.models.ACTIVATIONS`; :func:`energy_and_input_grad`
falls back to autograd for any other energy module.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ebmcore.ebm.models import MLPEnergy
from ebmcore.energies import energy_and_grad

__all__ = ["DERIVATIVES", "energy_and_input_grad", "input_grad_fn", "mlp_energy_and_grad"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _silu(z: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(z)
    h = z * s
    return h, torch.addcmul(s + h, h, s, value=-1.0)  # silu' = s + zs (1 - s)


def _softplus(z: Tensor) -> tuple[Tensor, Tensor]:
    # nn.Softplus (beta 1) is linear above threshold 20; its derivative there is 1
    return nn.functional.softplus(z), torch.where(z > 20.0, 1.0, torch.sigmoid(z))


def _tanh(z: Tensor) -> tuple[Tensor, Tensor]:
    h = torch.tanh(z)
    return h, 1.0 - h * h


def _gelu(z: Tensor) -> tuple[Tensor, Tensor]:
    cdf = 0.5 * (1.0 + torch.erf(z * _INV_SQRT2))
    return z * cdf, cdf + z * torch.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _elu(z: Tensor) -> tuple[Tensor, Tensor]:
    e = torch.expm1(torch.clamp(z, max=0.0))  # alpha = 1: f' = 1 above 0, exp(z) below
    return torch.where(z > 0, z, e), torch.where(z > 0, 1.0, e + 1.0)


DERIVATIVES: dict[type[nn.Module], Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    nn.SiLU: _silu,
    nn.Softplus: _softplus,
    nn.Tanh: _tanh,
    nn.GELU: _gelu,
    nn.ELU: _elu,
}
"""Activation class -> ``z -> (f(z), f'(z))``; one entry per activation of ``ACTIVATIONS``."""


def _closed_form(model: nn.Module) -> list[tuple[nn.Linear, Callable]] | None:
    """The (layer, activation) pairs of a plain MLPEnergy, or None where no closed form applies."""
    if not isinstance(model, MLPEnergy):
        return None
    mods = list(model.net)
    pairs = []
    for lin, act in zip(mods[:-1:2], mods[1::2], strict=True):
        fn = DERIVATIVES.get(type(act))
        if not isinstance(lin, nn.Linear) or fn is None or not _default_args(act):
            return None
        pairs.append((lin, fn))
    return pairs if isinstance(mods[-1], nn.Linear) else None


def _default_args(act: nn.Module) -> bool:
    # the closed forms above are those of the modules' default settings
    if isinstance(act, nn.Softplus):
        return act.beta == 1.0 and act.threshold == 20.0
    if isinstance(act, nn.GELU):
        return act.approximate == "none"
    if isinstance(act, nn.ELU):
        return act.alpha == 1.0
    return True


def mlp_energy_and_grad(model: MLPEnergy, x: Tensor) -> tuple[Tensor, Tensor]:
    """Energies ``(N,)`` and ``grad_x E (N, 2)`` of ``model`` at ``x (N, 2)``, by hand.

    Agrees with autograd through :meth:`MLPEnergy.forward` to rounding; results come back
    in the dtype of ``x``.  Raises ``TypeError`` for a model without a closed form.
    """
    pairs = _closed_form(model)
    if pairs is None:
        raise TypeError(f"no closed-form input gradient for {type(model).__name__}")
    return _by_hand(model, pairs)(x)


def _by_hand(model: MLPEnergy, pairs: list[tuple[nn.Linear, Callable]]
             ) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    out: nn.Linear = model.net[-1]

    @torch.no_grad()
    def fn(x: Tensor) -> tuple[Tensor, Tensor]:
        h = (x.to(model.centre.dtype) - model.centre) / model.scale
        slopes = []
        for lin, act in pairs:
            h, d = act(torch.addmm(lin.bias, h, lin.weight.t()))
            slopes.append(d)
        energy = torch.addmv(out.bias, h, out.weight[0])
        grad = slopes[-1].mul_(out.weight)  # dE/dz_L: (N, w)
        for (lin, _), d in zip(reversed(pairs[1:]), reversed(slopes[:-1]), strict=True):
            grad = torch.mm(grad, lin.weight).mul_(d)
        # (N, w) x (w, 2) is several times faster from a transposed (2, w) copy
        first = pairs[0][0].weight.t().contiguous().t()
        grad = torch.mm(grad, first).div_(model.scale)
        return energy.to(x.dtype), grad.to(x.dtype)

    return fn


def input_grad_fn(energy: Callable[[Tensor], Tensor]
                  ) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """``x -> (E (N,), grad_x E (N, 2))``, detached: by hand for an MLP, else autograd.

    Resolve it once per run of chains (the weights may change between runs, the layers not).
    """
    pairs = _closed_form(energy)
    if pairs is not None:
        return _by_hand(energy, pairs)
    return lambda x: energy_and_grad(energy, x)


def energy_and_input_grad(energy: Callable[[Tensor], Tensor], x: Tensor
                          ) -> tuple[Tensor, Tensor]:
    """Energies ``(N,)`` and ``grad_x E (N, 2)``, detached: by hand for an MLP, else autograd."""
    return input_grad_fn(energy)(x)
