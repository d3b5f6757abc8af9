"""Adversarial training of a 2D energy model against a dynamics-embedding sampler.

For any sampler ``q_phi``, ``log Z_theta >= bound(theta, phi)`` (:mod:`ebmcore.ebm.flows`),
so ``E_data[-E_theta] - bound`` is an upper bound on the average log-likelihood
that is tight when ``q_phi`` is the model.  Training is the saddle point

    max_theta min_phi  E_data[-E_theta(x)] - bound(theta, phi),

alternating phi steps (raise the bound) and a theta step on the same draws of
``q_phi``, held fixed: theta minimises the MLE surrogate ``E_data[E] - E_q[E]``, or
with ``theta_weights="importance"`` weights the draws by ``softmax(p_aug / q)``.
The flows live on ``R^2`` and reach the model's box through
:class:`ebmcore.ebm.bound.BoxMap`; ``q0`` starts at a k-means of the data.  The loop
(schedule, average, metrics, events, checkpoints) is :class:`ebmcore.ebm.loop.TrainingLoop`;
the bound and its gap are about the live weights, which ``q`` follows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ebmcore.ebm.adversarial_config import FLOW_DEFAULTS, METHOD, THETA_WEIGHTS, AdversarialConfig
from ebmcore.ebm.bound import BoundEstimate, BoxMap, estimate_bound
from ebmcore.ebm.data import Dataset
from ebmcore.ebm.evaluation import ExactMetrics
from ebmcore.ebm.flows import make_flow
from ebmcore.ebm.loop import TrainEvent, TrainingLoop, grad_norm, run_to_end
from ebmcore.ebm.models import ModelConfig
from ebmcore.exact.density import quadrature

__all__ = ["FLOW_DEFAULTS", "METHOD", "THETA_WEIGHTS", "AdversarialConfig", "AdversarialTrainer",
           "train_adversarial"]


def _frozen(module: nn.Module) -> list[nn.Parameter]:
    ps = [p for p in module.parameters() if p.requires_grad]
    for p in ps:
        p.requires_grad_(False)
    return ps


class AdversarialTrainer(TrainingLoop):
    """A resumable adversarial run: ``for event in trainer.run(n): ...``.

    One ``torch.Generator`` seeded by ``config.seed`` drives the data batches and
    the flow's noise; the bound at evaluations uses its own generator seeded by
    the iteration, so how often one evaluates does not change the run.
    """

    config_class = AdversarialConfig
    methods = (METHOD,)
    method = METHOD
    draws = "draws of q"
    temperature = 1.0  # the flows target p_theta itself

    def _build(self) -> None:
        c = self.config
        self.flow = make_flow(c.flow, c.flow_steps, c.flow_step_size,
                              components=c.flow_components, layers=c.flow_layers)

    def _setup(self) -> None:
        c = self.config
        self.box_map = BoxMap(self.box)
        self.flow.q0.fit(self.box_map.from_box(self.train_x.double()))  # q0 ~ the data, in z
        self.energy_z = self.box_map.pullback(self.model)
        self.flow_optimizer = torch.optim.Adam(self.flow.parameters(), lr=c.flow_lr,
                                               betas=c.betas)
        self.last_bound: BoundEstimate | None = None

    def _schedules(self) -> list[tuple[torch.optim.Optimizer, float]]:
        return [(self.optimizer, self.config.lr), (self.flow_optimizer, self.config.flow_lr)]

    # -- one iteration -----------------------------------------------------
    def _phi_step(self) -> tuple[Tensor, Tensor, dict[str, float]]:
        """Raise the bound by one Adam step on phi.

        Returns:
            The draws ``z (B, 2)`` it used, their log weights ``(B,)`` (detached), numbers.
        """
        c = self.config
        frozen = _frozen(self.model)  # theta is a constant here: no graph for it
        try:
            s = self.flow(self.energy_z, c.batch_size, self.generator, create_graph=True)
            w = s.log_weights
            loss = -w.mean()
            self.flow_optimizer.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        params = list(self.flow.parameters())
        gnorm = grad_norm(params)
        if math.isfinite(gnorm) and math.isfinite(float(loss.detach())):
            if c.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, c.grad_clip)
            self.flow_optimizer.step()
        w = w.detach()
        return s.x.detach(), w, {"bound_batch": float(w.mean()), "phi_grad_norm": gnorm}

    def _objective(self) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        """``phi_steps`` phi updates, then theta's loss on the last draws of ``q``."""
        c = self.config
        extra: dict[str, float] = {}
        z = log_w = None
        for _ in range(c.phi_steps):
            z, log_w, extra = self._phi_step()
        if z is None or log_w is None:  # phi_steps = 0: phi frozen, draws only
            with torch.no_grad():
                s = self.flow(self.energy_z, c.batch_size, self.generator)
            z, log_w = s.x, s.log_weights
        self.negatives = self.box_map.to_box(z).float()
        idx = torch.randint(len(self.train_x), (c.batch_size,), generator=self.generator)
        e = self.model(torch.cat([self.train_x[idx], self.negatives]))
        e_pos, e_neg = e[: c.batch_size], e[c.batch_size:]
        weights = torch.full_like(e_neg, 1.0 / c.batch_size)
        if c.theta_weights == "importance":
            weights = torch.softmax(log_w.to(e_neg.dtype), 0)
        extra["ess"] = float(1.0 / (weights**2).sum())
        e_neg = (weights * e_neg).sum()
        pen = (e_pos**2).mean() + (weights * e[c.batch_size:] ** 2).sum()
        e_pos = e_pos.mean()
        return e_pos - e_neg + c.l2 * pen, e_pos, e_neg, extra

    def _watched(self, extra: dict[str, float]) -> dict[str, float]:
        return {"bound": extra.get("bound_batch", 0.0)}

    def bound(self, n: int | None = None, iteration: int | None = None) -> BoundEstimate:
        """The bound now, from ``n`` fresh draws (seeded by ``iteration``: repeatable)."""
        it = self.iteration if iteration is None else iteration
        gen = torch.Generator().manual_seed((self.config.seed * 1_000_003 + it) % 2**63)
        return estimate_bound(self.flow, self.model, n or self.config.bound_samples, gen,
                              self.box_map)

    def _measure(self, metrics: ExactMetrics, extra: dict[str, float]) -> str | None:
        """The bound, and its gap to the exact log Z of the live weights."""
        z = metrics if self.ema_model is None else quadrature(self.model, self.box,
                                                              self.config.eval_grid)
        b = self.last_bound = self.bound()
        extra.update(bound=b.bound, bound_se=b.se, bound_log_z=z.log_z, log_z_err=z.log_z_err,
                     gap=z.log_z - b.bound, entropy=b.entropy, energy_term=b.energy,
                     kinetic=b.kinetic)
        return None if math.isfinite(b.bound) else "the bound is not finite"

    def _history_extra(self, extra: dict[str, float]) -> dict[str, float | None]:
        return {**{k: extra.get(k) for k in ("bound", "bound_se", "bound_log_z", "gap")},
                "bound_log_z_err": extra.get("log_z_err"), "q_entropy": extra.get("entropy")}

    def _advice(self) -> str:
        return "lower the learning rates (--lr, --flow-lr), add the L2 penalty, or clip gradients"

    state_keys = ("flow", "flow_optimizer")

    def _state_extra(self) -> dict[str, object]:
        return {"flow": {k: v.detach().clone() for k, v in self.flow.state_dict().items()},
                "flow_optimizer": self.flow_optimizer.state_dict()}

    def _load_extra(self, state: dict[str, object]) -> None:
        self.flow.load_state_dict(state["flow"])
        self.flow_optimizer.load_state_dict(state["flow_optimizer"])


def train_adversarial(dataset: Dataset, config: AdversarialConfig | None = None,
                      model_config: ModelConfig | None = None
                      ) -> tuple[AdversarialTrainer, TrainEvent]:
    """Run to the end; return the trainer and its last event."""
    trainer = AdversarialTrainer(dataset, config, model_config)
    return trainer, run_to_end(trainer)
