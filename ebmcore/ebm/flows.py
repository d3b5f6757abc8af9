"""Samplers ``q_phi`` built from dynamics with unit Jacobian, with their exact log density.

For any density ``q`` on an augmented space ``(x, v)``, Jensen's inequality gives

    log Z_theta >= E_q[-E(x) - K(v)] + H(q) - log Z_K,

where ``exp(-K(v)) / Z_K`` is a Gaussian on the auxiliary variables (its normaliser
``Z_K`` is known).  Dynamics embedding (Dai et al., NeurIPS 2019) makes ``H(q)``
computable: every map below is a *shear* -- one block of variables moves by a
function of the others -- so its Jacobian determinant is 1 and the density of
the state is carried along unchanged.

- :class:`LangevinFlow`: ``x_0 ~ q0``; for ``i = 1..T``: ``eta_i ~ N(0, sigma_i^2 I)``,
  ``v_i = -eps_i grad E(x_{i-1}) + eta_i`` and ``x_i = x_{i-1} + v_i``.  Then
  ``log q(x_T, v_1..v_T) = log q0(x_0) + sum_i log N(eta_i; 0, sigma_i^2 I)`` and
  ``K = sum_i lambda_i / 2 ||v_i||^2``.  Every step adds the entropy of fresh noise
  but also a penalty for ``v_i`` not looking like ``N(0, I / lambda_i)``, so with many
  steps the bound loosens.  One ``lambda_i`` per step is a valid augmented target too
  (a single ``lambda`` is the case of equal ones).
- :class:`HamiltonianFlow`: ``(x_0, v_0) ~ q0 x N(0, sigma_v^2 I)``; ``T`` leapfrog steps
  of ``H = E(x) + lambda / 2 ||v||^2`` with learnable step sizes.  No noise is added,
  so ``H(q) = H(q0) + H(v_0)`` however many steps, and ``K = lambda / 2 ||v_T||^2``.

Every positive parameter is stored as its log.  Gradients of ``grad E`` are kept
(``create_graph=True``) when the flow's parameters are being trained, so the
reparameterised samples carry gradients through the dynamics.  The flows work on
any energy on ``R^2``; :mod:`ebmcore.ebm.adversarial` hands them a model pulled back from
its box onto ``R^2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ebmcore.defaults import FLOW_DEFAULTS
from ebmcore.ebm.initial import _LOG_2PI, D, InitialDistribution, _log_normal
from ebmcore.energies import Energy, ValidationError
from ebmcore.sampling.kernels import sgld_update

__all__ = ["FLOWS", "FlowSample", "HamiltonianFlow", "LangevinFlow", "make_flow"]


@dataclass(frozen=True, eq=False)
class FlowSample:
    """``n`` draws of a flow with what the bound needs, per draw."""

    x: Tensor  # (n, 2) final positions x_T
    log_q: Tensor  # (n,) log density of the augmented final state under q
    kinetic: Tensor  # (n,) K(v) of the final auxiliary variables
    log_norm: Tensor  # () log of the normaliser of exp(-K), (k d / 2) log(2 pi / lambda)
    energy: Tensor  # (n,) E(x_T)

    @property
    def log_weights(self) -> Tensor:
        """``(n,)`` ``log p_aug(x, v) - log q(x, v) + log Z``: their mean is the bound."""
        return -self.energy - self.kinetic - self.log_q - self.log_norm


def _grad(energy: Energy, x: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
    """``E(x) (n,)`` and ``grad E(x) (n, 2)``; differentiable in ``x`` iff ``create_graph``."""
    with torch.enable_grad():
        if not create_graph or not x.requires_grad:
            x = x.detach().requires_grad_(True)
        e = energy(x)
        (g,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
    return (e, g) if create_graph else (e.detach(), g.detach())


class LangevinFlow(nn.Module):
    """``T`` Langevin steps ``v = -eps grad E + eta``, ``x += v`` from ``q0`` (see module doc).

    Args:
        q0: the initial distribution (its parameters are part of phi).
        steps: ``T >= 0``.
        step_size: initial ``eps_i`` for every step.
        noise: initial ``sigma_i``; ``None`` means ``sqrt(2 eps)``.
        lam: initial ``lambda_i``; ``None`` means ``1 / sigma_i^2`` (matches ``eta``).
    """

    kind = "langevin"

    def __init__(self, q0: InitialDistribution, steps: int, step_size: float = 0.01,
                 noise: float | None = None, lam: float | None = None) -> None:
        super().__init__()
        sigma = math.sqrt(2 * step_size) if noise is None else noise
        lam = 1.0 / sigma**2 if lam is None else lam
        self.q0, self.steps = q0, steps
        self.log_eps = nn.Parameter(torch.full((steps,), math.log(step_size)))
        self.log_sigma = nn.Parameter(torch.full((steps,), math.log(sigma)))
        self.log_lam = nn.Parameter(torch.full((steps,), math.log(lam)))

    def forward(self, energy: Energy, n: int, generator: torch.Generator,
                create_graph: bool = False) -> FlowSample:
        """Draw ``n`` final states; ``create_graph`` keeps gradients through ``grad E``.

        Without ``create_graph`` the result is for evaluation only: gradients do not
        flow through ``grad E``.  Consumes ``2 n`` normals for ``x_0``, then ``2 n T``.
        """
        x, log_q = self.q0.sample(n, generator)
        xi = torch.randn((self.steps, n, D), generator=generator, dtype=x.dtype)
        eps, sigma, lam = self.log_eps.exp(), self.log_sigma.exp(), self.log_lam.exp()
        kinetic = torch.zeros_like(log_q)
        for i in range(self.steps):
            _, g = _grad(energy, x, create_graph)
            v = sgld_update(0.0, g, eps[i], sigma[i], xi[i])  # the move alone: K needs it
            x = x + v
            kinetic = kinetic + 0.5 * lam[i] * (v**2).sum(1)
            log_q = log_q + _log_normal(xi[i]) - D * self.log_sigma[i]
        log_norm = 0.5 * D * (_LOG_2PI * self.steps - self.log_lam.sum())
        e = energy(x)
        return FlowSample(x, log_q, kinetic, log_norm, e)

    def entropy(self) -> Tensor | None:
        """Closed form ``H(q0) + sum_i H(N(0, sigma_i^2 I))``; ``None`` if ``H(q0)`` is not."""
        h0 = self.q0.entropy()
        if h0 is None:
            return None
        return h0 + 0.5 * D * self.steps * (1 + _LOG_2PI) + D * self.log_sigma.sum()


class HamiltonianFlow(nn.Module):
    """``T`` leapfrog steps of ``E(x) + lambda / 2 ||v||^2`` from ``q0 x N(0, sigma_v^2 I)``.

    Args:
        q0: the initial distribution of ``x``.
        steps: ``T >= 0``.
        step_size: initial leapfrog step ``eps_t`` for every step.
        lam: initial ``lambda``; the initial ``sigma_v`` is ``1 / sqrt(lambda)``.
    """

    kind = "hmc"

    def __init__(self, q0: InitialDistribution, steps: int, step_size: float = 0.05,
                 lam: float = 1.0) -> None:
        super().__init__()
        self.q0, self.steps = q0, steps
        self.log_eps = nn.Parameter(torch.full((steps,), math.log(step_size)))
        self.log_lam = nn.Parameter(torch.tensor(math.log(lam)))
        self.log_sigma_v = nn.Parameter(torch.tensor(-0.5 * math.log(lam)))

    def forward(self, energy: Energy, n: int, generator: torch.Generator,
                create_graph: bool = False) -> FlowSample:
        """Draw ``n`` final states; consumes ``2 n`` normals for ``x_0`` and ``2 n`` for ``v_0``."""
        x, log_q = self.q0.sample(n, generator)
        xi = torch.randn((n, D), generator=generator, dtype=x.dtype)
        v = self.log_sigma_v.exp() * xi
        log_q = log_q + _log_normal(xi) - D * self.log_sigma_v
        eps, lam = self.log_eps.exp(), self.log_lam.exp()
        e, g = _grad(energy, x, create_graph)
        for t in range(self.steps):
            v = v - 0.5 * eps[t] * g
            x = x + eps[t] * lam * v
            e, g = _grad(energy, x, create_graph)
            v = v - 0.5 * eps[t] * g
        log_norm = 0.5 * D * (_LOG_2PI - self.log_lam)
        return FlowSample(x, log_q, 0.5 * lam * (v**2).sum(1), log_norm, e)

    def entropy(self) -> Tensor | None:
        """Closed form ``H(q0) + H(N(0, sigma_v^2 I))``; ``None`` if ``H(q0)`` is not."""
        h0 = self.q0.entropy()
        if h0 is None:
            return None
        return h0 + 0.5 * D * (1 + _LOG_2PI) + D * self.log_sigma_v


FLOWS = {"langevin": LangevinFlow, "hmc": HamiltonianFlow}


def make_flow(kind: str, steps: int, step_size: float | None = None, *, components: int = 1,
              layers: int = 0, hidden: int = 32, std: float = 1.0
              ) -> LangevinFlow | HamiltonianFlow:
    """A flow of ``kind`` (a key of :data:`FLOWS`) with a fresh ``q0``.

    Raises:
        ValidationError: unknown kind, or steps / step size / layers out of range.
    """
    if kind not in FLOWS:
        raise ValidationError(f"unknown flow {kind!r}; choose {', '.join(FLOWS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= 1000:
        raise ValidationError(f"flow steps must be a whole number in [0, 1000], got {steps!r}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise ValidationError(f"flow step size must be a finite number > 0, got {step_size}")
    if not (isinstance(layers, int) and 0 <= layers <= 16 and std > 0):
        raise ValidationError("q0 coupling layers must be in [0, 16] and its std > 0")
    if isinstance(components, bool) or not isinstance(components, int) or not (
            1 <= components <= 256):
        raise ValidationError(f"q0 components must be a whole number in [1, 256], got {components}")
    q0 = InitialDistribution(components, layers, hidden, std)
    if step_size is None:
        step_size = FLOW_DEFAULTS[kind]["flow_step_size"]
    return FLOWS[kind](q0, steps, step_size)
