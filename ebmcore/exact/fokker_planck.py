"""The exact law of Langevin chains in 2D: the Fokker–Planck equation solved on the grid.

The SDE ``dX = -grad E(X) dt + sqrt(2T) dB`` moves its density by
``d rho / dt = div(rho grad E) + T laplace(rho)``.  We solve it with finite
volumes on the cells of :func:`ebmcore.exact.density.grid_points` (the grid of
the target's box), with Scharfetter–Gummel fluxes

    J = (T / h) [B(du) rho_i - B(-du) rho_j],   du = (E_j - E_i) / T,   B(z) = z / (e^z - 1),

between neighbours ``i`` and ``j``, and no flux through the box's walls.  Each
face's flux vanishes on ``exp(-E / T)`` at the cell centres, so that normalised
grid density (the quadrature of :mod:`ebmcore.exact.density` at temperature T)
is the exact discrete stationary state.

Time stepping splits the two directions: each step solves the implicit
(backward Euler) system of the x fluxes, then that of the y fluxes, alternating
the order.  Each system is tridiagonal per grid line, a nonsingular M-matrix
with unit column sums: its inverse is nonnegative and keeps the mass, and
``exp(-E/T)`` is its fixed point, so the scheme conserves mass, keeps rho >= 0,
never lets KL(rho || p_T) grow and is stable for every step size.  Errors are
O(dt) in time and O(h^2) in space; first order in time is the price of
positivity at every step size (no linear method of higher order keeps it:
Bolley and Crouzeix, 1978).  The solves use parallel cyclic reduction,
whose multipliers (all >= 0) are computed once per run.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from ebmcore.budget import DEFAULT_BUDGET, Budget, check, flow_cost
from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import GridDensity, grid_points, quadrature
from ebmcore.exact.initial_law import initial_density
from ebmcore.sampling.config import INITS

__all__ = [
    "FLOW_INITS",
    "MAX_FLOW_GRID",
    "MAX_FLOW_STEPS",
    "FlowConfig",
    "FlowFrame",
    "evolve",
    "flow_frames",
    "frame_times",
    "initial_density",
    "ou_moments",
    "stationary_density",
]

FLOW_INITS = INITS  # as SampleConfig.init
MAX_FLOW_GRID = 1024  # cells per side; 1024^2 cells take ~0.1 s per step on one core
MAX_FLOW_STEPS = 200_000  # time steps per run, so that no request runs for hours
MAX_MAGNITUDE = 1e100  # dt, T, times, init std: far beyond use, far below float64 overflow
RAMP = 10  # halvings of dt at the start of a run (see _step_sizes)
_CACHE = 32  # step sizes whose factorisations are kept
_DU_CAP = 1e4  # |dE/T| across a face is capped here: B(1e4) = 0 and B(-1e4) = 1e4 exactly


@dataclass(frozen=True)
class FlowConfig:
    """Everything that defines a Fokker–Planck run (it is deterministic)."""

    t_end: float = 5.0  # final time (in the SDE's time: SGLD step k is t = k * eps)
    frames: int = 50  # frames after t = 0, equally spaced up to t_end (frame 0 is t = 0)
    times: tuple[float, ...] = ()  # explicit frame times (sorted, >= 0); overrides t_end, frames
    dt: float = 0.01  # backward-Euler time step; shortened so that every frame time is hit
    grid: int = 128  # cells per side over the target's box
    temperature: float = 1.0  # T > 0: noise sqrt(2T), stationary law exp(-E / T)
    init: str = "uniform"  # uniform over init_box, view, gaussian, or point (as the chains)
    init_box: tuple[float, float, float, float] | None = None  # uniform start's box; None: all
    init_point: tuple[float, float] = (0.0, 0.0)  # centre of the gaussian / point init
    init_std: float = 1.0  # standard deviation of the gaussian init
    chunk_steps: int = 200  # most time steps between two events (bounds the work per event)
    chunk_seconds: float = 0.5  # and most wall seconds between events (frames never change)

    def validate(self, budget: Budget = DEFAULT_BUDGET, *, flag: str = "") -> FlowConfig:
        """Return self, or raise ValidationError with a message for users.

        The run is priced (:func:`ebmcore.budget.flow_cost`: cells x steps) and refused
        above ``budget``; ``flag`` names how the caller can raise it.
        """
        for name in ("dt", "temperature", "init_std"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValidationError(f"{name.replace('_', ' ')} must be a finite number > 0, "
                                      f"got {v}")
        if self.times:
            t = self.times
            if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in t):
                raise ValidationError("frame times must be finite numbers >= 0")
            if any(b <= a for a, b in itertools.pairwise(t)):
                raise ValidationError("frame times must be strictly increasing")
        else:
            if not (isinstance(self.t_end, (int, float)) and math.isfinite(self.t_end)
                    and self.t_end > 0):
                raise ValidationError(f"time must be a finite number > 0, got {self.t_end}")
            if not 1 <= self.frames <= 10_000:
                raise ValidationError(f"frames must be in [1, 10000], got {self.frames}")
        if not 8 <= self.grid <= MAX_FLOW_GRID or self.grid % 2:
            raise ValidationError(f"grid must be an even number in [8, {MAX_FLOW_GRID}], "
                                  f"got {self.grid}")
        if self.init not in FLOW_INITS:
            raise ValidationError(f"init must be one of {', '.join(FLOW_INITS)}, "
                                  f"got {self.init!r}")
        if len(self.init_point) != 2 or not all(math.isfinite(v) for v in self.init_point):
            raise ValidationError("init point must be two finite numbers")
        b = self.init_box
        if b is not None and not (len(b) == 4 and all(math.isfinite(v) for v in b)
                                  and b[0] < b[1] and b[2] < b[3]):
            raise ValidationError(f"init box must be 4 finite numbers xmin < xmax, ymin < ymax, "
                                  f"got {tuple(b)}")
        if not 1 <= self.chunk_steps <= 100_000:
            raise ValidationError(f"chunk steps must be in [1, 100000], got {self.chunk_steps}")
        if not (isinstance(self.chunk_seconds, (int, float)) and self.chunk_seconds > 0):
            raise ValidationError(f"chunk seconds must be > 0, got {self.chunk_seconds}")
        for name, label in (("dt", "dt"), ("temperature", "temperature"),
                            ("init_std", "init std"), ("t_end", "time")):
            v = getattr(self, name)
            if v > MAX_MAGNITUDE:  # products with the grid's 1/h^2 would overflow float64
                raise ValidationError(f"{label} is too large for the solver "
                                      f"(at most {MAX_MAGNITUDE:g}), got {v:.3g}")
        if self.times and max(self.times) > MAX_MAGNITUDE:
            raise ValidationError(f"frame times must be at most {MAX_MAGNITUDE:g}")
        span = max(self.times) if self.times else self.t_end
        if span / self.dt > MAX_FLOW_STEPS:  # before counting them one gap at a time
            raise ValidationError(f"about {span / self.dt:.2g} time steps exceed the limit "
                                  f"{MAX_FLOW_STEPS:,}: raise dt or shorten the time")
        steps = sum(math.ceil(d / self.dt - 1e-9) for d in _gaps(frame_times(self))) + RAMP
        if steps > MAX_FLOW_STEPS:
            raise ValidationError(f"{steps:,} time steps exceed the limit {MAX_FLOW_STEPS:,}: "
                                  "raise dt or shorten the time")
        n_frames = len(self.times) if self.times else self.frames + 1
        check(flow_cost(grid=self.grid, steps=steps, frames=n_frames,
                        solvers=min(_CACHE, RAMP + 2)), budget, flag=flag)
        return self


def frame_times(cfg: FlowConfig) -> tuple[float, ...]:
    """The requested frame times: ``cfg.times``, or ``0, t_end/frames, ..., t_end``."""
    if cfg.times:
        return tuple(float(t) for t in cfg.times)
    return tuple(cfg.t_end * k / cfg.frames for k in range(cfg.frames + 1))


def _gaps(times: tuple[float, ...]) -> list[float]:
    return [b - a for a, b in itertools.pairwise((0.0, *times))]


@dataclass(frozen=True, eq=False)
class FlowFrame:
    """The density at one time, with its exact summaries (float64, CPU)."""

    t: float  # time of this frame
    rho: Tensor  # (n, n) probability mass per cell, indexed [iy, ix] as GridDensity.prob
    mass: float  # total mass (1 up to rounding: the scheme conserves it)
    mean: Tensor  # (2,) mean of rho
    cov: Tensor  # (2, 2) covariance of rho
    kl: float  # KL(rho || p_T) in nats, p_T the normalised exp(-E/T) on the grid
    requested: bool  # True at a requested time; False for an in-between progress event
    step: int  # time steps taken so far
    seconds: float  # wall time so far

    def density(self, box: tuple[float, float, float, float]) -> GridDensity:
        """This frame as a :class:`GridDensity` on ``box`` (for ``discrepancy`` and KL)."""
        n = self.rho.shape[0]
        xs, ys, _ = grid_points(box, n)
        x0, x1, y0, y1 = box
        area = (x1 - x0) * (y1 - y0) / n**2
        return GridDensity(box, n, xs, ys, (self.rho / area).log(), math.nan, math.nan)


def stationary_density(target: Target, grid: int, temperature: float = 1.0) -> GridDensity:
    """The normalised ``exp(-E/T)`` at the cell centres: the scheme's exact stationary state."""
    gd = quadrature(target.energy, target.box, grid)
    if temperature == 1.0:
        return gd
    x0, x1, y0, y1 = target.box
    area = (x1 - x0) * (y1 - y0) / grid**2
    scaled = gd.log_prob / temperature
    log_norm = float(torch.logsumexp(scaled.reshape(-1), 0)) + math.log(area)
    return GridDensity(gd.box, grid, gd.xs, gd.ys, scaled - log_norm,
                       gd.log_z / temperature + log_norm, math.nan)


def ou_moments(mean: Tensor, cov: Tensor, mean0: Tensor, cov0: Tensor, t: float,
               temperature: float = 1.0) -> tuple[Tensor, Tensor, float]:
    """Closed-form law at time ``t`` of Langevin dynamics on the Gaussian ``N(mean, cov)``.

    The SDE is the Ornstein–Uhlenbeck process ``dX = -A (X - mean) dt + sqrt(2T) dB``
    with ``A = cov^-1``: ``mean_t = mean + e^{-At}(mean0 - mean)`` and
    ``cov_t = T cov + e^{-At}(cov0 - T cov)e^{-At}``.

    Returns:
        ``(mean_t, cov_t, rate)``, ``rate`` the smallest eigenvalue of ``A``: the
        slowest exponential decay of the mean.
    """
    c = torch.as_tensor(cov, dtype=torch.float64)
    a = torch.linalg.inv(c)
    m = torch.as_tensor(mean, dtype=torch.float64)
    decay = torch.linalg.matrix_exp(-a * t)
    mean_t = m + decay @ (torch.as_tensor(mean0, dtype=torch.float64) - m)
    s = temperature * c
    cov_t = s + decay @ (torch.as_tensor(cov0, dtype=torch.float64) - s) @ decay.T
    return mean_t, cov_t, float(torch.linalg.eigvalsh(a).min())


def _bernoulli(z: Tensor) -> Tensor:
    """``B(z) = z / (e^z - 1)``, with B(0) = 1."""
    small = z.abs() < 1e-8
    safe = torch.where(small, torch.ones_like(z), z)
    return torch.where(small, 1.0 - 0.5 * z, safe / torch.expm1(safe))


class _LineSolver:
    """``(I - dt L) x = d`` along one axis for every grid line, by parallel cyclic reduction.

    ``L`` is the 1D Scharfetter–Gummel operator on each line: with ``u`` the
    energies over T, mass moves from cell i to its neighbour j at rate
    ``T / h^2 * B(u_j - u_i)``.  The reduction's multipliers are nonnegative
    (the system is an M-matrix), so the solve only adds nonnegative terms.
    """

    def __init__(self, du: Tensor, rate: float, dt: float) -> None:
        # du: (lines, n-1) energy jumps over T across the interior faces of each line
        lines, m = du.shape[0], du.shape[1] + 1
        up = rate * _bernoulli(du)  # i -> i+1
        down = rate * _bernoulli(-du)  # i+1 -> i
        zero = du.new_zeros(lines, 1)
        out = torch.cat([up, zero], 1) + torch.cat([zero, down], 1)  # leaving each cell
        b = 1.0 + dt * out
        a = -dt * torch.cat([zero, up], 1)  # coefficient of x_{i-1} in equation i
        c = -dt * torch.cat([down, zero], 1)  # coefficient of x_{i+1} in equation i
        self.levels: list[tuple[int, Tensor, Tensor]] = []
        s = 1
        while s < m:
            p = torch.zeros_like(b)  # -a_i / b_{i-s} >= 0
            q = torch.zeros_like(b)  # -c_i / b_{i+s} >= 0
            p[:, s:] = -a[:, s:] / b[:, :-s]
            q[:, :-s] = -c[:, :-s] / b[:, s:]
            nb, na, nc = b.clone(), torch.zeros_like(a), torch.zeros_like(c)
            nb[:, s:] += p[:, s:] * c[:, :-s]
            nb[:, :-s] += q[:, :-s] * a[:, s:]
            na[:, s:] = p[:, s:] * a[:, :-s]
            nc[:, :-s] = q[:, :-s] * c[:, s:]
            self.levels.append((s, p, q))
            b, a, c = nb, na, nc
            s *= 2
        self.inv_b = 1.0 / b

    def solve(self, d: Tensor) -> Tensor:
        for s, p, q in self.levels:
            nd = d.clone()
            nd[:, s:].addcmul_(p[:, s:], d[:, :-s])
            nd[:, :-s].addcmul_(q[:, :-s], d[:, s:])
            d = nd
        return d * self.inv_b


class _Stepper:
    """One backward-Euler step of each direction, for one ``dt``."""

    def __init__(self, u: Tensor, box, temperature: float, dt: float) -> None:
        n = u.shape[0]
        x0, x1, y0, y1 = box
        hx, hy = (x1 - x0) / n, (y1 - y0) / n
        du_x = _jumps(u[:, 1:] - u[:, :-1])  # rows are y: x faces along dim 1
        du_y = _jumps(u[1:, :] - u[:-1, :]).T.contiguous()
        self.x = _LineSolver(du_x, temperature / hx**2, dt)
        self.y = _LineSolver(du_y, temperature / hy**2, dt)
        self.flip = False

    def step(self, rho: Tensor) -> Tensor:
        if self.flip:
            rho = self.x.solve(self.y.solve(rho.T.contiguous()).T.contiguous())
        else:
            rho = self.y.solve(self.x.solve(rho).T.contiguous()).T.contiguous()
        self.flip = not self.flip
        return rho


def _jumps(du: Tensor) -> Tensor:
    # -inf energy never reaches here (quadrature refuses it); inf - inf (two forbidden
    # cells) exchanges mass by plain diffusion until it has flowed out.
    return torch.nan_to_num(du, nan=0.0).clamp(-_DU_CAP, _DU_CAP)


class _Summary:
    """Moments and KL of cell masses on one grid."""

    def __init__(self, p: GridDensity) -> None:
        self.p = p

    @cached_property
    def log_mass(self) -> Tensor:
        return self.p.log_prob + math.log(self.p.cell_area)

    def __call__(self, rho: Tensor) -> tuple[float, Tensor, Tensor, float]:
        xs, ys = self.p.xs, self.p.ys
        mass = rho.sum()
        mx, my = (rho.sum(0) * xs).sum() / mass, (rho.sum(1) * ys).sum() / mass
        dx, dy = xs - mx, ys - my
        vxx = (rho.sum(0) * dx**2).sum() / mass
        vyy = (rho.sum(1) * dy**2).sum() / mass
        vxy = (rho * dy[:, None] * dx[None, :]).sum() / mass
        cov = torch.stack([torch.stack([vxx, vxy]), torch.stack([vxy, vyy])])
        pos = rho > 0
        terms = torch.where(pos, rho * (rho.clamp_min(1e-300).log() - self.log_mass),
                            torch.zeros_like(rho))
        return float(mass), torch.stack([mx, my]), cov, float(terms.sum())


def evolve(target: Target, config: FlowConfig, *,
           budget: Budget = DEFAULT_BUDGET) -> Iterator[FlowFrame]:
    """Solve the Fokker–Planck equation of Langevin dynamics on ``target``, yielding frames.

    A frame with ``requested=True`` comes at each of :func:`frame_times` (the first
    at t = 0 when requested); between two of them, a progress frame
    (``requested=False``) comes after ``config.chunk_steps`` steps or
    ``config.chunk_seconds`` of wall time, whichever is first, so that no event
    waits for more than a bounded amount of work.  Stop by breaking the loop.

    Raises:
        ValidationError: a bad config, a point init outside the box, or an energy
            that quadrature refuses (not finite on the grid, overflowing).
    """
    cfg = config.validate(budget)
    start = time.perf_counter()
    p = stationary_density(target, cfg.grid, cfg.temperature)
    summary = _Summary(p)
    u = -p.log_prob  # E / T up to a constant: only differences enter the fluxes
    rho = initial_density(target, cfg)
    steppers: dict[float, _Stepper] = {}
    t, step, since, last = 0.0, 0, 0, time.perf_counter()

    def frame(requested: bool) -> FlowFrame:
        mass, mean, cov, kl = summary(rho)
        return FlowFrame(t, rho.clone(), mass, mean, cov, kl, requested, step,
                         time.perf_counter() - start)

    for t_next in frame_times(cfg):
        for dt, count in _step_sizes(t_next - t, cfg.dt, ramp=step == 0):
            key = round(dt, 15)
            if key not in steppers:
                if len(steppers) >= _CACHE:
                    steppers.pop(next(iter(steppers)))
                steppers[key] = _Stepper(u, target.box, cfg.temperature, dt)
            stepper = steppers[key]
            for _ in range(count):
                rho = stepper.step(rho)
                step += 1
                since += 1
                t += dt
                if since >= cfg.chunk_steps or time.perf_counter() - last > cfg.chunk_seconds:
                    yield frame(False)
                    since, last = 0, time.perf_counter()
        t = t_next
        yield frame(True)
        since, last = 0, time.perf_counter()


def _step_sizes(gap: float, dt: float, ramp: bool) -> list[tuple[float, int]]:
    """``(step, count)`` pairs that cover ``gap`` with steps <= ``dt``, ending on it exactly.

    The first interval of a run starts with steps ``dt / 2^RAMP, ..., dt / 2``: the
    initial law may be far from the energy's scale (uniform over steep walls), and
    splitting the directions is accurate only on steps short beside that transient.
    """
    if gap <= 0:
        return []
    out: list[tuple[float, int]] = []
    if ramp:
        base = min(dt, gap)
        out = [(base / 2 ** (RAMP - j), 1) for j in range(RAMP)]
        gap -= base * (1 - 2.0**-RAMP)
    k = math.ceil(gap / dt - 1e-9)
    return [*out, (gap / k, k)]


def flow_frames(target: Target, config: FlowConfig, *,
                budget: Budget = DEFAULT_BUDGET) -> list[FlowFrame]:
    """Drain :func:`evolve` and return the requested frames only (``budget`` as there)."""
    return [f for f in evolve(target, config, budget=budget) if f.requested]
