"""Maximum-likelihood training of a 2D energy model, as a generator of events.

``log p_theta(x) = -E_theta(x) - log Z_theta`` on the model's box, so

    grad_theta log p_theta(x) = -grad_theta E(x) + E_{x ~ p_theta}[grad_theta E(x)].

Every method minimises the same surrogate ``E_data[E] - E_neg[E]`` (plus an
optional L2 penalty ``l2 * (E_data[E^2] + E_neg[E^2])`` that keeps energies near
zero), whose gradient is minus the log-likelihood gradient when the negatives
are draws from ``p_theta``.  The methods differ only in the negatives (see
:mod:`ebmcore.ebm.negatives`): ``short-run``, ``persistent`` and ``replay`` use
Langevin chains (Metropolis-adjusted by default) kept inside the box, ``exact``
uses the grid: its negative phase ``sum_i w_i E(g_i)`` with
``w = softmax(-E(grid))`` (detached) has exactly the gradient of
``log Z_grid = logsumexp(-E(grid)) + log(cell area)``: the exact MLE gradient,
the reference that shows what the MCMC methods lose.

Three choices matter most for the MCMC methods (measured on ``mixture``,
``rings``, ``moons``): the Metropolis-adjusted kernel (``kernel="mala"``; plain
SGLD chains turn unstable where the model gets steep, and training then runs
away), Adam without momentum (``betas=(0, 0.999)``: momentum on top of chains that lag
behind the model makes them chase each other), and a running average of the
weights (``ema``, Polyak averaging): the chains' noise makes the weights jitter,
and the average has a far better likelihood than any single iterate.  Metrics,
samples and checkpoints use the average; the chains follow the live weights.
The first layer's initial weights are multiplied by ``init_gain``: PyTorch's
default init makes features as wide as the whole box, and the MLP then needs
thousands of steps to resolve components 1/14 of the box wide.

A :class:`Trainer` holds everything (model, optimiser, chains or buffer, the
one ``torch.Generator``, the iteration); ``trainer.run(n)`` yields one
:class:`TrainEvent` per iteration and may be broken off and called again at
any time: the result is bit-for-bit the same as an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor, nn

from ebmcore.ebm.data import Dataset
from ebmcore.ebm.evaluation import ExactEvaluator, ExactMetrics, clamp_to_box
from ebmcore.ebm.models import MLPEnergy, ModelConfig
from ebmcore.ebm.negatives import (
    BOUNDARIES,
    KERNELS,
    NegativeSampler,
    PersistentSampler,
    ReplaySampler,
    ShortRunSampler,
    default_noise,
    grid_samples,
    grid_weights,
)
from ebmcore.energies import Box, ValidationError, pad_box
from ebmcore.exact.density import grid_points

__all__ = ["METHODS", "METHOD_DEFAULTS", "TrainConfig", "TrainEvent", "Trainer", "train"]

METHODS = ("short-run", "persistent", "replay", "exact")
ENERGY_LIMIT = 1e4  # |mean energy| beyond this: the energies are exploding
GRAD_LIMIT = 1e6  # parameter-gradient norm beyond this: the gradients are exploding

METHOD_DEFAULTS: dict[str, dict[str, object]] = {
    # tuned on `mixture` with the default MLP 2-128-128-1 on 2 shared cores
    "short-run": {"iters": 2000, "steps": 60, "step_size": 0.01, "lr": 2e-3, "batch_size": 256,
                  "betas": (0.0, 0.999), "init_gain": 6.0, "ema": 0.99, "kernel": "mala"},
    "persistent": {"iters": 3000, "steps": 20, "step_size": 0.01, "lr": 2e-3, "batch_size": 256,
                   "betas": (0.0, 0.999), "init_gain": 6.0, "ema": 0.99, "kernel": "mala"},
    "replay": {"iters": 4000, "steps": 20, "step_size": 0.01, "lr": 2e-3, "batch_size": 256,
               "betas": (0.0, 0.999), "init_gain": 6.0, "ema": 0.99, "kernel": "mala"},
    "exact": {"iters": 1500, "steps": 0, "step_size": 0.01, "lr": 3e-3, "batch_size": 1024,
              "betas": (0.9, 0.999), "init_gain": 6.0, "ema": 0.99, "kernel": "sgld"},
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; ``None`` means "the method's default"."""

    method: str = "persistent"  # short-run, persistent, replay or exact
    iters: int | None = None  # training iterations
    lr: float | None = None  # Adam learning rate (cosine-decayed to lr * lr_final)
    lr_final: float = 0.1  # learning rate at the last iteration, as a fraction of lr
    betas: tuple[float, float] | None = None  # Adam betas (0 momentum for chains: no lag)
    batch_size: int | None = None  # data points (and negatives) per iteration
    step_size: float | None = None  # Langevin eps
    steps: int | None = None  # Langevin steps K per iteration
    noise: float | None = None  # Langevin noise std; None = sqrt(2 eps). Other values TEMPER
    l2: float = 0.0  # weight of the L2 penalty on energies (0 = off)
    grad_clip: float = 0.0  # max global norm of the parameter gradient (0 = no clipping)
    ema: float | None = None  # weight averaging decay (0 = off); metrics and saves use the average
    chains: int | None = None  # persistent chains (default: batch_size)
    buffer_size: int = 2048  # replay buffer size (small: every entry moves every ~8 iterations)
    restart: float = 0.05  # replay: fraction of negatives restarted from uniform noise
    grid: int = 64  # exact method: quadrature grid side for the training gradient
    eval_grid: int = 128  # grid side for the exact metrics (multiple of 32)
    eval_every: int = 50  # iterations between exact metrics (0 = only at the end)
    init_gain: float | None = None  # first layer's initial weights x this: finer initial features
    box_pad: float = 0.0  # model box = the data's view box grown by this fraction per side
    boundary: str = "reflect"  # how SGLD chains stay in the box: reflect or clamp
    kernel: str | None = None  # mala (Metropolis-adjusted SGLD: exact, stable) or plain sgld
    diverge_nats: float = 10.0  # train NLL this far above uniform-on-box = diverged
    seed: int = 0  # seeds the weights and the one generator used for everything

    def resolved(self) -> TrainConfig:
        """A copy with every ``None`` replaced by the method's default."""
        if self.method not in METHODS:
            raise ValidationError(f"unknown method {self.method!r}; choose {', '.join(METHODS)}")
        d = METHOD_DEFAULTS[self.method]
        over = {k: d[k] for k in ("iters", "lr", "step_size", "steps", "batch_size", "init_gain",
                                  "betas", "ema", "kernel") if getattr(self, k) is None}
        if self.chains is None:
            over["chains"] = over.get("batch_size", self.batch_size)
        if self.kernel is None and self.noise == 0:  # no noise: MALA is undefined, so SGLD
            over["kernel"] = "sgld"
        return replace(self, **over)

    @property
    def noise_scale(self) -> float:
        """The Langevin noise std actually used."""
        return default_noise(self.step_size) if self.noise is None else self.noise

    @property
    def temperature(self) -> float:
        """``noise^2 / (2 eps)``: 1 samples ``p_theta``; other values sample ``p_theta^(1/T)``."""
        return self.noise_scale**2 / (2.0 * self.step_size)

    def validate(self) -> TrainConfig:
        """Return a resolved, checked copy, or raise ValidationError."""
        c = self.resolved()
        for name in ("lr", "step_size"):
            v = getattr(c, name)
            if not (math.isfinite(v) and v > 0):
                raise ValidationError(f"{name} must be a finite number > 0, got {v}")
        for name, low, high in (("iters", 1, 10_000_000), ("batch_size", 1, 100_000),
                                ("chains", 1, 1_000_000), ("buffer_size", 1, 10_000_000),
                                ("eval_every", 0, 10_000_000)):
            v = getattr(c, name)
            if not isinstance(v, int) or not low <= v <= high:
                raise ValidationError(f"{name} must be a whole number in [{low}, {high}], got {v}")
        if c.method != "exact" and not (isinstance(c.steps, int) and 1 <= c.steps <= 10_000):
            raise ValidationError(f"steps must be a whole number in [1, 10000], got {c.steps}")
        for name, low, high, ok in (
                ("lr_final", 0, 1, 0 <= c.lr_final <= 1), ("restart", 0, 1, 0 <= c.restart <= 1),
                ("ema", 0, "1)", 0 <= c.ema < 1), ("box_pad", 0, 1, 0 <= c.box_pad <= 1),
                ("init_gain", "(0", 100, 0 < c.init_gain <= 100),
                ("l2", 0, "inf)", c.l2 >= 0), ("grad_clip", 0, "inf)", c.grad_clip >= 0),
                ("diverge_nats", "(0", "inf)", c.diverge_nats > 0)):
            if not ok:
                lo = low if isinstance(low, str) else f"[{low}"
                hi = high if isinstance(high, str) else f"{high}]"
                raise ValidationError(f"{name} must be in {lo}, {hi}, got {getattr(c, name)}")
        if len(c.betas) != 2 or not all(0 <= b < 1 for b in c.betas):
            raise ValidationError(f"Adam betas must be two numbers in [0, 1), got {c.betas}")
        if c.noise is not None and not (math.isfinite(c.noise) and c.noise >= 0):
            raise ValidationError(f"noise must be >= 0, got {c.noise}")
        if not (c.grid % 2 == 0 and 8 <= c.grid <= 1024):
            raise ValidationError(f"grid must be an even number in [8, 1024], got {c.grid}")
        if c.kernel not in KERNELS:
            raise ValidationError(f"kernel must be sgld or mala, got {c.kernel!r}")
        if c.kernel == "mala" and c.noise_scale <= 0:
            raise ValidationError("MALA needs noise > 0 (a positive temperature)")
        if c.boundary not in BOUNDARIES:
            raise ValidationError(f"boundary must be reflect or clamp, got {c.boundary!r}")
        if not (isinstance(c.seed, int) and c.seed >= 0):
            raise ValidationError(f"seed must be a whole number >= 0, got {c.seed}")
        return c

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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


def _make_sampler(c: TrainConfig, box: Box, gen: torch.Generator) -> NegativeSampler | None:
    kw = {"steps": c.steps, "step_size": c.step_size, "noise": c.noise_scale,
          "boundary": c.boundary, "kernel": c.kernel}
    if c.method == "short-run":
        return ShortRunSampler(box, **kw)
    if c.method == "persistent":
        return PersistentSampler(box, c.chains, gen, **kw)
    if c.method == "replay":
        return ReplaySampler(box, c.buffer_size, c.restart, gen, **kw)
    return None


class Trainer:
    """A resumable training run: ``for event in trainer.run(n): ...``.

    Args:
        dataset: training and test points (and the exact target, if known).
        config: training settings (``None`` fields take the method's defaults).
        model_config: the MLP's architecture.
        model: any other energy module ``(N, 2) -> (N,)`` to train instead of the
            MLP (tests use a quadratic energy); checkpoints need an ``MLPEnergy``.

    The model's box is ``pad_box(dataset.box, config.box_pad)``; data outside it
    are clamped onto it.  Weights are initialised from ``config.seed`` without
    touching the global RNG.
    """

    def __init__(self, dataset: Dataset, config: TrainConfig | None = None,
                 model_config: ModelConfig | None = None, model: nn.Module | None = None) -> None:
        self.config = c = (config or TrainConfig()).validate()
        self.dataset = dataset
        self.box: Box = tuple(float(v) for v in pad_box(dataset.box, c.box_pad))
        if model is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(c.seed)
                model = MLPEnergy(model_config or ModelConfig(), self.box)
                _scale_first_layer(model, c.init_gain)
        self.model = model
        self.ema_model = copy.deepcopy(model).requires_grad_(False) if c.ema > 0 else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr, betas=c.betas)
        self.generator = torch.Generator().manual_seed(c.seed)
        self.sampler = _make_sampler(c, self.box, self.generator)
        self.train_x = clamp_to_box(dataset.train.float(), self.box)
        self.evaluator = ExactEvaluator(dataset, self.box, c.eval_grid)
        x0, x1, y0, y1 = self.box
        self.log_area = math.log((x1 - x0) * (y1 - y0))
        if c.method == "exact":
            self.grid = grid_points(self.box, c.grid, dtype=torch.float32)[2]  # (G, 2)
            self.cell = ((x1 - x0) / c.grid, (y1 - y0) / c.grid)
            self.log_cell = math.log(self.cell[0] * self.cell[1])
        self.iteration = 0
        self.seconds = 0.0
        self.history: list[dict[str, float | int | None]] = []  # one row per evaluation
        self.negatives = torch.empty(0, 2)
        self.diverged: str | None = None
        self.last_metrics: ExactMetrics | None = None

    # -- one iteration -----------------------------------------------------
    def lr_at(self, iteration: int) -> float:
        """Cosine decay from ``lr`` to ``lr * lr_final`` over the run."""
        c = self.config
        frac = min(1.0, iteration / max(1, c.iters - 1))
        return c.lr * (c.lr_final + (1 - c.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))

    def _losses(self, pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Surrogate loss, mean positive and negative energy (all scalars)."""
        c, model = self.config, self.model
        if c.method == "exact":
            e_grid = model(self.grid)
            w = grid_weights(e_grid)
            e_pos = model(pos)
            e_neg = (w * e_grid).sum()
            pen = (e_pos**2).mean() + (w * e_grid**2).sum()
            with torch.no_grad():
                self.negatives = grid_samples(self.grid, w, self.cell, c.batch_size,
                                              self.generator)
        else:
            self.negatives = self.sampler.sample(model, c.batch_size, self.generator)
            e = model(torch.cat([pos, self.negatives]))
            e_pos, e_negs = e[: len(pos)], e[len(pos):]
            e_neg = e_negs.mean()
            pen = (e_pos**2).mean() + (e_negs**2).mean()
        e_pos = e_pos.mean()
        return e_pos - e_neg + c.l2 * pen, e_pos, e_neg

    def step(self) -> TrainEvent:
        """Run one iteration and return its event (raises if the run is over)."""
        if self.diverged is not None or self.iteration >= self.config.iters:
            raise ValidationError("this run is finished; start a new Trainer")
        c, start = self.config, time.perf_counter()
        lr = self.lr_at(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n = len(self.train_x)
        if c.batch_size >= n:  # full batch: every point, no sampling
            pos = self.train_x
        else:
            pos = self.train_x[torch.randint(n, (c.batch_size,), generator=self.generator)]
        loss, e_pos, e_neg = self._losses(pos)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.model.parameters())
        gnorm = float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(p.grad) for p in params])))
        loss, e_pos, e_neg = loss.detach(), e_pos.detach(), e_neg.detach()
        problem = _blow_up(float(loss), float(e_pos), float(e_neg), gnorm)
        if problem is None:
            if c.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
            self.optimizer.step()
            self._update_average()
        self.iteration += 1
        metrics = None
        if problem is None and (self.iteration == c.iters or (
                c.eval_every and self.iteration % c.eval_every == 0)):
            metrics, problem = self._evaluate()
        self.seconds += time.perf_counter() - start
        if metrics is not None:
            row = metrics.to_dict()  # its "seconds" is the evaluation's own time
            self.history.append({**row, "eval_seconds": row["seconds"], "seconds": self.seconds,
                                 "iteration": self.iteration, "loss": float(loss)})
        message = None
        if problem is not None:
            self.diverged = message = (
                f"training diverged at iteration {self.iteration}: {problem}. The model is "
                "garbage from here on; " + _advice(c))
        elif self.iteration == c.iters:
            message = f"finished {c.iters} iterations in {self.seconds:.1f} s"
        return TrainEvent(self.iteration, c.iters, self.seconds, float(loss), float(e_pos),
                          float(e_neg), gnorm, lr, self.negatives.detach().clone(), metrics,
                          problem is not None, message, c.method)

    def _evaluate(self) -> tuple[ExactMetrics | None, str | None]:
        try:
            m = self.evaluator(self.eval_model, self.iteration, self.negatives,
                               None if self.ema_model is None else self.model)
        except ValidationError as err:
            return None, f"the exact density could not be computed ({err})"
        self.last_metrics = m
        if not math.isfinite(m.nll_train):
            return m, "the train NLL is not finite"
        if m.nll_train > self.log_area + self.config.diverge_nats:
            return m, (f"the exact train NLL is {m.nll_train:.4g} nats, "
                       f"{m.nll_train - self.log_area:.3g} worse than a uniform density on the "
                       "box: p_theta has put its mass away from the data, where the negatives "
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
        while (self.diverged is None and self.iteration < self.config.iters
               and (n_iters is None or done < n_iters)):
            event = self.step()
            done += 1
            yield event

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
                "sampler": {} if self.sampler is None else self.sampler.state_dict(),
                "negatives": self.negatives.clone(), "diverged": self.diverged}

    def load_state(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state` returned (the live weights included)."""
        self.iteration, self.seconds = int(state["iteration"]), float(state["seconds"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        if self.sampler is not None:
            self.sampler.load_state_dict(state["sampler"])
        self.negatives = state["negatives"].clone()
        self.diverged = state["diverged"]

    def save(self, path: str, metrics: list[dict] | None = None) -> None:
        """Write a resumable checkpoint (see :mod:`ebmcore.ebm.checkpoint`)."""
        from ebmcore.ebm.checkpoint import save_checkpoint

        if not isinstance(self.model, MLPEnergy):
            raise ValidationError("only MLPEnergy models can be checkpointed")
        save_checkpoint(path, method=self.config.method, model=self.eval_model,
                        config=self.config.to_dict(), dataset=self.dataset,
                        metrics=self.history if metrics is None else metrics,
                        trainer_state=self.state())

    @classmethod
    def resume(cls, path: str, dataset: Dataset | None = None) -> Trainer:
        """A trainer continued from a checkpoint written by :meth:`save`."""
        from ebmcore.ebm.checkpoint import load_checkpoint

        ck = load_checkpoint(path)
        if ck.method not in METHODS or ck.trainer_state is None:
            raise ValidationError(f"{path}: not a resumable {'/'.join(METHODS)} checkpoint")
        cfg = dict(ck.config)
        cfg["betas"] = tuple(cfg["betas"])
        trainer = cls(dataset or ck.dataset(), TrainConfig(**cfg), ck.model_config)
        trainer.eval_model.load_state_dict(ck.state_dict)  # the average, or the weights
        trainer.load_state(ck.trainer_state)
        trainer.history = list(ck.metrics)
        return trainer


def _scale_first_layer(model: MLPEnergy, gain: float) -> None:
    """Multiply the first layer's initial weights and biases by ``gain``.

    The MLP sees the box mapped to ``[-1, 1]^2``; PyTorch's default init gives
    first-layer features that vary on the scale of the whole box, and an MLP
    learns fine detail slowly from there (spectral bias).  A gain of a few
    starts it with features a few times finer, which the data need (the
    mixture's components are 1/14 of the box wide).
    """
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        first.weight.mul_(gain)
        first.bias.mul_(gain)


def _blow_up(loss: float, e_pos: float, e_neg: float, gnorm: float) -> str | None:
    if not all(math.isfinite(v) for v in (loss, e_pos, e_neg)):
        return "the energies became non-finite"
    if not math.isfinite(gnorm):
        return "the gradient became non-finite"
    if max(abs(e_pos), abs(e_neg)) > ENERGY_LIMIT:
        return (f"the energies exploded (data {e_pos:.3g}, negatives {e_neg:.3g}; "
                f"limit {ENERGY_LIMIT:g})")
    if gnorm > GRAD_LIMIT:
        return f"the gradient norm exploded ({gnorm:.3g} > {GRAD_LIMIT:g})"
    return None


def _advice(c: TrainConfig) -> str:
    if c.method == "exact":
        return "lower the learning rate"
    return ("the Langevin chains do not represent p_theta: lower eps, raise K, add the L2 "
            "penalty, or use persistent chains")


def train(dataset: Dataset, config: TrainConfig | None = None,
          model_config: ModelConfig | None = None) -> tuple[Trainer, TrainEvent]:
    """Run to the end; return the trainer and its last event."""
    trainer = Trainer(dataset, config, model_config)
    event = None
    for event in trainer.run():  # noqa: B007 - draining: only the last event matters
        pass
    assert event is not None
    return trainer, event
