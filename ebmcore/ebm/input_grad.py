"""The energy and its input gradient ``grad_x E(x)`` of an MLP energy in one pass, without autograd.

Langevin chains need ``grad_x E`` at every step while the weights stay fixed.  For an
MLP of Linear layers and elementwise activations the chain rule is a few matrix
products: ``z_l = h_{l-1} W_l^T + b_l``, ``h_l = f(z_l)``, ``E = h_L w^T + b``, so
``dE/dz_L = f'(z_L) w`` and ``dE/dz_{l-1} = f'(z_{l-1}) (dE/dz_l W_l)``.  Running that by
hand skips building and walking a graph (most of the cost at these sizes).  Each layer's
backward is the activation's own fused backward kernel (the one autograd calls), and the
input normalisation is folded into the first layer once per run of chains, so a step is
the four matrix products plus one kernel per activation and its backward.  The width x
width products of float32 batches go through oneDNN's linear kernel where torch has it:
on this project's CPUs it takes half the time of the default BLAS product (47 vs 85 us
for 256 x 128 x 128, one thread; measured by ``python -m ebmcore bench --only training``).

:func:`input_grad_fn` resolves an energy once per run of chains into an :class:`InputGrad`:
by hand for :class:`~ebmcore.ebm.models.MLPEnergy` with any activation of
:data:`~ebmcore.ebm.models.ACTIVATIONS`, through autograd for any other energy module.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ebmcore.ebm.models import MLPEnergy
from ebmcore.energies import energy_and_grad

__all__ = ["DERIVATIVES", "FAST_ROWS", "InputGrad", "energy_and_input_grad", "fast_linear",
           "input_grad_fn", "mlp_energy_and_grad"]

_aten = torch.ops.aten
Forward = Callable[[Tensor], Tensor]
# (dE/dh, z, h) -> dE/dz; h is None for the last layer when only the gradient is wanted
Backward = Callable[[Tensor, Tensor, Tensor | None], Tensor]

DERIVATIVES: dict[type[nn.Module], tuple[Forward, Backward]] = {
    nn.SiLU: (nn.functional.silu, lambda g, z, h: _aten.silu_backward(g, z)),
    nn.Softplus: (nn.functional.softplus,
                  lambda g, z, h: _aten.softplus_backward(g, z, 1.0, 20.0)),
    nn.Tanh: (torch.tanh, lambda g, z, h: _aten.tanh_backward(g, h)),
    nn.GELU: (nn.functional.gelu, lambda g, z, h: _aten.gelu_backward(g, z)),
    nn.ELU: (nn.functional.elu,
             lambda g, z, h: _aten.elu_backward(g, 1.0, 1, 1.0, False, z)),
}
"""Activation class -> ``(f, (dE/dh, z, h) -> dE/dz)`` at the module's default settings."""

FAST_ROWS = 128  # oneDNN from this many rows (at 32 rows the BLAS product is faster: 13 vs 17 us)


def _onednn() -> Callable[[Tensor, Tensor, Tensor | None], Tensor] | None:
    """``(a, w, b) -> a w^T + b`` by oneDNN for float32, or None where torch lacks it."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        if not torch.backends.mkldnn.is_available():
            return None
        a, w = torch.ones(FAST_ROWS, 3), torch.ones(2, 3)
        if not torch.equal(op(a, w, None, "none", [], ""), torch.full((FAST_ROWS, 2), 3.0)):
            return None
    except (AttributeError, RuntimeError):
        return None
    return lambda a, w, b: op(a, w, b, "none", [], "")


fast_linear = _onednn()
"""``(a (N, k), w (m, k), b (m,) or None) -> a w^T + b`` in float32 by oneDNN; None if absent."""


def _closed_form(model: nn.Module) -> list[tuple[nn.Linear, tuple[Forward, Backward]]] | None:
    """The (layer, activation) pairs of a plain MLPEnergy, or None where no closed form applies."""
    if not isinstance(model, MLPEnergy):
        return None
    mods = list(model.net)
    pairs = []
    for lin, act in zip(mods[:-1:2], mods[1::2], strict=True):
        fns = DERIVATIVES.get(type(act))
        if not isinstance(lin, nn.Linear) or fns is None or not _default_args(act):
            return None
        pairs.append((lin, fns))
    return pairs if isinstance(mods[-1], nn.Linear) else None


def _default_args(act: nn.Module) -> bool:
    # the kernels above are those of the modules' default settings
    if isinstance(act, nn.Softplus):
        return act.beta == 1.0 and act.threshold == 20.0
    if isinstance(act, nn.GELU):
        return act.approximate == "none"
    if isinstance(act, nn.ELU):
        return act.alpha == 1.0
    return True


class InputGrad:
    """``x -> (E (N,), grad_x E (N, 2))`` of one energy, detached; ``grad(x)`` alone is cheaper.

    Built by :func:`input_grad_fn`.  This base class goes through autograd.
    """

    graph_free = False  # True: needs no autograd graph (callers may run it under no_grad)

    def __init__(self, energy: Callable[[Tensor], Tensor]) -> None:
        self.energy = energy

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return energy_and_grad(self.energy, x)

    def grad(self, x: Tensor) -> Tensor:
        """``grad_x E (N, 2)`` only (SGLD steps need no energy)."""
        return self(x)[1]


class _ByHand(InputGrad):
    """The closed form of one MLP at the weights it had when built."""

    graph_free = True

    @torch.no_grad()
    def __init__(self, model: MLPEnergy,
                 pairs: list[tuple[nn.Linear, tuple[Forward, Backward]]]) -> None:
        super().__init__(model)
        # (x - c) / s then W1: the same affine map as x W1'^T + b1' with W1' = W1 / s
        first = pairs[0][0]
        w1 = first.weight / model.scale
        self._w1t = w1.t()
        self._b1 = first.bias - w1 @ model.centre
        self._w1 = w1.t().contiguous()  # dE/dx = dE/dz_1 W1': linear() from (2, w) is fastest
        self._layers = [(lin.weight.t().contiguous(), lin.bias, lin.weight.contiguous())
                        for lin, _ in pairs[1:]]
        self._acts = [fns for _, fns in pairs]
        out: nn.Linear = model.net[-1]
        self._w_out, self._b_out = out.weight[0].detach().clone(), out.bias.detach().clone()
        self._dtype = model.centre.dtype
        self._fast = fast_linear is not None and self._dtype == torch.float32
        self._seed: Tensor | None = None  # dE/dh_L = w on every row, expanded contiguously

    def _forward(self, x: Tensor, last: bool) -> tuple[list[Tensor], list[Tensor]]:
        """Pre-activations and activations; the last activation only when ``last``."""
        xs = x if x.dtype == self._dtype else x.to(self._dtype)
        zs = [torch.addmm(self._b1, xs, self._w1t)]
        hs: list[Tensor] = []
        fast = self._fast and x.shape[0] >= FAST_ROWS
        for wt, b, w in self._layers:
            hs.append(self._acts[len(hs)][0](zs[-1]))
            zs.append(fast_linear(hs[-1], w, b) if fast else torch.addmm(b, hs[-1], wt))
        if last or self._acts[-1][0] is torch.tanh:  # tanh's backward takes tanh(z)
            hs.append(self._acts[-1][0](zs[-1]))
        return zs, hs

    def _backward(self, zs: list[Tensor], hs: list[Tensor]) -> Tensor:
        n = zs[-1].shape[0]
        if self._seed is None or self._seed.shape[0] != n:
            self._seed = self._w_out.expand(n, -1).contiguous()
        g = self._acts[-1][1](self._seed, zs[-1], hs[-1] if len(hs) == len(zs) else None)
        fast = self._fast and n >= FAST_ROWS
        for i in range(len(self._layers) - 1, -1, -1):
            wt, _, w = self._layers[i]
            g = self._acts[i][1](fast_linear(g, wt, None) if fast else torch.mm(g, w), zs[i],
                                 hs[i])
        return nn.functional.linear(g, self._w1)

    # no_grad only where grad mode is on: the chains call these under one no_grad for all
    # steps, and entering it costs as much as an activation kernel at these sizes
    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self(x)
        zs, hs = self._forward(x, last=True)
        energy = torch.addmv(self._b_out, hs[-1], self._w_out)
        g = self._backward(zs, hs)
        if x.dtype != self._dtype:
            return energy.to(x.dtype), g.to(x.dtype)
        return energy, g

    def grad(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self.grad(x)
        g = self._backward(*self._forward(x, last=False))
        return g if x.dtype == self._dtype else g.to(x.dtype)


def mlp_energy_and_grad(model: MLPEnergy, x: Tensor) -> tuple[Tensor, Tensor]:
    """Energies ``(N,)`` and ``grad_x E (N, 2)`` of ``model`` at ``x (N, 2)``, by hand.

    Agrees with autograd through :meth:`MLPEnergy.forward` to rounding; results come back
    in the dtype of ``x``.  Raises ``TypeError`` for a model without a closed form.
    """
    pairs = _closed_form(model)
    if pairs is None:
        raise TypeError(f"no closed-form input gradient for {type(model).__name__}")
    return _ByHand(model, pairs)(x)


def input_grad_fn(energy: Callable[[Tensor], Tensor]) -> InputGrad:
    """``x -> (E (N,), grad_x E (N, 2))``, detached: by hand for an MLP, else autograd.

    The MLP's weights are read here: resolve it again after they change (once per run
    of chains).
    """
    pairs = _closed_form(energy)
    if pairs is not None:
        return _ByHand(energy, pairs)
    return InputGrad(energy)


def energy_and_input_grad(energy: Callable[[Tensor], Tensor], x: Tensor
                          ) -> tuple[Tensor, Tensor]:
    """Energies ``(N,)`` and ``grad_x E (N, 2)``, detached: by hand for an MLP, else autograd."""
    return input_grad_fn(energy)(x)
