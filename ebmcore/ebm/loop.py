"""The one training loop every EBM method runs; a method plugs in as a small objective.

:class:`TrainingLoop` owns what all methods share: the model on its box and its
running average (``ema``), Adam with a cosine learning-rate schedule, the one
``torch.Generator``, the evaluation cadence and exact metrics, the blow-up guard,
the history, the events, pause/resume through ``run`` and checkpoints.  A method
(:class:`ebmcore.ebm.training.Trainer`, :class:`ebmcore.ebm.adversarial.AdversarialTrainer`)
implements :meth:`TrainingLoop._objective` and, where it needs them, the hooks
below it.  ``run(n)`` may be broken off and called again at any time, or saved and
resumed: the result is bit-for-bit that of an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ebmcore.box import Box
from ebmcore.budget import DEFAULT_BUDGET, Budget
from ebmcore.ebm.data import Dataset
from ebmcore.ebm.evaluation import ExactEvaluator, ExactMetrics
from ebmcore.ebm.models import MLPEnergy, ModelConfig
from ebmcore.energies import ValidationError

__all__ = ["ENERGY_LIMIT", "GRAD_LIMIT", "TrainEvent", "TrainingLoop", "grad_norm",
           "run_to_end"]

ENERGY_LIMIT = 1e4  # |mean energy| beyond this: the energies are exploding
GRAD_LIMIT = 1e6  # parameter-gradient norm beyond this: the gradients are exploding
_GLOBAL_RNG = threading.Lock()  # held while a trainer seeds torch's global generator


@dataclass(frozen=True, eq=False)
class TrainEvent:
    """What one training iteration reports."""

    iteration: int  # iterations done (1-based after the first step)
    total: int  # iterations requested by the config
    seconds: float  # training wall time so far (pauses excluded, evaluations included)
    loss: float  # E_data[E] - E_neg[E] (+ L2 penalty) of this iteration
    e_pos: float  # mean energy of the data batch
    e_neg: float  # mean energy of the negatives (grid-weighted for `exact`)
    grad_norm: float  # global norm of the parameter gradient, before clipping
    lr: float  # learning rate used
    negatives: Tensor  # (M, 2) float32 current negatives (exact: grid draws from p_theta)
    metrics: ExactMetrics | None = None  # every eval_every iterations and at the end
    diverged: bool = False  # the run blew up and stopped
    message: str | None = None  # a sentence for users (divergence, end of run)
    method: str = ""  # which trainer produced it
    extra: dict[str, float] = field(default_factory=dict)  # method-specific numbers

    @property
    def finished(self) -> bool:
        return self.diverged or self.iteration >= self.total


def grad_norm(params: list[nn.Parameter]) -> float:
    """Global 2-norm of the parameters' gradients (0 when none has one)."""
    gs = [p.grad for p in params if p.grad is not None]
    if not gs:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gs])))


def _scale_first_layer(model: nn.Module, gain: float) -> None:
    """Multiply the first layer's initial weights and biases by ``gain``.

    The MLP sees the box mapped to ``[-1, 1]^2``, and PyTorch's default init gives
    features as wide as the whole box, which an MLP refines slowly (spectral bias);
    a gain of a few starts it with finer features.
    """
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        first.weight.mul_(gain)
        first.bias.mul_(gain)


def _blow_up(loss: float, e_pos: float, e_neg: float, gnorm: float, draws: str,
             watched: Mapping[str, float]) -> str | None:
    if not all(math.isfinite(v) for v in (loss, e_pos, e_neg)):
        return "the energies became non-finite"
    bad = [name for name, v in watched.items() if not math.isfinite(v)]
    if bad:
        return f"the {' and the '.join(bad)} became non-finite"
    if not math.isfinite(gnorm):
        return "the gradient became non-finite"
    if max(abs(e_pos), abs(e_neg)) > ENERGY_LIMIT:
        return (f"the energies exploded (data {e_pos:.3g}, {draws} {e_neg:.3g}; "
                f"limit {ENERGY_LIMIT:g})")
    if gnorm > GRAD_LIMIT:
        return f"the gradient norm exploded ({gnorm:.3g} > {GRAD_LIMIT:g})"
    return None


class TrainingLoop:
    """A resumable training run: ``for event in trainer.run(n): ...``.

    Args:
        dataset: training and test points (and the exact target, if known).
        config: the method's settings (validated; ``None`` fields take defaults).
        model_config: the MLP's architecture.
        model: any other energy module ``(N, 2) -> (N,)`` to train instead of the
            MLP (tests use a quadratic energy); checkpoints need an ``MLPEnergy``.
        budget: the most the whole run may cost (:mod:`ebmcore.budget`), checked first.
        flag: how the caller can raise the budget, named in the refusal.

    The model's box is the data's box grown by ``config.box_pad``; data outside it
    are clamped onto it.  Weights are initialised from ``config.seed`` without
    touching the global RNG (other threads' draws included).
    """

    config_class: type  # the method's config: validate(), to_dict(), from_dict()
    methods: tuple[str, ...] = ()  # checkpoint methods this class resumes
    draws = "negatives"  # what the negatives are called in messages
    temperature = 1.0  # the temperature the negatives sample p_theta at
    state_keys: tuple[str, ...] = ()  # keys the method adds to the trainer state

    def __init__(self, dataset: Dataset, config: object | None = None,
                 model_config: ModelConfig | None = None, model: nn.Module | None = None, *,
                 budget: Budget = DEFAULT_BUDGET, flag: str = "") -> None:
        # None fields take the method's defaults for this data set (defaults.py)
        self.config = c = (config or self.config_class()).validate(
            budget, model=model_config, flag=flag, dataset=dataset.name)
        self.dataset = dataset
        self.box = Box.of(dataset.box).pad(c.box_pad)
        self.train_x = self.box.clamp(dataset.train.float())
        # the lock: threads (a server's sessions) building trainers at once share torch's
        # global generator, which fork_rng only saves and restores around the block
        with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            if model is None:
                model = MLPEnergy(model_config or ModelConfig(), self.box)
                _scale_first_layer(model, c.init_gain)
            self.model = model
            self._build()
        self.ema_model = copy.deepcopy(model).requires_grad_(False) if c.ema > 0 else None
        # fused: one kernel over all parameters (the per-tensor loop costs more than the math)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr, betas=c.betas,
                                          fused=True)
        self.generator = torch.Generator().manual_seed(c.seed)
        self.evaluator = ExactEvaluator(dataset, self.box, c.eval_grid)
        self.log_area = math.log(self.box.area)
        self.iteration, self.seconds = 0, 0.0
        self.history: list[dict[str, float | int | None]] = []  # one row per evaluation
        self.negatives = torch.empty(0, 2)
        self.diverged: str | None = None
        self.last_metrics: ExactMetrics | None = None
        self._setup()

    @property
    def method(self) -> str:
        return self.config.method

    # -- what a method implements ------------------------------------------
    def _build(self) -> None:
        """Create further seeded modules, right after the model (global RNG seeded)."""

    def _setup(self) -> None:
        """Create what needs the generator (chains, a buffer, optimisers of other modules)."""

    def _objective(self) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        """One iteration's theta loss, mean data and negative energies, extra numbers.

        Sets ``self.negatives``; may update other modules first.
        """
        raise NotImplementedError

    def _schedules(self) -> list[tuple[torch.optim.Optimizer, float]]:
        """Optimisers whose learning rate follows the cosine schedule, with their base rate."""
        return [(self.optimizer, self.config.lr)]

    def _watched(self, extra: dict[str, float]) -> dict[str, float]:
        """Numbers besides the energies that stop the run when non-finite."""
        return {}

    def _measure(self, metrics: ExactMetrics, extra: dict[str, float]) -> str | None:
        """Add method-specific numbers to ``extra`` at an evaluation; a problem, or None."""
        return None

    def _history_extra(self, extra: dict[str, float]) -> dict[str, float | None]:
        return {}

    def _advice(self) -> str:
        return "lower the learning rate"

    def _state_extra(self) -> dict[str, object]:
        return {}

    def _load_extra(self, state: dict[str, object]) -> None:
        del state

    # -- one iteration -----------------------------------------------------
    def lr_at(self, iteration: int) -> float:
        """Cosine decay from ``lr`` to ``lr * lr_final`` over the run."""
        return self.config.lr * self._lr_factor(iteration)

    def _lr_factor(self, iteration: int) -> float:
        c = self.config
        frac = min(1.0, iteration / max(1, c.iters - 1))
        return c.lr_final + (1 - c.lr_final) * 0.5 * (1 + math.cos(math.pi * frac))

    def step(self) -> TrainEvent:
        """Run one iteration and return its event (raises if the run is over)."""
        if self.finished:
            raise ValidationError("this run is finished; start a new trainer")
        c, start = self.config, time.perf_counter()
        factor = self._lr_factor(self.iteration)
        for optimizer, base in self._schedules():
            for group in optimizer.param_groups:
                group["lr"] = base * factor
        lr = c.lr * factor
        loss, e_pos, e_neg, extra = self._objective()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.model.parameters())
        gnorm = grad_norm(params)
        loss_f, pos_f, neg_f = (float(t.detach()) for t in (loss, e_pos, e_neg))
        problem = _blow_up(loss_f, pos_f, neg_f, gnorm, self.draws, self._watched(extra))
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
                                 "iteration": self.iteration, "loss": loss_f,
                                 **self._history_extra(extra)})
        message = None
        if problem is not None:
            self.diverged = message = (
                f"training diverged at iteration {self.iteration}: {problem}. The model is "
                "garbage from here on; " + self._advice())
        elif self.iteration == c.iters:
            message = f"finished {c.iters} iterations in {self.seconds:.1f} s"
        return TrainEvent(self.iteration, c.iters, self.seconds, loss_f, pos_f, neg_f, gnorm, lr,
                          self.negatives.detach().clone(), metrics, problem is not None, message,
                          self.method, extra)

    def _evaluate(self, extra: dict[str, float]) -> tuple[ExactMetrics | None, str | None]:
        """Exact metrics of ``eval_model`` (and the chains' fit to the live weights)."""
        live = None if self.ema_model is None else self.model
        try:
            m = self.evaluator(self.eval_model, self.iteration, self.negatives, live)
            problem = self._measure(m, extra)
        except ValidationError as err:
            return None, f"the exact density could not be computed ({err})"
        self.last_metrics = m
        if not math.isfinite(m.nll_train):
            return m, "the train NLL is not finite"
        if problem is not None:
            return m, problem
        if m.nll_train > self.log_area + self.config.diverge_nats:
            return m, (f"the exact train NLL is {m.nll_train:.4g} nats, "
                       f"{m.nll_train - self.log_area:.3g} worse than a uniform density on the "
                       f"box: p_theta has put its mass away from the data, where the {self.draws} "
                       "do not go")
        return m, None

    @property
    def eval_model(self) -> nn.Module:
        """The weights that metrics, samples and checkpoints use: the average when on."""
        return self.model if self.ema_model is None else self.ema_model

    def _update_average(self) -> None:
        # decay warms up as (1 + t) / (10 + t) so the average forgets the initial weights
        if self.ema_model is None:
            return
        t = self.iteration
        decay = min(self.config.ema, (1 + t) / (10 + t))
        with torch.no_grad():
            for a, p in zip(self.ema_model.parameters(), self.model.parameters(), strict=True):
                a.lerp_(p, 1.0 - decay)

    # -- the generator -----------------------------------------------------
    def run(self, n_iters: int | None = None) -> Iterator[TrainEvent]:
        """Yield one event per iteration, at most ``n_iters`` (default: to the end).

        Breaking out of the loop pauses the run between two iterations; calling
        ``run`` again resumes it exactly.  Stops after a diverged event.
        """
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
                "generator": self.generator.get_state(),
                "negatives": self.negatives.clone(), "diverged": self.diverged,
                **self._state_extra()}

    def load_state(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state` returned (the live weights included)."""
        self.iteration, self.seconds = int(state["iteration"]), float(state["seconds"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.negatives = state["negatives"].clone()
        self.diverged = state["diverged"]
        self._load_extra(state)

    def save(self, path: str, metrics: list[dict] | None = None) -> None:
        """Write a resumable checkpoint (see :mod:`ebmcore.ebm.checkpoint`)."""
        from ebmcore.ebm.checkpoint import save_checkpoint

        if not isinstance(self.model, MLPEnergy):
            raise ValidationError("only MLPEnergy models can be checkpointed")
        save_checkpoint(path, method=self.method, model=self.eval_model,
                        config=self.config.to_dict(), dataset=self.dataset,
                        metrics=self.history if metrics is None else metrics,
                        trainer_state=self.state())

    @classmethod
    def resume(cls, source: object, dataset: Dataset | None = None, *,
               budget: Budget = DEFAULT_BUDGET, flag: str = "") -> TrainingLoop:
        """A trainer continued from a checkpoint written by :meth:`save`.

        ``source`` is a path, the bytes of an upload, or a loaded ``Checkpoint``. Its config
        and trainer state are checked key by key first; whatever does not fit this trainer
        is refused with a CheckpointError naming it, and the run is priced against
        ``budget`` (``flag`` names how to raise it).
        """
        from ebmcore.ebm.checkpoint import Checkpoint, CheckpointError, load_checkpoint
        from ebmcore.ebm.checkpoint_schema import (
            SchemaError,
            check_config,
            check_trainer_state,
        )

        ck = source if isinstance(source, Checkpoint) else load_checkpoint(source, budget=budget)
        if ck.method not in cls.methods or ck.trainer_state is None:
            raise CheckpointError(
                f"{ck.path}: not a resumable {'/'.join(cls.methods)} checkpoint")

        def bad(why: str) -> CheckpointError:
            return CheckpointError(f"{ck.path} is not a usable Langevin Lab checkpoint: {why}")

        try:
            check_config(cls.config_class, ck.config, extra=("method",))
            check_trainer_state(ck.trainer_state, cls.state_keys)
        except SchemaError as err:
            raise bad(str(err)) from None
        trainer = cls(dataset or ck.dataset(), cls.config_class.from_dict(ck.config),
                      ck.model_config, budget=budget, flag=flag)
        try:
            trainer.eval_model.load_state_dict(ck.state_dict)  # the average, or the weights
            trainer.load_state(ck.trainer_state)
            trainer._check_resumed()
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise bad("its trainer state does not fit its config and model "
                      f"({type(err).__name__})") from None
        trainer.history = list(ck.metrics)
        return trainer

    def _check_resumed(self) -> None:
        """Raise ValueError when a loaded state cannot continue (shapes, counts)."""
        if not 0 <= self.iteration <= self.config.iters:
            raise ValueError("iteration")


def run_to_end(trainer: TrainingLoop) -> TrainEvent:
    """Drain ``trainer.run()``; return its last event."""
    event = None
    for event in trainer.run():  # noqa: B007 - draining: only the last event matters
        pass
    if event is None:
        raise ValidationError("this run is finished; start a new trainer")
    return event
