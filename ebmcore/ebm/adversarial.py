"""Adversarial training of a 2D energy model against a dynamics-embedding sampler.

For any sampler ``q_phi``, ``log Z_theta >= bound(theta, phi)`` (:mod:`ebmcore.ebm.flows`),
so ``E_data[-E_theta] - bound`` is an upper bound on the average log-likelihood
that is tight when ``q_phi`` is the model.  Training is the saddle point

    max_theta min_phi  E_data[-E_theta(x)] - bound(theta, phi),

alternating a phi step (raise the bound: tighten it) and a theta step on the
same draws of ``q_phi``.  The theta step minimises the MLE trainer's surrogate
``E_data[E] - E_q[E]`` with the draws of ``q`` held fixed (detached): its
gradient is the likelihood gradient with ``q`` standing in for ``p_theta``
(exactly so when the bound is tight), it needs no second derivatives in theta,
and it keeps theta from winning the game by bending the gradient field the
dynamics follow rather than by moving its density.  (When the bound is tight,
``bound(., phi) <= log Z`` touches ``log Z`` at theta, so the two gradients agree.)

``theta_weights="importance"`` instead weights the draws by ``softmax(w)``, the
self-normalised importance weights ``p_aug / q`` that the exact log densities
make available: a consistent estimate of ``E_p[grad E]`` even where ``q`` is off,
at the price of fewer effective draws (reported as ``ess``).

As in the MLE trainer, a running average of theta (``ema``) is what the metrics,
samples and checkpoints use, while ``q`` follows the live weights; so the bound
and its gap are about the live weights, whose exact log Z is ``bound_log_z``.

The model's domain is its box, as in :mod:`ebmcore.ebm.training`; the flows reach it through
the bijection of :class:`ebmcore.ebm.bound.BoxMap` (see :mod:`ebmcore.ebm.bound`).

Choices, and what they cost
---------------------------
- ``q0`` is a mixture of ``flow_components`` Gaussians started at a k-means
  clustering of the training data (in the flows' coordinates), like chains
  started at the data; from then on only the bound moves it, towards ``p_theta``.
- The default flow is ``hmc``.  The Langevin flow's bound charges every step for
  ``v_i`` not looking like ``N(0, I / lambda_i)``: its gradient drift makes
  ``v_i`` depend on ``x``, at a cost that grows with the time ``sum_i eps_i`` the
  dynamics run, so maximising the bound shrinks the step sizes until the flow is
  little more than ``q0`` plus noise (the note's warning, measured: the learned
  ``eps`` falls from 0.01 to 0.003 within a few hundred iterations).  The
  leapfrog flow pays only for the final velocity, and its bound is tight to a
  few hundredths of a nat on ``mixture``.
- The game is lost when ``q`` stops covering ``p_theta``: theta then digs wells
  where neither the data nor ``q`` go, the gap grows to hundreds of nats and the
  run stops as diverged (train NLL far above uniform, or energies past
  ``ENERGY_LIMIT``).  Measured: the Langevin flow at ``lr = 3e-3`` on ``banana``,
  ``rings`` and ``moons``; hence its defaults of ``lr = 1e-3`` for 3000 iterations.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ebmcore.ebm.adversarial_config import FLOW_DEFAULTS, METHOD, THETA_WEIGHTS, AdversarialConfig
from ebmcore.ebm.bound import BoundEstimate, BoxMap, estimate_bound
from ebmcore.ebm.checkpoint import load_checkpoint, save_checkpoint
from ebmcore.ebm.data import Dataset
from ebmcore.ebm.evaluation import ExactEvaluator, ExactMetrics, clamp_to_box
from ebmcore.ebm.flows import make_flow
from ebmcore.ebm.models import MLPEnergy, ModelConfig
from ebmcore.ebm.training import ENERGY_LIMIT, GRAD_LIMIT, TrainEvent
from ebmcore.energies import Box, ValidationError, pad_box
from ebmcore.exact.density import quadrature

__all__ = ["FLOW_DEFAULTS", "METHOD", "THETA_WEIGHTS", "AdversarialConfig", "AdversarialTrainer",
           "train_adversarial"]

def _norm(params: list[nn.Parameter]) -> float:
    gs = [p.grad for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in gs]))) if gs else 0.0


def _frozen(module: nn.Module) -> list[nn.Parameter]:
    ps = [p for p in module.parameters() if p.requires_grad]
    for p in ps:
        p.requires_grad_(False)
    return ps


def _scale_first_layer(model: MLPEnergy, gain: float) -> None:
    """First layer's initial weights and biases x ``gain``: finer initial features.

    The same start as the MLE trainer (see ``ebmcore.ebm.training``): PyTorch's default
    init gives features on the scale of the whole box, which an MLP refines slowly.
    """
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        first.weight.mul_(gain)
        first.bias.mul_(gain)


def _cosine(c: AdversarialConfig, iteration: int) -> float:
    """Learning-rate factor: cosine decay from 1 to ``lr_final`` over the run."""
    frac = min(1.0, iteration / max(1, c.iters - 1))
    return c.lr_final + (1 - c.lr_final) * 0.5 * (1 + math.cos(math.pi * frac))


class AdversarialTrainer:
    """A resumable adversarial run: ``for event in trainer.run(n): ...``.

    Same conventions as :class:`ebmcore.ebm.training.Trainer`: one ``torch.Generator``
    seeded by ``config.seed`` drives the data batches and the flow's noise (the
    bound at logged iterations uses its own generator seeded by the iteration, so
    how often one evaluates does not change the run); breaking out of ``run`` and
    calling it again, or saving and resuming, gives bit-for-bit the same run.

    Args:
        dataset: training and test points (and the exact target, if known).
        config: adversarial settings.
        model_config: the MLP's architecture.
    """

    def __init__(self, dataset: Dataset, config: AdversarialConfig | None = None,
                 model_config: ModelConfig | None = None) -> None:
        self.config = c = (config or AdversarialConfig()).validate()
        self.dataset = dataset
        self.box: Box = tuple(float(v) for v in pad_box(dataset.box, c.box_pad))
        self.box_map = BoxMap(self.box)
        self.train_x = clamp_to_box(dataset.train.float(), self.box)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.model = MLPEnergy(model_config or ModelConfig(), self.box)
            _scale_first_layer(self.model, c.init_gain)
            self.flow = make_flow(c.flow, c.flow_steps, c.flow_step_size,
                                  components=c.flow_components, layers=c.flow_layers)
        self.flow.q0.fit(self.box_map.from_box(self.train_x.double()))  # q0 ~ the data, in z
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False) if c.ema > 0 else None
        self.energy_z = self.box_map.pullback(self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr, betas=c.betas)
        self.flow_optimizer = torch.optim.Adam(self.flow.parameters(), lr=c.flow_lr,
                                               betas=c.betas)
        self.generator = torch.Generator().manual_seed(c.seed)
        self.evaluator = ExactEvaluator(dataset, self.box, c.eval_grid)
        x0, x1, y0, y1 = self.box
        self.log_area = math.log((x1 - x0) * (y1 - y0))
        self.iteration, self.seconds = 0, 0.0
        self.history: list[dict[str, float | int | None]] = []  # one row per evaluation
        self.negatives = torch.empty(0, 2)
        self.diverged: str | None = None
        self.last_metrics: ExactMetrics | None = None
        self.last_bound: BoundEstimate | None = None

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
        gnorm = _norm(params)
        if math.isfinite(gnorm) and math.isfinite(float(loss.detach())):
            if c.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, c.grad_clip)
            self.flow_optimizer.step()
        w = w.detach()
        return s.x.detach(), w, {"bound_batch": float(w.mean()), "phi_grad_norm": gnorm}

    def step(self) -> TrainEvent:
        """Run one iteration (``phi_steps`` phi updates, one theta update); return its event."""
        if self.finished:
            raise ValidationError("this run is finished; start a new trainer")
        c, start = self.config, time.perf_counter()
        factor = _cosine(c, self.iteration)
        lr = c.lr * factor
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for group in self.flow_optimizer.param_groups:
            group["lr"] = c.flow_lr * factor
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
        loss = e_pos.mean() - e_neg + c.l2 * pen
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.model.parameters())
        gnorm = _norm(params)
        loss_f, pos_f, neg_f = (float(t.detach()) for t in (loss, e_pos.mean(), e_neg))
        problem = _blow_up(loss_f, pos_f, neg_f, gnorm, extra.get("bound_batch", 0.0))
        if problem is None:
            if c.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, c.grad_clip)
            self.optimizer.step()
            self._update_average()
        self.iteration += 1
        metrics = None
        if problem is None and (self.iteration == c.iters or (
                c.eval_every and self.iteration % c.eval_every == 0)):
            metrics, problem = self._evaluate(extra)
        self.seconds += time.perf_counter() - start
        if metrics is not None:
            row = metrics.to_dict()  # its "seconds" is the evaluation's own time
            self.history.append({**row, "eval_seconds": row["seconds"], "seconds": self.seconds,
                                 "loss": loss_f, **{k: extra.get(k) for k in (
                                     "bound", "bound_se", "bound_log_z", "gap")},
                                 "bound_log_z_err": extra.get("log_z_err"),
                                 "q_entropy": extra.get("entropy")})
        message = None
        if problem is not None:
            self.diverged = message = (
                f"training diverged at iteration {self.iteration}: {problem}. The model is "
                "garbage from here on; lower the learning rates (--lr, --flow-lr), add the L2 "
                "penalty, or clip gradients")
        elif self.iteration == c.iters:
            message = f"finished {c.iters} iterations in {self.seconds:.1f} s"
        return TrainEvent(self.iteration, c.iters, self.seconds, loss_f, pos_f, neg_f, gnorm,
                          lr, self.negatives.clone(), metrics, problem is not None, message,
                          METHOD, extra)

    def bound(self, n: int | None = None, iteration: int | None = None) -> BoundEstimate:
        """The bound now, from ``n`` fresh draws (seeded by ``iteration``: repeatable)."""
        it = self.iteration if iteration is None else iteration
        gen = torch.Generator().manual_seed((self.config.seed * 1_000_003 + it) % 2**63)
        return estimate_bound(self.flow, self.model, n or self.config.bound_samples, gen,
                              self.box_map)

    def _evaluate(self, extra: dict[str, float]) -> tuple[ExactMetrics | None, str | None]:
        """Exact metrics of ``eval_model``; the bound and its gap for the live weights."""
        live = None if self.ema_model is None else self.model
        try:
            m = self.evaluator(self.eval_model, self.iteration, self.negatives, live)
            z = m if live is None else quadrature(live, self.box, self.config.eval_grid)
        except ValidationError as err:
            return None, f"the exact density could not be computed ({err})"
        self.last_metrics = m
        b = self.last_bound = self.bound()
        extra.update(bound=b.bound, bound_se=b.se, bound_log_z=z.log_z, log_z_err=z.log_z_err,
                     gap=z.log_z - b.bound, entropy=b.entropy, energy_term=b.energy,
                     kinetic=b.kinetic)
        if not math.isfinite(m.nll_train) or not math.isfinite(b.bound):
            return m, "the train NLL or the bound is not finite"
        if m.nll_train > self.log_area + self.config.diverge_nats:
            return m, (f"the exact train NLL is {m.nll_train:.4g} nats, "
                       f"{m.nll_train - self.log_area:.3g} worse than a uniform density on the "
                       "box: p_theta has put its mass away from the data, where q does not go")
        return m, None

    @property
    def eval_model(self) -> nn.Module:
        """The weights that metrics, samples and checkpoints use: the average when on."""
        return self.model if self.ema_model is None else self.ema_model

    def _update_average(self) -> None:
        # as the MLE trainer: decay warms up as (1 + t) / (10 + t)
        if self.ema_model is None:
            return
        t = self.iteration
        decay = min(self.config.ema, (1 + t) / (10 + t))
        with torch.no_grad():
            for a, p in zip(self.ema_model.parameters(), self.model.parameters(), strict=True):
                a.lerp_(p, 1.0 - decay)

    # -- the generator -----------------------------------------------------
    def run(self, n_iters: int | None = None) -> Iterator[TrainEvent]:
        """Yield one event per iteration, at most ``n_iters``; break to pause, call to resume."""
        done = 0
        while not self.finished and (n_iters is None or done < n_iters):
            done += 1
            yield self.step()

    @property
    def finished(self) -> bool:
        return self.diverged is not None or self.iteration >= self.config.iters

    # -- checkpoints -------------------------------------------------------
    def state(self) -> dict[str, object]:
        """Everything needed to resume exactly (tensors, numbers, strings only)."""
        return {"iteration": self.iteration, "seconds": self.seconds,
                "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "flow": {k: v.detach().clone() for k, v in self.flow.state_dict().items()},
                "flow_optimizer": self.flow_optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "negatives": self.negatives.clone(), "diverged": self.diverged}

    def load_state(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state` returned (the live weights included)."""
        self.iteration, self.seconds = int(state["iteration"]), float(state["seconds"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.flow.load_state_dict(state["flow"])
        self.flow_optimizer.load_state_dict(state["flow_optimizer"])
        self.generator.set_state(state["generator"])
        self.negatives = state["negatives"].clone()
        self.diverged = state["diverged"]

    def save(self, path: str, metrics: list[dict] | None = None) -> None:
        """Write a resumable checkpoint in the common format, ``method="adversarial"``."""
        save_checkpoint(path, method=METHOD, model=self.eval_model, config=self.config.to_dict(),
                        dataset=self.dataset,
                        metrics=self.history if metrics is None else metrics,
                        trainer_state=self.state())

    @classmethod
    def resume(cls, path: str, dataset: Dataset | None = None) -> AdversarialTrainer:
        """A trainer continued from a checkpoint written by :meth:`save`."""
        ck = load_checkpoint(path)
        if ck.method != METHOD or ck.trainer_state is None:
            raise ValidationError(f"{path}: not a resumable adversarial checkpoint")
        trainer = cls(dataset or ck.dataset(), AdversarialConfig.from_dict(ck.config),
                      ck.model_config)
        trainer.eval_model.load_state_dict(ck.state_dict)  # the average, or the weights
        trainer.load_state(ck.trainer_state)
        trainer.history = list(ck.metrics)
        return trainer


def _blow_up(loss: float, e_pos: float, e_neg: float, gnorm: float, bound: float) -> str | None:
    if not all(math.isfinite(v) for v in (loss, e_pos, e_neg, bound)):
        return "the energies or the bound became non-finite"
    if not math.isfinite(gnorm) or gnorm > GRAD_LIMIT:
        return f"the gradient norm exploded ({gnorm:.3g}, limit {GRAD_LIMIT:g})"
    if max(abs(e_pos), abs(e_neg)) > ENERGY_LIMIT:
        return (f"the energies exploded (data {e_pos:.3g}, draws of q {e_neg:.3g}; "
                f"limit {ENERGY_LIMIT:g})")
    return None


def train_adversarial(dataset: Dataset, config: AdversarialConfig | None = None,
                      model_config: ModelConfig | None = None
                      ) -> tuple[AdversarialTrainer, TrainEvent]:
    """Run to the end; return the trainer and its last event."""
    trainer = AdversarialTrainer(dataset, config, model_config)
    event = None
    for event in trainer.run():  # noqa: B007 - draining: only the last event matters
        pass
    assert event is not None
    return trainer, event
