"""Run many chains as a generator of progress events, with bounded memory.

``run`` yields a :class:`Progress` every ``report_every`` steps; the UI draws
each one live, a script drains them (:func:`sample`).  Stopping is breaking
the loop: every event carries the trace recorded so far.

Memory stays bounded whatever the request: positions of all chains are kept
every ``thin`` steps (``thin`` chosen so at most ``max_points`` positions are
stored), and full paths only for the first ``keep_paths`` chains.  A chain
whose position becomes non-finite, or runs far outside the box, is frozen at
its last recorded position and reported; nothing non-finite is recorded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .energies import Box, Target, ValidationError
from .samplers import SAMPLERS, init_state

__all__ = ["MAX_CHAINS", "MAX_STEPS", "Progress", "SampleConfig", "Trace", "run", "sample"]

MAX_CHAINS = 2_000_000  # more would not fit the memory budget of a laptop with margins
MAX_STEPS = 1_000_000  # per run
INITS = ("uniform", "gaussian", "point")


@dataclass(frozen=True)
class SampleConfig:
    """Everything that defines a sampling run (with ``seed``, it is reproducible)."""

    sampler: str = "sgld"  # key of SAMPLERS: sgld, mala, hmc
    step_size: float = 0.3  # eps; for HMC the leapfrog step
    steps: int = 1000  # transitions per chain
    chains: int = 500  # independent chains, vectorised
    noise: bool = True  # False: SGLD without noise = gradient descent to a mode (MAP)
    temperature: float = 1.0  # T > 0 samples p^(1/T)
    n_leapfrog: int = 10  # HMC only
    burn_in: int = 0  # steps excluded from statistics (still drawn)
    seed: int = 0  # seeds the one torch.Generator used for everything
    dtype: str = "float32"  # float32 or float64
    device: str = "cpu"  # cpu or cuda
    init: str = "uniform"  # uniform over the box, gaussian, or point
    init_point: tuple[float, float] = (0.0, 0.0)  # centre for gaussian / point init
    init_std: float = 1.0  # std of the gaussian init
    keep_paths: int = 16  # chains whose full path is kept for drawing
    max_points: int = 2_000_000  # cap on stored positions (chains x recorded steps)
    report_every: int = 0  # steps between events; 0 = about 50 events per run

    def validate(self) -> SampleConfig:
        """Return self, or raise ValidationError with a message for users."""
        if self.sampler not in SAMPLERS:
            raise ValidationError(f"unknown sampler {self.sampler!r}; choose {', '.join(SAMPLERS)}")
        for name in ("step_size", "temperature", "init_std"):
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
        if not 1 <= self.n_leapfrog <= 1000:
            raise ValidationError(f"leapfrog steps must be in [1, 1000], got {self.n_leapfrog}")
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
        if not 0 <= self.keep_paths <= 1000 or self.max_points < 1000:
            raise ValidationError("keep_paths must be in [0, 1000] and max_points >= 1000")
        return self

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


def _initial_points(target: Target, cfg: SampleConfig, gen: torch.Generator) -> Tensor:
    n, kw = cfg.chains, {"generator": gen, "dtype": cfg.torch_dtype, "device": cfg.device}
    x0, x1, y0, y1 = target.box
    if cfg.init == "uniform":
        u = torch.rand(n, 2, **kw)
        return torch.stack([x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]], 1)
    centre = torch.tensor(cfg.init_point, dtype=cfg.torch_dtype, device=cfg.device)
    if cfg.init == "point":
        return centre.expand(n, 2).clone()
    return centre + cfg.init_std * torch.randn(n, 2, **kw)


def _far_limit(box: Box) -> float:
    x0, x1, y0, y1 = box
    return 100.0 * max(x1 - x0, y1 - y0, abs(x0), abs(x1), abs(y0), abs(y1))


def run(target: Target, config: SampleConfig, x0: Tensor | None = None) -> Iterator[Progress]:
    """Run ``config.chains`` chains on ``target``, yielding progress events.

    Args:
        target: the energy (and its box, used for the initial points and to
            detect runaway chains).
        config: the run's settings; validated first.
        x0: optional ``(N, 2)`` initial points, overriding ``config.init``.
    """
    cfg = config.validate()
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    x = _initial_points(target, cfg, gen) if x0 is None else x0.to(cfg.device, cfg.torch_dtype)
    if x.shape != (cfg.chains, 2):
        raise ValidationError(f"initial points must have shape ({cfg.chains}, 2)")
    kernel = SAMPLERS[cfg.sampler]
    kw = {"step_size": cfg.step_size, "temperature": cfg.temperature if cfg.noise else 0.0,
          "grad": target.grad}
    if cfg.sampler == "hmc":
        kw["n_leapfrog"] = cfg.n_leapfrog
    n, t_total = cfg.chains, cfg.steps
    thin = max(1, math.ceil((t_total + 1) * n / cfg.max_points))
    n_frames = t_total // thin + 1
    k = min(cfg.keep_paths, n)
    path_thin = max(1, math.ceil((t_total + 1) / 5000))
    n_path = t_total // path_thin + 1
    every = cfg.report_every or max(1, t_total // 50)
    positions = torch.empty(n_frames, n, 2, dtype=cfg.torch_dtype)
    frame_steps = torch.empty(n_frames, dtype=torch.long)
    mean_energy = torch.empty(n_frames, dtype=torch.float64)
    paths = torch.empty(k, n_path, 2, dtype=cfg.torch_dtype)
    path_steps = torch.arange(n_path) * path_thin
    alive = torch.ones(n, dtype=torch.bool, device=cfg.device)
    frozen = x.clone()
    first_bad: int | None = None
    acc_sum, acc_count = 0.0, 0
    far = _far_limit(target.box)
    state = init_state(target.energy, x, target.grad)
    start = time.perf_counter()

    def check(step: int) -> None:
        # Freeze chains that left the finite world; keep the others' position.
        nonlocal state, first_bad
        bad = ~(torch.isfinite(state.x).all(1) & torch.isfinite(state.energy)
                & (state.x.abs() < far).all(1))
        newly = bad & alive
        if bool(newly.any()):
            first_bad = step if first_bad is None else first_bad
            alive.logical_and_(~newly)
            col = (~alive)[:, None]
            xs = torch.where(col, frozen, state.x)
            state = replace(state, x=xs, energy=torch.where(~alive, torch.zeros_like(state.energy),
                                                            state.energy),
                            grad=torch.where(col, torch.zeros_like(state.grad), state.grad))
        frozen.copy_(torch.where((~alive)[:, None], frozen, state.x))

    def record(step: int, frame: int) -> None:
        positions[frame] = frozen.cpu()
        frame_steps[frame] = step
        mean_energy[frame] = float(state.energy[alive].double().mean())

    def trace(step: int) -> Trace:
        f, p = step // thin + 1, step // path_thin + 1
        if not alive.any():  # the frame at `step` was not recorded: nothing finite to show
            f = (step - 1) // thin + 1
        acc = acc_sum / acc_count if acc_count else None
        return Trace(cfg, frozen.cpu().clone(), alive.cpu().clone(), frame_steps[:f],
                     positions[:f], mean_energy[:f], thin, path_steps[:p], paths[:, :p], acc,
                     first_bad, time.perf_counter() - start)

    check(0)
    record(0, 0)
    paths[:, 0] = frozen[:k].cpu()
    for step in range(1, t_total + 1):
        state, info = kernel(target.energy, state, gen, **kw)
        on_frame, on_path = step % thin == 0, step % path_thin == 0
        if on_frame or on_path or step % every == 0 or step == t_total:
            check(step)
            if not alive.any():  # every chain diverged: nothing left to run
                yield Progress(step, t_total, trace(step))
                return
        if info.accept_prob is not None and step > cfg.burn_in:
            acc_sum += float(info.accept_prob[alive].sum())
            acc_count += int(alive.sum())
        if on_frame:
            record(step, step // thin)
        if on_path:
            paths[:, step // path_thin] = frozen[:k].cpu()
        if step % every == 0 or step == t_total:
            yield Progress(step, t_total, trace(step))


def sample(target: Target, config: SampleConfig, x0: Tensor | None = None) -> Trace:
    """Drain :func:`run` and return the final trace."""
    events = run(target, config, x0)
    last = next(events)
    for last in events:  # noqa: B007 - draining: only the last event matters
        pass
    return last.trace
