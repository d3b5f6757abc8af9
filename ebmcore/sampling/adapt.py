"""Automatic step sizes: dual averaging for MALA and HMC, curvature for SGLD.

Dual averaging (Nesterov 2009; Hoffman and Gelman 2014, section 3.2, the rule
Stan and BlackJAX's window adaptation use) drives the mean acceptance
probability to a target during burn-in; the averaged iterate is then frozen.
It is written as pure functions over :class:`DualAveraging`.

One step size is shared by all chains and the statistic it follows is the
acceptance probability averaged over chains: the runner takes one scalar
``eps``, all chains target the same 2D law, and averaging over ``N`` chains cuts
the noise of the stochastic approximation by ``sqrt(N)``, so a few hundred
burn-in steps suffice.

SGLD has no accept step to adapt on; its step comes from the target's
curvature: a fraction of ``1 / lambda_max``, ``lambda_max`` the largest
eigenvalue of the Hessian of ``E`` over the cells holding 99% of the mass.

:func:`auto_events` adapts during burn-in by calling the kernels directly (yielding
events, so a page can draw it and stop it), then hands the frozen ``eps`` and the
burnt-in positions to :func:`ebmcore.sampling.runner.run`, so every statistic of
the trace comes from post-adaptation steps only; :func:`run_auto` drains it.

References:
    Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn Sampler. JMLR 15.
    Roberts, G. O. and Rosenthal, J. S. (1998). Optimal scaling of discrete
    approximations to Langevin diffusions. JRSS B 60.
    Beskos, A. et al. (2013). Optimal tuning of the hybrid Monte Carlo
    algorithm. Bernoulli 19.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ebmcore.budget import DEFAULT_BUDGET, Budget
from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import GridDensity, grid_points, quadrature
from ebmcore.exact.view import view_box
from ebmcore.sampling.config import CHUNK_SECONDS, Progress
from ebmcore.sampling.kernels import SAMPLERS, init_state
from ebmcore.sampling.runner import SampleConfig, Trace, initial_points, run

__all__ = [
    "SGLD_FRACTION",
    "TARGET_ACCEPT",
    "Adapting",
    "AutoResult",
    "DualAveraging",
    "auto_events",
    "da_final",
    "da_init",
    "da_update",
    "hessian_lambda_max",
    "run_auto",
    "sgld_step_size",
]

TARGET_ACCEPT = {
    # Roberts & Rosenthal's optimal MALA acceptance; it is derived as d -> inf, and in
    # 2D the efficiency curve is flat around it, so it costs little to keep.
    "mala": 0.574,
    # Higher than Stan's 0.8 and Beskos et al.'s asymptotic 0.651: with 10 leapfrog steps in
    # 2D, acceptance below ~0.86 needs eps beyond ~1.1 sigma on a Gaussian, where the
    # integrator resonates (eps * L near multiples of the half period) and acceptance jumps
    # non-monotonically with eps (measured: 0.93 at 1.2 sigma, 0.73 at 1.3, 0.93 at 1.4),
    # so dual averaging would settle in a valley; at 0.9 the curve is still monotone.
    "hmc": 0.9,
}
# eps = 0.5 / lambda_max: a Gaussian's variance is inflated by at most 1/(1 - 0.25) along the
# stiffest direction at the stiffest point of the mass, and far less elsewhere; 0.1 mixed too
# slowly to reach R-hat 1.05 in 10^4 steps on the double well and rings (bench settings_table).
SGLD_FRACTION = 0.5
_MASS_REGION = 0.99  # the Hessian is maximised over the cells holding this share of the mass


@dataclass(frozen=True)
class DualAveraging:
    """State of Nesterov's dual averaging on ``log eps`` (Hoffman & Gelman, Alg. 5)."""

    log_eps: float  # current iterate, the step used for the next transition
    log_eps_bar: float  # weighted average of iterates: the step frozen after burn-in
    h_bar: float  # running mean of (target - acceptance)
    mu: float  # shrinkage point, log(10 eps0): favours larger steps early
    t: int  # updates so far
    target: float  # target mean acceptance probability
    gamma: float = 0.05  # shrinkage strength (Stan's default)
    t0: float = 10.0  # damps the first iterates (Stan's default)
    kappa: float = 0.75  # averaging weight decay t^-kappa (Stan's default)

    @property
    def step_size(self) -> float:
        return math.exp(self.log_eps)


def da_init(eps0: float, target: float) -> DualAveraging:
    """Start dual averaging at ``eps0`` towards mean acceptance ``target`` in (0, 1)."""
    if not (eps0 > 0 and math.isfinite(eps0)):
        raise ValidationError(f"initial step size must be a finite number > 0, got {eps0}")
    if not 0 < target < 1:
        raise ValidationError(f"target acceptance must be in (0, 1), got {target}")
    return DualAveraging(math.log(eps0), 0.0, 0.0, math.log(10.0 * eps0), 0, target)


def da_update(s: DualAveraging, accept: float) -> DualAveraging:
    """One dual-averaging update from the mean acceptance probability of the last step."""
    accept = 0.0 if not math.isfinite(accept) else min(max(accept, 0.0), 1.0)
    t = s.t + 1
    eta = 1.0 / (t + s.t0)
    h_bar = (1.0 - eta) * s.h_bar + eta * (s.target - accept)
    log_eps = s.mu - math.sqrt(t) / s.gamma * h_bar
    w = t ** -s.kappa
    log_eps_bar = w * log_eps + (1.0 - w) * s.log_eps_bar
    return dataclasses.replace(s, log_eps=log_eps, log_eps_bar=log_eps_bar, h_bar=h_bar, t=t)


def da_final(s: DualAveraging) -> float:
    """The step size to freeze: the averaged iterate (the last one if no update ran)."""
    return math.exp(s.log_eps_bar if s.t else s.log_eps)


def hessian_lambda_max(target: Target, gd: GridDensity | None = None, cells: int = 128,
                       mass: float = _MASS_REGION) -> float:
    """Largest Hessian eigenvalue of ``E`` over the cells holding ``mass`` of the density.

    The Hessian comes from autograd (exact for every target, formulas included)
    at the cell centres of a ``cells``-side grid over the 99.5% view box, so
    narrow features (the funnel's neck) are resolved; the region is the
    highest-density cells of that grid whose masses sum to ``mass``.
    """
    gd = quadrature(target.energy, target.box, 256) if gd is None else gd
    box = view_box(gd)
    _, _, pts = grid_points(box, cells)
    x = pts.clone().requires_grad_(True)
    with torch.enable_grad():
        e = target.energy(x)
        (g,) = torch.autograd.grad(e.sum(), x, create_graph=True)
        h0 = torch.autograd.grad(g[:, 0].sum(), x, retain_graph=True)[0]
        h1 = torch.autograd.grad(g[:, 1].sum(), x)[0]
    e = e.detach()
    hess = torch.stack([h0, h1], 1).detach()
    hess = 0.5 * (hess + hess.transpose(1, 2))
    lam = torch.linalg.eigvalsh(hess)[:, 1]
    w = torch.exp(-(e - e.min()))
    order = torch.argsort(w, descending=True)
    cum = torch.cumsum(w[order], 0) / w.sum()
    keep = order[: int(torch.searchsorted(cum, torch.tensor(mass, dtype=cum.dtype))) + 1]
    lam = lam[keep]
    lam = lam[torch.isfinite(lam)]
    if not len(lam) or float(lam.max()) <= 0:
        raise ValidationError("the energy has no positive curvature where the mass is: "
                              "give a step size instead of auto")
    return float(lam.max())


def sgld_step_size(target: Target, gd: GridDensity | None = None,
                   fraction: float = SGLD_FRACTION) -> tuple[float, str]:
    """SGLD step ``fraction / lambda_max`` and a sentence saying how it was chosen.

    On a Gaussian with precision eigenvalue ``a``, unadjusted Langevin inflates the
    variance by ``1 / (1 - eps a / 2)`` and is stable below ``eps a = 2``, so
    ``fraction = 0.5`` keeps the inflation under 33% at the stiffest point of the mass.
    """
    lam = hessian_lambda_max(target, gd)
    eps = fraction / lam
    why = (f"eps = {fraction:g} / lambda_max = {eps:.3g}, lambda_max = {lam:.3g} the largest "
           f"Hessian eigenvalue of E over the region holding {_MASS_REGION:.0%} of the mass")
    return eps, why


@dataclass(frozen=True)
class AutoResult:
    """A run with an automatically chosen step size."""

    trace: Trace  # the post-adaptation run (its config carries the frozen eps, burn_in 0)
    step_size: float  # the frozen eps
    explanation: str  # how eps was chosen, for users
    adapt_acceptance: float | None  # mean acceptance over the last tenth of the burn-in


def _eps0(target: Target, gd: GridDensity) -> float:
    """Initial guess: MALA's and HMC's stable scale is about 1 / sqrt(lambda_max)."""
    return 1.0 / math.sqrt(hessian_lambda_max(target, gd))


@dataclass(frozen=True)
class Adapting:
    """An event of the adaptation phase of :func:`auto_events` (there is no trace yet)."""

    step: int  # burn-in steps done
    total: int  # steps requested, burn-in included
    step_size: float  # the current eps; frozen on the last adaptation event
    done: bool = False  # the last adaptation event: ``step_size`` is frozen
    explanation: str = ""  # how eps was chosen, on the last adaptation event
    acceptance: float | None = None  # mean acceptance over the burn-in's last tenth (last)
    trace: None = None  # consumers of run events read ``trace``: none during adaptation
    finished: bool = False  # never the end of the run


def auto_events(target: Target, config: SampleConfig, gd: GridDensity | None = None, *,
                budget: Budget = DEFAULT_BUDGET) -> Iterator[Adapting | Progress]:
    """A run with an automatic eps, as events: :class:`Adapting` while eps is chosen, then
    the run's :class:`~ebmcore.sampling.config.Progress` events (steps counted from the
    start, burn-in included, so a progress bar runs on).

    SGLD takes the curvature rule (:func:`sgld_step_size`) and runs ``config`` at that eps.
    MALA and HMC adapt by dual averaging over ``config.burn_in`` steps, yielding about every
    :data:`~ebmcore.sampling.config.CHUNK_SECONDS`, then freeze eps and run the remaining
    ``steps - burn_in`` steps from the burnt-in positions: the trace holds post-adaptation
    steps only (its config carries the frozen eps and ``burn_in = 0``).
    """
    cfg = config.validate(budget)
    if cfg.sampler not in TARGET_ACCEPT and cfg.sampler != "sgld":
        raise ValidationError(f"automatic step size is for SGLD, MALA and HMC, not {cfg.sampler}")
    gd = quadrature(target.energy, target.box, 256) if gd is None else gd
    if cfg.sampler == "sgld":
        eps, why = sgld_step_size(target, gd)
        yield Adapting(0, cfg.steps, eps, True, why)
        yield from run(target, dataclasses.replace(cfg, step_size=eps), budget=budget)
        return
    if cfg.burn_in < 10:
        raise ValidationError("automatic step size needs a burn-in of at least 10 steps")
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    kernel = SAMPLERS[cfg.sampler]
    kw = {"temperature": cfg.temperature, "grad": target.grad}
    if cfg.sampler == "hmc":
        kw["n_leapfrog"] = cfg.n_leapfrog
    state = init_state(target.energy, initial_points(target, cfg, gen), target.grad)
    da = da_init(_eps0(target, gd), TARGET_ACCEPT[cfg.sampler])
    tail, tail_n, t0 = 0.0, 0, time.perf_counter()
    for i in range(cfg.burn_in):
        state, info = kernel(target.energy, state, gen, step_size=da.step_size, **kw)
        ok = torch.isfinite(info.accept_prob)
        acc = float(info.accept_prob[ok].mean()) if bool(ok.any()) else 0.0
        da = da_update(da, acc)
        if i >= cfg.burn_in - max(1, cfg.burn_in // 10):
            tail, tail_n = tail + acc, tail_n + 1
        if time.perf_counter() - t0 >= CHUNK_SECONDS:
            yield Adapting(i + 1, cfg.steps, da.step_size)
            t0 = time.perf_counter()
    eps = da_final(da)
    why = (f"eps = {eps:.3g} by dual averaging over {cfg.burn_in} burn-in steps towards mean "
           f"acceptance {TARGET_ACCEPT[cfg.sampler]:g}, then frozen")
    yield Adapting(cfg.burn_in, cfg.steps, eps, True, why, tail / tail_n if tail_n else None)
    main = dataclasses.replace(cfg, step_size=eps, steps=cfg.steps - cfg.burn_in, burn_in=0,
                               seed=int(torch.randint(0, 2**62, (1,), generator=gen)))
    for ev in run(target, main, state.x, budget=budget):
        yield Progress(ev.step + cfg.burn_in, cfg.steps, ev.trace)


def run_auto(target: Target, config: SampleConfig, gd: GridDensity | None = None, *,
             budget: Budget = DEFAULT_BUDGET) -> AutoResult:
    """Drain :func:`auto_events`: the post-adaptation trace, the frozen eps, how it was
    chosen and the acceptance at the end of the adaptation."""
    frozen, last = None, None
    for ev in auto_events(target, config, gd, budget=budget):
        if isinstance(ev, Adapting):
            frozen = ev if ev.done else frozen
        else:
            last = ev
    assert frozen is not None and last is not None  # both phases always yield
    return AutoResult(last.trace, frozen.step_size, frozen.explanation, frozen.acceptance)
