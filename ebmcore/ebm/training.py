"""Maximum-likelihood training of a 2D energy model: the MLE objective of the training loop.

``grad_theta log p_theta(x) = -grad_theta E(x) + E_{x ~ p_theta}[grad_theta E(x)]``, so
every method minimises the surrogate ``E_data[E] - E_neg[E]`` (plus an optional L2
penalty ``l2 * (E_data[E^2] + E_neg[E^2])``), whose gradient is minus the
log-likelihood gradient when the negatives are draws from ``p_theta``.  The methods
differ only in the negatives (:mod:`ebmcore.ebm.negatives`): Langevin chains for
``short-run``, ``persistent`` and ``replay``; the grid for ``exact``, whose weighted
negative phase has exactly the gradient of ``log Z_grid``, the reference for the others.
The loop itself (schedule, average, metrics, events, checkpoints) is
:class:`ebmcore.ebm.loop.TrainingLoop`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from ebmcore.budget import DEFAULT_BUDGET, Budget, check, training_cost
from ebmcore.defaults import ANY, DEFAULT_METHOD, METHOD_DEFAULTS, TRAINING, training_defaults
from ebmcore.ebm.config import (
    LoopConfig,
    check_choice,
    check_ints,
    check_loop,
    check_positive,
    check_ranges,
)
from ebmcore.ebm.data import Dataset
from ebmcore.ebm.loop import TrainEvent, TrainingLoop, run_to_end
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.negatives import (
    BOUNDARIES,
    KERNELS,
    NegativeSampler,
    PersistentSampler,
    ReplaySampler,
    ShortRunSampler,
    grid_samples,
    grid_weights,
)
from ebmcore.energies import ValidationError
from ebmcore.exact.density import grid_points
from ebmcore.sampling.kernels import noise_std

__all__ = ["METHODS", "METHOD_DEFAULTS", "TrainConfig", "TrainEvent", "Trainer", "train"]

METHODS = tuple(TRAINING)  # short-run, persistent, replay, exact


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """Everything that defines a training run; ``None`` means "the method's default"."""

    method: str = DEFAULT_METHOD  # short-run, persistent, replay or exact
    iters: int | None = None  # training iterations
    lr: float | None = None  # Adam learning rate (cosine-decayed to lr * lr_final)
    betas: tuple[float, float] | None = None  # Adam betas (0 momentum for chains: no lag)
    batch_size: int | None = None  # data points (and negatives) per iteration
    step_size: float | None = None  # Langevin eps
    steps: int | None = None  # Langevin steps K per iteration
    # False: the chains descend the energy without noise.  A number is read as the older
    # convention, a noise std sigma (None = sqrt(2 eps)): temperature sigma^2 / (2 eps).
    noise: bool | float | None = True
    temperature: float = 1.0  # T: the chains sample p_theta^(1/T); other than 1 TEMPERS the fit
    ema: float | None = None  # weight averaging decay (0 = off); metrics and saves use the average
    chains: int | None = None  # persistent chains (default: batch_size)
    buffer_size: int | None = None  # replay buffer size (None: the default per data set)
    restart: float | None = None  # replay: fraction of negatives restarted from uniform noise
    grid: int = 64  # exact method: quadrature grid side for the training gradient
    init_gain: float | None = None  # first layer's initial weights x this: finer initial features
    boundary: str = "reflect"  # how SGLD chains stay in the box: reflect or clamp
    kernel: str | None = None  # mala (Metropolis-adjusted SGLD: exact, stable) or plain sgld
    diverge_nats: float = 10.0  # train NLL this far above uniform-on-box = diverged
    l2: float | None = None  # L2 penalty weight on energies (None: the default per data set)

    def resolved(self, dataset: str = ANY) -> TrainConfig:
        """A copy with every ``None`` replaced by the method's default on ``dataset``."""
        check_choice("method", self.method, METHODS)
        over = self.missing(training_defaults(self.method, dataset))
        if self.chains is None:
            over["chains"] = over.get("batch_size", self.batch_size)
        if not isinstance(self.noise, bool):  # a noise std: its temperature
            sigma = self.noise
            if sigma is not None and not (math.isfinite(sigma) and sigma >= 0):
                raise ValidationError(f"noise must be >= 0, got {sigma}")
            if sigma is not None and sigma > 1e6:  # its square overflows the temperature
                raise ValidationError(f"noise must be at most 1e6, got {sigma:.3g}")
            over["noise"] = sigma is None or sigma > 0
            if sigma:
                over["temperature"] = sigma**2 / (2.0 * over.get("step_size", self.step_size))
        if self.kernel is None and not over.get("noise", self.noise):  # MALA needs noise: SGLD
            over["kernel"] = "sgld"
        return replace(self, **over)

    @property
    def chain_temperature(self) -> float:
        """The temperature the chains run at: 0 with the noise off."""
        return self.temperature if self.noise else 0.0

    @property
    def noise_scale(self) -> float:
        """The Langevin noise std actually used, ``sqrt(2 eps T)``."""
        return noise_std(self.step_size, self.chain_temperature)

    def validate(self, budget: Budget = DEFAULT_BUDGET, *, model: ModelConfig | None = None,
                 flag: str = "", dataset: str = ANY) -> TrainConfig:
        """Return a copy resolved for ``dataset`` and checked, or raise ValidationError.

        The run is priced for ``model`` (default architecture when None) and refused above
        ``budget``; ``flag`` names how the caller can raise it.
        """
        c = self.resolved(dataset)
        check_positive(c, ("lr", "step_size", "temperature"))
        check_ints(c, (("iters", 1, 10_000_000), ("batch_size", 1, 100_000),
                       ("chains", 1, 1_000_000), ("eval_every", 0, 10_000_000),
                       ("seed", 0, 2**63 - 1)))
        if c.method == "replay" or c.buffer_size is not None:  # the other methods have none
            check_ints(c, (("buffer_size", 1, 10_000_000),))
        if c.method != "exact":
            check_ints(c, (("steps", 1, 10_000),))
        # the chains' noise std is sqrt(2 eps T), their drift eps * grad E, in float32
        check_ranges(c, (("step_size", "(0", "1e6]", c.step_size <= 1e6),
                         ("temperature", "(0", "1e6]", c.temperature <= 1e6)))
        check_loop(c)
        if c.method == "replay" or c.restart is not None:
            check_ranges(c, (("restart", 0, 1, isinstance(c.restart, (int, float))
                              and 0 <= c.restart <= 1),))
        if not (c.grid % 2 == 0 and 8 <= c.grid <= 1024):
            raise ValidationError(f"grid must be an even number in [8, 1024], got {c.grid}")
        if c.kernel not in KERNELS:
            raise ValidationError(f"kernel must be {' or '.join(KERNELS)}, got {c.kernel!r}")
        if c.kernel == "mala" and not c.noise:
            raise ValidationError("MALA needs noise > 0 (a positive temperature)")
        if c.boundary not in BOUNDARIES:
            raise ValidationError(
                f"boundary must be {' or '.join(BOUNDARIES)}, got {c.boundary!r}")
        m = model or ModelConfig()
        exact = c.method == "exact"
        check(training_cost(iters=c.iters, points=0 if exact else
                            (c.chains if c.method == "persistent" else c.batch_size),
                            steps=0 if exact else c.steps, params=m.num_parameters,
                            width=m.width, depth=m.depth, grid=c.grid if exact else 0,
                            buffer=c.buffer_size if c.method == "replay" else 0), budget,
              flag=flag)
        return c

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (lists back to tuples; older checkpoints' noise std)."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        if kw.get("betas") is not None:
            kw["betas"] = tuple(kw["betas"])  # type: ignore[arg-type]
        return cls(**kw)  # type: ignore[arg-type]


def _make_sampler(c: TrainConfig, box, gen: torch.Generator) -> NegativeSampler | None:
    kw = {"steps": c.steps, "step_size": c.step_size, "temperature": c.chain_temperature,
          "boundary": c.boundary, "kernel": c.kernel}
    if c.method == "short-run":
        return ShortRunSampler(box, **kw)
    if c.method == "persistent":
        return PersistentSampler(box, c.chains, gen, **kw)
    if c.method == "replay":
        return ReplaySampler(box, c.buffer_size, c.restart, gen, **kw)
    return None


class Trainer(TrainingLoop):
    """A resumable MLE run: ``for event in trainer.run(n): ...`` (see :class:`TrainingLoop`)."""

    config_class = TrainConfig
    methods = METHODS

    def _setup(self) -> None:
        c = self.config
        self.sampler = _make_sampler(c, self.box, self.generator)
        if c.method == "exact":
            x0, x1, y0, y1 = self.box
            self.grid = grid_points(self.box, c.grid, dtype=torch.float32)[2]  # (G, 2)
            self.cell = ((x1 - x0) / c.grid, (y1 - y0) / c.grid)
            self.log_cell = math.log(self.cell[0] * self.cell[1])

    @property
    def temperature(self) -> float:
        return self.config.chain_temperature

    def _objective(self) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        n = len(self.train_x)
        if self.config.batch_size >= n:  # full batch: every point, no sampling
            pos = self.train_x
        else:
            pos = self.train_x[torch.randint(n, (self.config.batch_size,),
                                             generator=self.generator)]
        return (*self._losses(pos), {})

    def _losses(self, pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Surrogate loss, mean positive and negative energy (all scalars)."""
        c, model = self.config, self.model
        if c.method == "exact":
            e_grid = model(self.grid)
            w = grid_weights(e_grid)
            e_pos = model(pos)
            e_neg = (w * e_grid).sum()
            pen = (e_pos**2).mean() + (w * e_grid**2).sum() if c.l2 else None
            with torch.no_grad():
                self.negatives = grid_samples(self.grid, w, self.cell, c.batch_size,
                                              self.generator)
        else:
            self.negatives = self.sampler.sample(model, c.batch_size, self.generator)
            e = model(torch.cat([pos, self.negatives]))
            e_pos, e_negs = e[: len(pos)], e[len(pos):]
            e_neg = e_negs.mean()
            pen = (e_pos**2).mean() + (e_negs**2).mean() if c.l2 else None
        e_pos = e_pos.mean()
        loss = e_pos - e_neg  # l2 = 0: no penalty term in the graph
        return (loss if pen is None else loss + c.l2 * pen), e_pos, e_neg

    def _advice(self) -> str:
        if self.config.method == "exact":
            return "lower the learning rate"
        return ("the Langevin chains do not represent p_theta: lower eps, raise K, add the L2 "
                "penalty, or use persistent chains")

    state_keys = ("sampler",)

    def _state_extra(self) -> dict[str, object]:
        return {"sampler": {} if self.sampler is None else self.sampler.state_dict()}

    def _check_resumed(self) -> None:
        super()._check_resumed()
        held = getattr(self.sampler, "chains", getattr(self.sampler, "buffer", None))
        want = {"persistent": self.config.chains, "replay": self.config.buffer_size}
        if held is not None and self.config.method in want and (
                held.shape != (want[self.config.method], 2) or not bool(held.isfinite().all())):
            raise ValueError("negatives")

    def _load_extra(self, state: dict[str, object]) -> None:
        if self.sampler is not None:
            self.sampler.load_state_dict(state["sampler"])


def train(dataset: Dataset, config: TrainConfig | None = None,
          model_config: ModelConfig | None = None) -> tuple[Trainer, TrainEvent]:
    """Run to the end; return the trainer and its last event."""
    trainer = Trainer(dataset, config, model_config)
    return trainer, run_to_end(trainer)
