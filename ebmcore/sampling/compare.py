"""What the views of the Langevin family draw, as plain JSON-ready records.

- :func:`phase_space`: a few underdamped chains in phase space (x against v).
- :func:`equal_gradient_race`: SGLD against underdamped Langevin at equal gradient
  evaluations (both spend one per step), as the histogram discrepancy against steps.
- :func:`mode_weights`: mass per mode of annealed and plain Langevin against the exact
  weights, with the multinomial standard errors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import GridDensity, discrepancy
from ebmcore.exact.modes import exact_mode_masses, mode_masses, multinomial_se
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.sampling.underdamped import underdamped_init, underdamped_step

__all__ = ["equal_gradient_race", "mode_weights", "phase_space"]


def _plain(t: Tensor) -> list:
    """Nested lists of floats, non-finite values as None (JSON has no NaN)."""

    def clean(o):
        return [clean(e) for e in o] if isinstance(o, list) else (o if math.isfinite(o) else None)

    return clean(t.detach().cpu().double().tolist())


def phase_space(target: Target, x0: Tensor, steps: int, *, step_size: float,
                friction: float = 1.0, temperature: float = 1.0, seed: int = 0) -> dict:
    """Positions and velocities of a few chains (``x0`` ``(K, 2)``, ``K <= 64``) per step.

    Returns:
        ``{"x": [step][chain][2], "v": [step][chain][2], "energy": [step][chain],
        "step_size", "friction"}``, step 0 the initial state (velocities drawn ``N(0, T I)``).
    """
    if x0.ndim != 2 or x0.shape[1] != 2 or not 1 <= x0.shape[0] <= 64:
        raise ValidationError("phase space shows 1 to 64 chains: x0 must be (K, 2)")
    if not 1 <= steps <= 10_000:
        raise ValidationError(f"steps must be in [1, 10,000], got {steps}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValidationError(f"step size must be a finite number > 0, got {step_size}")
    gen = torch.Generator(device=x0.device).manual_seed(seed)
    st = underdamped_init(target.energy, x0.detach().clone(), gen, temperature=temperature,
                          grad=target.grad)
    xs, vs, es = [st.x], [st.v], [st.energy]
    for _ in range(steps):
        st, _ = underdamped_step(target.energy, st, gen, step_size=step_size, friction=friction,
                                 temperature=temperature, grad=target.grad)
        xs.append(st.x)
        vs.append(st.v)
        es.append(st.energy)
    return {"x": _plain(torch.stack(xs)), "v": _plain(torch.stack(vs)),
            "energy": _plain(torch.stack(es)), "step_size": step_size, "friction": friction}


def equal_gradient_race(target: Target, gd: GridDensity, *, steps: int = 500,
                        chains: int = 5000, sgld_step: float = 0.1,
                        underdamped_step: float = 0.3, friction: float = 1.0,
                        frames: int = 25, bins: int = 16, seed: int = 0) -> dict:
    """Discrepancy of the chains' positions against gradient evaluations, for both samplers.

    Both start from the same uniform points and both spend one gradient per step, so step
    ``t`` is ``t`` gradient evaluations per chain.  ``floor`` is the discrepancy ``chains``
    exact iid samples would show on average.

    Returns:
        ``{"steps": [...], "sgld": [...], "underdamped": [...], "floor": float, ...}``.
    """
    if not 2 <= frames <= 200:
        raise ValidationError(f"frames must be in [2, 200], got {frames}")
    out: dict = {"chains": chains, "bins": bins}
    for name, eps in (("sgld", sgld_step), ("underdamped", underdamped_step)):
        cfg = SampleConfig(sampler=name, step_size=eps, steps=steps, chains=chains, seed=seed,
                           friction=friction, keep_paths=0,
                           max_points=max(1000, chains * frames + chains))
        tr = sample(target, cfg)
        every = max(1, len(tr.steps) // frames)
        idx = list(range(0, len(tr.steps), every))
        out["steps"] = [int(tr.steps[i]) for i in idx]
        out[name] = [discrepancy(tr.positions[i], gd, bins).tv for i in idx]
        out[f"{name}_step_size"] = eps
        out[f"{name}_diverged"] = tr.n_diverged
    out["floor"] = discrepancy(target.sample(chains, torch.Generator().manual_seed(seed)),
                               gd, bins).floor
    return out


def mode_weights(target: Target, gd: GridDensity, centres: Tensor, *, steps: int = 500,
                 chains: int = 4000, step_size: float = 0.01, levels: int = 5,
                 sigma_max: float = 2.0, init_point: tuple[float, float] = (2.0, 0.0),
                 init_std: float = 0.1, seed: int = 1) -> dict:
    """Mass per mode of annealed and plain Langevin from the same uneven start, and the exact.

    Returns:
        ``{"exact": [K], "annealed": [K], "plain": [K], "se": [K], "centres": [K][2]}``;
        ``se`` is the multinomial standard error of ``chains`` iid draws from the exact law.
    """
    c = torch.as_tensor(centres, dtype=torch.float64)
    exact = exact_mode_masses(gd, c)
    base = {"step_size": step_size, "steps": steps, "chains": chains, "init": "gaussian",
            "init_point": init_point, "init_std": init_std, "seed": seed, "keep_paths": 0,
            "max_points": max(1000, 4 * chains)}
    ann = sample(target, SampleConfig(sampler="annealed", levels=levels, sigma_max=sigma_max,
                                      **base))
    plain = sample(target, SampleConfig(sampler="sgld", **base))
    return {"exact": exact.tolist(), "annealed": mode_masses(ann.x, c).tolist(),
            "plain": mode_masses(plain.x, c).tolist(),
            "se": multinomial_se(exact, chains).tolist(), "centres": c.tolist()}
