"""Run many chains as a generator of progress events, with bounded memory.

``run`` yields a :class:`Progress` every ``report_every`` steps; the UI draws
each one live, a script drains them (:func:`sample`).  Stopping is breaking
the loop: every event carries the trace recorded so far.

Memory stays bounded whatever the request: positions of all chains are kept
every ``thin`` steps (``thin`` chosen so at most ``max_points`` positions are
stored), and full paths only for the first ``keep_paths`` chains.  A chain
whose position becomes non-finite, or runs far outside the box, is frozen at
its last recorded position and reported; nothing non-finite is recorded.

Runs are fused between checks (every :data:`CHECK_EVERY` steps at most), and recorded
frames and paths are written as the chains advance.  On the CPU, SGLD, MALA, HMC and
underdamped Langevin on the registry targets run the compiled kernels of
:mod:`ebmcore.sampling.compiled_run`; elsewhere SGLD and underdamped Langevin on a
closed-form gradient run the in-place torch loops (:mod:`ebmcore.sampling.fast`,
:func:`ebmcore.sampling.underdamped.underdamped_loop`) and the rest the reference kernels,
chunked.  Every path draws the same random numbers as the reference kernels
(``fused=False``), step by step, so a seed gives the same run on all of them (to rounding).
The seed's torch generator draws the initial points; on the CPU the steps' noise then comes
from a counter-based stream keyed by one draw from it (:mod:`ebmcore.sampling.noise`:
2-3x torch's normals per second, and no call per step on the compiled paths).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator

import torch
from torch import Tensor

from ebmcore.budget import DEFAULT_BUDGET, Budget
from ebmcore.energies import Box, Target, ValidationError
from ebmcore.sampling.annealed import annealed_init, annealing
from ebmcore.sampling.compiled_jit import AVAILABLE as STREAM
from ebmcore.sampling.compiled_run import compiled_spec, initial_state, run_compiled
from ebmcore.sampling.config import (
    CHECK_EVERY,
    CHUNK_CHAIN_STEPS,
    CHUNK_SECONDS,
    INITS,
    MAX_CHAINS,
    MAX_STEPS,
    Progress,
    SampleConfig,
    Trace,
    view_gaussian,
)
from ebmcore.sampling.fast import InplaceGrad, inplace_grad, sgld_loop
from ebmcore.sampling.kernels import SAMPLERS, SamplerState, init_state
from ebmcore.sampling.noise import NoiseStream, Rng
from ebmcore.sampling.underdamped import underdamped_init, underdamped_loop

# the records live in ebmcore.sampling.config; re-exported here for every caller
__all__ = ["INITS", "MAX_CHAINS", "MAX_STEPS", "Progress", "SampleConfig", "Trace",
           "initial_points", "run", "sample", "steps_rng"]

def initial_points(target: Target, cfg: SampleConfig, gen: torch.Generator) -> Tensor:
    """``(N, 2)`` starting points as ``cfg.init`` says, drawn from ``gen``: uniform over
    ``cfg.init_box`` (the target's box when None), a Gaussian over it (``view``), a given
    Gaussian, or one point."""
    n, kw = cfg.chains, {"generator": gen, "dtype": cfg.torch_dtype, "device": cfg.device}
    box = cfg.init_box or target.box
    if cfg.init == "uniform":
        return Box.of(box).uniform(n, **kw)
    point, std = view_gaussian(box) if cfg.init == "view" else (cfg.init_point, cfg.init_std)
    centre = torch.tensor(point, dtype=cfg.torch_dtype, device=cfg.device)
    if cfg.init == "point":
        return centre.expand(n, 2).clone()
    return centre + std * torch.randn(n, 2, **kw)


def steps_rng(gen: torch.Generator, cfg: SampleConfig) -> Rng:
    """What a run's steps draw from, once its initial state was drawn from ``gen``: on the
    CPU a :class:`~ebmcore.sampling.noise.NoiseStream` keyed by one draw from ``gen``;
    elsewhere (or without numba) ``gen`` itself."""
    return NoiseStream.from_generator(gen) if cfg.device == "cpu" and STREAM else gen


def _far_limit(box: Box) -> float:
    x0, x1, y0, y1 = box
    return 100.0 * max(x1 - x0, y1 - y0, abs(x0), abs(x1), abs(y0), abs(y1))


class _Recorder:
    """The run's buffers, sized once from the config; all memory is allocated here."""

    def __init__(self, cfg: SampleConfig, x: Tensor, far: float) -> None:
        n, t = cfg.chains, cfg.steps
        self.cfg, self.far = cfg, far
        self.thin = max(1, math.ceil((t + 1) * n / cfg.max_points))
        self.path_thin = max(1, math.ceil((t + 1) / 5000))
        self.k = min(cfg.keep_paths, n)
        self.positions = torch.empty(t // self.thin + 1, n, 2, dtype=cfg.torch_dtype)
        self.frame_steps = torch.empty(t // self.thin + 1, dtype=torch.long)
        self.mean_energy = torch.empty(t // self.thin + 1, dtype=torch.float64)
        n_path = t // self.path_thin + 1
        self.paths = torch.empty(self.k, n_path, 2, dtype=cfg.torch_dtype, device=cfg.device)
        self.path_steps = torch.arange(n_path) * self.path_thin
        self.alive = torch.ones(n, dtype=torch.bool, device=cfg.device)
        self.frozen = x.clone()  # last checked position of every chain
        self.first_bad: int | None = None
        self.frames = 0
        self.acc_sum, self.acc_count = 0.0, 0
        self.n_live = cfg.chains  # live chains at the last check
        self.start = time.perf_counter()

    def check(self, state: SamplerState, step: int) -> SamplerState:
        """Freeze chains that left the finite world; return the state with them frozen."""
        ok = (torch.isfinite(state.x).all(1) & torch.isfinite(state.energy)
              & (state.x.abs() < self.far).all(1))
        newly = ~ok & self.alive
        if bool(newly.any()):
            self.first_bad = step if self.first_bad is None else self.first_bad
            self.alive &= ~newly
            self.n_live = int(self.alive.sum())
            dead = ~self.alive
            state = dataclasses.replace(  # keeps extra fields (velocities, level)
                state, x=torch.where(dead[:, None], self.frozen, state.x),
                energy=state.energy.masked_fill(dead, 0.0),
                grad=state.grad.masked_fill(dead[:, None], 0.0))
        self.frozen = state.x.clone()
        return state

    def check_fused(self, target: Target, x: Tensor, step: int, f0: int,
                    energy_sums: Tensor | None = None, verified: bool = False) -> None:
        """Freeze chains of ``x`` (in place) that left the finite world since the last check.

        Frames ``f0:`` were written by the loop since then: the frozen chains' entries are
        reset to their last checked position, and the frames' mean energies computed (from
        ``energy_sums``, see :meth:`finish_frames`, where the loop summed them).
        ``verified``: the loop checked the live chains itself, and left frozen ones in place.
        """
        n_before = self.n_live
        if verified:
            self.frozen.copy_(x)
            self.finish_frames(target, f0, energy_sums, n_before, step)
            return
        # One reduction decides the usual case; nan compares False, so it fails the test too.
        if not bool(x.abs().amax() < self.far):
            newly = ~(x.abs() < self.far).all(1) & self.alive
            if bool(newly.any()):
                self.first_bad = step if self.first_bad is None else self.first_bad
                self.alive &= ~newly
                self.n_live = int(self.alive.sum())
        if self.n_live < self.alive.numel():
            x.copy_(torch.where(self.alive[:, None], x, self.frozen))
        self.frozen.copy_(x)
        self.finish_frames(target, f0, energy_sums, n_before, step)

    def finish_frames(self, target: Target, f0: int, energy_sums: Tensor | None,
                      n_before: int, step: int) -> None:
        """Frames ``f0:`` written since the last check: hold frozen chains, set mean energies.

        ``energy_sums[f]`` (sums over the chains live at the previous check) are used when no
        chain died in between; otherwise the frames' energies are evaluated in one batch.
        """
        f, n_live = self.frames, self.n_live
        if n_live == 0:  # nothing live to record: the trace ends at the last check
            self.frames = f0
            return
        if f == f0:
            return
        alive = self.alive.cpu()
        if n_live < alive.numel():  # dead chains moved on from their frozen point: hold them
            self.positions[f0:f, ~alive] = self.frozen.cpu()[~alive]
        if energy_sums is not None and n_live == n_before:
            self.mean_energy[f0:f] = (energy_sums[f0:f] / n_live).cpu()
            return
        frames = self.positions[f0:f, alive].to(self.frozen.device)
        with torch.no_grad():
            fe = target.energy(frames.reshape(-1, 2)).reshape(f - f0, -1)
        bad = ~torch.isfinite(fe).all(0)  # finite positions, non-finite energy: freeze too
        if bool(bad.any()):
            lost = torch.nonzero(alive).flatten()[bad.cpu()]
            self.alive[lost.to(self.alive.device)] = False
            self.n_live = int(self.alive.sum())
            self.first_bad = step if self.first_bad is None else min(self.first_bad, step)
            if self.n_live == 0:
                self.frames = f0
                return
            self.positions[f0:f, lost] = self.frozen.cpu()[lost]
            fe = fe[:, ~bad]
        self.mean_energy[f0:f] = fe.double().mean(1).cpu()

    def record(self, state: SamplerState, step: int) -> None:
        f = self.frames
        self.positions[f] = self.frozen.cpu()
        self.frame_steps[f] = step
        self.mean_energy[f] = float(state.energy[self.alive].double().mean())
        self.frames += 1

    def accept(self, prob: Tensor) -> None:
        self.acc_sum += float(prob[self.alive].sum())
        self.acc_count += int(self.alive.sum())

    def clean_paths(self, p: int) -> Tensor:
        """Paths up to column ``p``, each chain held at its last valid point once it fails."""
        paths = self.paths[:, :p]
        ok = torch.isfinite(paths).all(2) & (paths.abs() < self.far).all(2)
        ok = ok.to(torch.int8).cumprod(1).bool()
        idx = torch.where(ok, torch.arange(p, device=paths.device), 0).cummax(1).values
        held = paths.gather(1, idx[:, :, None].expand(-1, -1, 2))
        held = torch.where(ok[:, :1, None], held, self.frozen[: self.k, None])
        return held.cpu()

    def trace(self, step: int) -> Trace:
        acc = self.acc_sum / self.acc_count if self.acc_count else None
        f, p = self.frames, step // self.path_thin + 1
        return Trace(self.cfg, self.frozen.cpu().clone(), self.alive.cpu().clone(),
                     self.frame_steps[:f], self.positions[:f], self.mean_energy[:f], self.thin,
                     self.path_steps[:p], self.clean_paths(p), acc, self.first_bad,
                     time.perf_counter() - self.start)


def _check_period(cfg: SampleConfig) -> int:
    """Steps between divergence checks (and possible events): CHECK_EVERY, or fewer for
    so many chains that CHECK_EVERY steps would exceed CHUNK_CHAIN_STEPS."""
    grads = cfg.n_leapfrog if cfg.sampler == "hmc" else 1
    return max(1, min(CHECK_EVERY, CHUNK_CHAIN_STEPS // (cfg.chains * grads)))


class _Clock:
    """Whether an event is due: at ``every`` steps, at the end, or after CHUNK_SECONDS."""

    def __init__(self, total: int, every: int) -> None:
        self.total, self.every, self.last = total, every, time.perf_counter()

    def due(self, step: int) -> bool:
        now = time.perf_counter()
        if step % self.every == 0 or step == self.total or now - self.last >= CHUNK_SECONDS:
            self.last = now
            return True
        return False


def _stops(total: int, *periods: int) -> list[int]:
    """Sorted steps in ``(0, total]`` that are multiples of any period, plus ``total``."""
    out = {total}
    for p in periods:
        out.update(range(p, total + 1, p))
    return sorted(out)


def run(target: Target, config: SampleConfig, x0: Tensor | None = None, *,
        budget: Budget = DEFAULT_BUDGET, live: bool = True) -> Iterator[Progress]:
    """Run ``config.chains`` chains on ``target``, yielding progress events.

    The run is fused (see the module docstring); it draws the same random numbers as the
    reference kernels, so results agree to rounding, and divergence is reported within
    :data:`CHECK_EVERY` steps.

    Args:
        target: the energy (and its box, used for the initial points and to
            detect runaway chains).
        config: the run's settings; validated first.
        x0: optional ``(N, 2)`` initial points, overriding ``config.init``.
        budget: the most the run may cost (:mod:`ebmcore.budget`); checked first.
        live: False for a consumer that keeps only the last event (:func:`sample`): events
            come only every CHUNK_SECONDS and at the end, since each one copies the trace.
            The numbers are the same either way (the random stream is drawn step by step).
    """
    cfg = config.validate(budget)
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    x = initial_points(target, cfg, gen) if x0 is None else x0.to(cfg.device, cfg.torch_dtype)
    if x.shape != (cfg.chains, 2):
        raise ValidationError(f"initial points must have shape ({cfg.chains}, 2)")
    x = x.detach().clone()  # the in-place loop must never write into the caller's tensor
    temperature = cfg.temperature if cfg.noise else 0.0
    kw = {"step_size": cfg.step_size, "temperature": temperature, "grad": target.grad}
    if cfg.sampler == "hmc":
        kw["n_leapfrog"] = cfg.n_leapfrog
    kernel = SAMPLERS[cfg.sampler]
    spec = compiled_spec(target, cfg)
    in_place = cfg.sampler in ("sgld", "underdamped") and cfg.fused and not spec
    fast = inplace_grad(target) if in_place else None
    rec = _Recorder(cfg, x, _far_limit(target.box))
    every = (cfg.report_every or max(1, cfg.steps // 50)) if live else cfg.steps
    if cfg.sampler == "underdamped":
        kw["friction"] = cfg.friction
        state = underdamped_init(target.energy, x, gen, temperature=temperature,
                                 grad=target.grad)
    elif cfg.sampler == "annealed":
        kw["schedule"] = annealing(target, cfg.levels, cfg.sigma_max, cfg.steps)
        state = annealed_init(target.energy, x, kw["schedule"], target.grad)
    elif spec is not None:
        state = initial_state(spec, x)
    else:
        state = init_state(target.energy, x, target.grad)
    gen = steps_rng(gen, cfg)
    state = rec.check(state, 0)
    rec.record(state, 0)
    rec.paths[:, 0] = state.x[: rec.k]
    if spec is not None:
        clock = _Clock(cfg.steps, every)
        yield from run_compiled(target, cfg, rec, state, spec, gen, temperature, clock,
                                _stops(cfg.steps, every, _check_period(cfg)))
        return
    if fast is not None:
        yield from _run_fused(target, cfg, rec, state, fast, gen, temperature, every)
        return
    if cfg.fused:
        yield from _run_chunked(target, cfg, rec, state, kernel, kw, gen, every)
        return
    per_step_paths = rec.path_thin == 1
    step = 0
    clock = _Clock(cfg.steps, every)
    for stop in _stops(cfg.steps, rec.thin, every, rec.path_thin, _check_period(cfg)):
        for i in range(step + 1, stop + 1):
            state, info = kernel(target.energy, state, gen, **kw)
            if info.accept_prob is not None and i > cfg.burn_in:
                rec.accept(info.accept_prob)
            if per_step_paths:
                rec.paths[:, i] = state.x[: rec.k]
        step = stop
        state = rec.check(state, step)
        if rec.n_live == 0:  # every chain diverged: nothing left to run
            yield Progress(step, cfg.steps, rec.trace(step))
            return
        if step % rec.thin == 0:
            rec.record(state, step)
        if not per_step_paths and step % rec.path_thin == 0:
            rec.paths[:, step // rec.path_thin] = state.x[: rec.k]
        if clock.due(step):
            yield Progress(step, cfg.steps, rec.trace(step))


def _run_fused(target: Target, cfg: SampleConfig, rec: _Recorder, state: SamplerState,
               fast: InplaceGrad, gen: Rng, temperature: float,
               every: int) -> Iterator[Progress]:
    """SGLD or BAOAB in place between checks; the loop writes frames and paths through
    ``on_step`` (the torch path, where the compiled kernels are not available)."""
    x = state.x
    thin, path_thin, k = rec.thin, rec.path_thin, rec.k
    rec.frame_steps.copy_(torch.arange(rec.frame_steps.numel()) * thin)
    noise, grad = torch.empty_like(x), torch.empty_like(x)
    if cfg.sampler == "underdamped":  # velocities and the gradient at x, advanced in place
        v, g = state.v.clone(), state.grad.clone()
    step = 0

    def keep(i: int, xs: Tensor) -> None:
        s = step + i
        if s % thin == 0:
            rec.positions[rec.frames].copy_(xs)
            rec.frames += 1
        if s % path_thin == 0:
            rec.paths[:, s // path_thin].copy_(xs[:k])

    clock = _Clock(cfg.steps, every)
    for stop in _stops(cfg.steps, every, _check_period(cfg)):
        f0 = rec.frames
        if cfg.sampler == "underdamped":
            underdamped_loop(x, v, g, fast, stop - step, cfg.step_size, cfg.friction,
                             temperature, gen, noise_buf=noise, on_step=keep)
        else:
            sgld_loop(x, fast, stop - step, cfg.step_size, temperature, gen, noise,
                      grad_buf=grad, on_step=keep)
        step = stop
        rec.check_fused(target, x, step, f0)
        if rec.n_live == 0:  # every chain diverged: nothing left to run
            yield Progress(step, cfg.steps, rec.trace(step))
            return
        if clock.due(step):
            yield Progress(step, cfg.steps, rec.trace(step))


def _run_chunked(target: Target, cfg: SampleConfig, rec: _Recorder, state: SamplerState,
                 kernel, kw: dict, gen: Rng, every: int) -> Iterator[Progress]:
    """The pure kernels, checked every few steps; frames, paths and acceptance kept on the fly.

    Nothing is synchronised per step: energy sums and acceptance accumulate as tensors.
    """
    thin, path_thin, k = rec.thin, rec.path_thin, rec.k
    rec.frame_steps.copy_(torch.arange(rec.frame_steps.numel()) * thin)
    f64 = {"dtype": torch.float64, "device": state.x.device}
    esum = torch.zeros(rec.mean_energy.numel(), **f64)
    acc_sum, acc_n = torch.zeros((), **f64), torch.zeros((), **f64)
    step = 0
    clock = _Clock(cfg.steps, every)
    for stop in _stops(cfg.steps, every, _check_period(cfg)):
        f0, n_before = rec.frames, rec.n_live
        live = rec.alive.clone()
        for i in range(step + 1, stop + 1):
            state, info = kernel(target.energy, state, gen, **kw)
            if info.accept_prob is not None and i > cfg.burn_in:
                acc_sum += info.accept_prob.masked_fill(~live, 0.0).sum()
                acc_n += n_before
            if i % thin == 0:
                rec.positions[rec.frames].copy_(state.x)
                esum[rec.frames] = state.energy.masked_fill(~live, 0.0).sum()
                rec.frames += 1
            if i % path_thin == 0:
                rec.paths[:, i // path_thin].copy_(state.x[:k])
        step = stop
        state = rec.check(state, step)
        rec.finish_frames(target, f0, esum, n_before, step)
        rec.acc_sum, rec.acc_count = float(acc_sum), int(acc_n)
        if rec.n_live == 0:  # every chain diverged: nothing left to run
            yield Progress(step, cfg.steps, rec.trace(step))
            return
        if clock.due(step):
            yield Progress(step, cfg.steps, rec.trace(step))


def sample(target: Target, config: SampleConfig, x0: Tensor | None = None, *,
           budget: Budget = DEFAULT_BUDGET) -> Trace:
    """Drain :func:`run` and return the final trace."""
    events = run(target, config, x0, budget=budget, live=False)
    last = next(events)
    for last in events:  # noqa: B007 - draining: only the last event matters
        pass
    return last.trace
