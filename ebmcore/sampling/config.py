"""What a sampling run is and what it yields: :class:`SampleConfig`, :class:`Trace`,
:class:`Progress`, and the limits every run is validated against."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.budget import DEFAULT_BUDGET, Budget, check, sampling_cost
from ebmcore.energies import ValidationError
from ebmcore.sampling.annealed import MAX_LEVELS
from ebmcore.sampling.kernels import SAMPLERS

__all__ = ["CHECK_EVERY", "CHUNK_CHAIN_STEPS", "CHUNK_SECONDS", "INITS", "MAX_CHAINS",
           "MAX_STEPS", "VIEW_STD", "Progress", "SampleConfig", "Trace", "view_gaussian"]

MAX_CHAINS = 2_000_000  # more would not fit the memory budget of a laptop with margins
MAX_STEPS = 1_000_000  # per run
MAX_THREADS = 64  # kernel threads of one run
# Steps between divergence checks of the fused loop: a blow-up is reported within this many
# steps of its first step, and a check (a few passes over N x 2) costs < 1/10 of the steps.
CHECK_EVERY = 32
# Between two events at most this many chain-steps (x gradient evaluations) run: about 0.1 s
# of one core, so a consumer that stops (a closed tab, a replaced run) waits no longer. Runs
# with more chains are checked more often; the period depends on the config only, so a seed
# still reproduces a run bit for bit.
CHUNK_CHAIN_STEPS = 2_000_000
CHUNK_SECONDS = 0.1  # an event also comes at the first check after this much wall time
INITS = ("uniform", "view", "gaussian", "point")
VIEW_STD = 1 / 12  # the "view" start's std, as a share of its box's shorter side


def view_gaussian(box: tuple[float, float, float, float]) -> tuple[tuple[float, float], float]:
    """Centre and std of the "view" start on ``box``: its centre, a twelfth of its shorter
    side (chains start over the mass, not in the stiff tails where MALA sticks)."""
    x0, x1, y0, y1 = box
    return ((x0 + x1) / 2, (y0 + y1) / 2), VIEW_STD * min(x1 - x0, y1 - y0)


@dataclass(frozen=True)
class SampleConfig:
    """Everything that defines a sampling run (with ``seed``, it is reproducible)."""

    sampler: str = "sgld"  # key of SAMPLERS: sgld, mala, hmc, underdamped, annealed
    step_size: float = 0.3  # eps; for HMC the leapfrog step
    steps: int = 1000  # transitions per chain
    chains: int = 500  # independent chains, vectorised
    noise: bool = True  # False: SGLD without noise = gradient descent to a mode (MAP)
    temperature: float = 1.0  # T > 0 samples p^(1/T)
    n_leapfrog: int = 10  # HMC only
    friction: float = 1.0  # underdamped only: gamma; large gamma is overdamped Langevin
    levels: int = 5  # annealed only: noise levels, the last one the target itself
    sigma_max: float = 2.0  # annealed only: widest smoothing; each next level halves it
    burn_in: int = 0  # steps excluded from statistics (still drawn)
    seed: int = 0  # seeds the one torch.Generator used for everything
    dtype: str = "float32"  # float32 or float64
    device: str = "cpu"  # cpu or cuda
    init: str = "uniform"  # uniform over init_box, view (a Gaussian over it), gaussian, point
    init_box: tuple[float, float, float, float] | None = None  # uniform/view box; None: target's
    init_point: tuple[float, float] = (0.0, 0.0)  # centre for gaussian / point init
    init_std: float = 1.0  # std of the gaussian init
    keep_paths: int = 16  # chains whose full path is kept for drawing
    max_points: int = 2_000_000  # cap on stored positions (chains x recorded steps)
    report_every: int = 0  # steps between events; 0 = about 50 events per run
    fused: bool = True  # False: the per-step reference kernels, same random numbers (checks)
    threads: int = 1  # CPU threads the compiled kernels share the chains among (same numbers)

    def validate(self, budget: Budget = DEFAULT_BUDGET, *, flag: str = "") -> SampleConfig:
        """Return self, or raise ValidationError with a message for users.

        The run is priced (:func:`ebmcore.budget.sampling_cost`) and refused above
        ``budget``; ``flag`` names how the caller can raise it.
        """
        if self.sampler not in SAMPLERS:
            raise ValidationError(f"unknown sampler {self.sampler!r}; choose {', '.join(SAMPLERS)}")
        for name in ("step_size", "temperature", "init_std", "friction", "sigma_max"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                label = name.replace("_", " ")
                raise ValidationError(f"{label} must be a finite number > 0, got {v}")
        if not 1 <= self.chains <= MAX_CHAINS:
            raise ValidationError(f"chains must be in [1, {MAX_CHAINS:,}], got {self.chains}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise ValidationError(f"steps must be in [1, {MAX_STEPS:,}], got {self.steps}")
        if not 0 <= self.burn_in < self.steps:
            raise ValidationError(f"burn-in must be in [0, steps), got {self.burn_in}")
        if not 1 <= self.threads <= MAX_THREADS:
            raise ValidationError(f"threads must be in [1, {MAX_THREADS}], got {self.threads}")
        if not 1 <= self.n_leapfrog <= 1000:
            raise ValidationError(f"leapfrog steps must be in [1, 1000], got {self.n_leapfrog}")
        if not 1 <= self.levels <= MAX_LEVELS:
            raise ValidationError(f"levels must be in [1, {MAX_LEVELS}], got {self.levels}")
        if not self.noise and self.sampler != "sgld":
            raise ValidationError("noise off (gradient descent to a mode) applies to SGLD only")
        if self.dtype not in ("float32", "float64"):
            raise ValidationError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValidationError(f"device must be cpu or cuda, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValidationError("device cuda requested but CUDA is not available here")
        if self.init not in INITS:
            raise ValidationError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if not all(math.isfinite(v) for v in self.init_point):
            raise ValidationError("init point must be finite")
        if self.init_box is not None:
            b = tuple(self.init_box)
            if not (len(b) == 4 and all(math.isfinite(v) for v in b) and b[0] < b[1]
                    and b[2] < b[3]):
                raise ValidationError("init box must be 4 finite numbers xmin < xmax, "
                                      f"ymin < ymax, got {b}")
        if not 0 <= self.keep_paths <= 1000 or self.max_points < 1000:
            raise ValidationError("keep_paths must be in [0, 1000] and max_points >= 1000")
        self._check_products()
        check(sampling_cost(chains=self.chains, steps=self.steps,
                            grads_per_step=self.grads_per_step,
                            keep_paths=self.keep_paths, max_points=self.max_points,
                            itemsize=8 if self.dtype == "float64" else 4), budget, flag=flag)
        return self

    @property
    def grads_per_step(self) -> int:
        """Gradient evaluations per transition: HMC's leapfrog steps, else 1."""
        return self.n_leapfrog if self.sampler == "hmc" else 1

    def _check_products(self) -> None:
        """The products the kernels form stay finite in the run's dtype.

        The noise std is ``sqrt(2 eps T)`` and the drift ``eps * grad``; finite factors can
        still overflow together (``eps = 1e308``), which would make every chain diverge at
        the first step with nothing learnt.
        """
        big = torch.finfo(self.torch_dtype).max
        for label, v in (("step size", self.step_size), ("temperature", self.temperature),
                         ("step size x temperature", 2.0 * self.step_size * self.temperature),
                         ("init std", self.init_std), ("friction", self.friction),
                         ("step size x friction", self.step_size * self.friction),
                         ("sigma max", self.sigma_max)):
            if not (math.isfinite(v) and v < big ** 0.5):
                raise ValidationError(f"{label} is too large for {self.dtype} "
                                      f"(at most {big ** 0.5:.1e}), got {v:.3g}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32


@dataclass(frozen=True)
class Trace:
    """What a run recorded (views into its buffers; all finite)."""

    config: SampleConfig  # the run's settings
    x: Tensor  # (N, 2) current positions (diverged chains frozen)
    alive: Tensor  # (N,) bool, False for diverged chains
    steps: Tensor  # (S,) step index of each recorded frame (0 = initial)
    positions: Tensor  # (S, N, 2) all chains every `thin` steps
    mean_energy: Tensor  # (S,) float64 mean energy over live chains per frame
    thin: int  # steps between recorded frames
    path_steps: Tensor  # (P,) step index of each path point
    paths: Tensor  # (K, P, 2) full paths of the first K chains
    acceptance: float | None  # mean acceptance after burn-in (None for SGLD)
    first_diverged_step: int | None  # first step at which a chain was seen diverged
    seconds: float  # wall time so far

    @property
    def n_diverged(self) -> int:
        return int((~self.alive).sum())

    @property
    def done(self) -> int:
        """Number of steps run."""
        return int(self.steps[-1]) if len(self.steps) else 0

    def kept(self) -> Tensor:
        """``(S', N', 2)`` frames after burn-in, live chains only: input to statistics."""
        keep = self.steps >= self.config.burn_in
        return self.positions[keep][:, self.alive]

    def divergence_message(self) -> str | None:
        """A sentence for users, or None when every chain stayed finite."""
        if self.first_diverged_step is None:
            return None
        n, total = self.n_diverged, self.alive.numel()
        return (f"{n} of {total} chains diverged (first seen at step {self.first_diverged_step}): "
                "lower the step size")


@dataclass(frozen=True)
class Progress:
    """One event of a run."""

    step: int  # steps done so far
    total: int  # steps requested
    trace: Trace  # everything recorded so far

    @property
    def finished(self) -> bool:
        """True on the last event: all steps done, or every chain diverged."""
        return self.step >= self.total or not bool(self.trace.alive.any())
