"""``python -m ebmcore flow``: the exact density of the chains over time (Fokker–Planck).

Solves the Fokker–Planck equation of Langevin dynamics on the target's box grid
(:mod:`ebmcore.exact.fokker_planck`) from the chains' initial law and prints, per
frame, the time, the mass, the mean, the covariance and KL(rho_t || p_T).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from ebmcore.cli.args import BUDGET_FLAG, add_budget, budget_of, finite_float, key_values, numbers
from ebmcore.cli.sample import FORMULA_BOX, build_target, fmt_value, jsonable
from ebmcore.energies import Target
from ebmcore.exact.density import quadrature
from ebmcore.exact.fokker_planck import (
    FLOW_INITS,
    FlowConfig,
    FlowFrame,
    flow_frames,
    ou_moments,
)
from ebmcore.exact.summary import GRID
from ebmcore.exact.view import view_box
from ebmcore.targets.registry import TARGETS

__all__ = ["add_parser", "cmd_flow"]

THREADS = 1  # the grid lines are small tensors: a shared thread pool only slows them down
EXAMPLES = """examples:
  python -m ebmcore flow --time 5 --json
  python -m ebmcore flow --target mixture --init point --init-point 0,0 --time 2 --frames 4
  python -m ebmcore flow --target gaussian --init gaussian --init-point 3,-3 --init-std 0.5 \\
      --temperature 0.5 --time 5 --grid 256"""


def add_parser(sub) -> None:
    """Register ``flow`` on the subparsers ``sub``."""
    d = FlowConfig()
    p = sub.add_parser(
        "flow", help="the exact density of the chains over time (Fokker–Planck)",
        description="Solve the Fokker–Planck equation of Langevin dynamics (noise sqrt(2T)) on "
        "the target's box grid, from the chains' initial law, and print per frame the mass, "
        "mean, covariance and KL(rho_t || p_T), p_T the normalised exp(-E/T) on the grid. "
        "Mass is conserved and rho stays >= 0 for every step size; errors are O(dt) + O(h^2).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="gaussian", metavar="NAME",
                   help=f"registry target ({', '.join(TARGETS)}) or 'formula' (default gaussian)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="target parameter, repeatable (as for sample)")
    p.add_argument("--box", type=numbers(4), metavar="XMIN,XMAX,YMIN,YMAX",
                   help=f"box of a formula target (default {FORMULA_BOX})")
    p.add_argument("--init", choices=FLOW_INITS, default=d.init,
                   help="initial law: uniform over the view box (99.5%% of the mass), a Gaussian "
                   "over it (view), a given gaussian, or one point")
    p.add_argument("--init-point", type=numbers(2), default=d.init_point, metavar="X,Y",
                   help="centre for --init gaussian / point")
    p.add_argument("--init-std", type=finite_float, default=d.init_std,
                   help="std of --init gaussian")
    p.add_argument("--temperature", type=finite_float, default=d.temperature,
                   help="T > 0: noise sqrt(2T), stationary law exp(-E/T)")
    p.add_argument("--time", type=finite_float, required=True, metavar="T_END",
                   help="final time (SGLD step k with step size eps is t = k eps)")
    p.add_argument("--frames", type=int, default=d.frames, metavar="N",
                   help="frames after t = 0, equally spaced up to T_END")
    p.add_argument("--grid", type=int, default=d.grid, help="cells per side over the box")
    p.add_argument("--dt", type=finite_float, default=d.dt, help="time step (backward Euler)")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_budget(p)
    p.set_defaults(handler=cmd_flow)


def _frame_record(f: FlowFrame) -> dict:
    return {"t": f.t, "mass": f.mass, "mean": f.mean.tolist(), "cov": f.cov.tolist(),
            "kl": f.kl}


def _closed_form(target: Target, cfg: FlowConfig, frames: list[FlowFrame]) -> dict | None:
    """The Ornstein–Uhlenbeck moments per frame, for a Gaussian target."""
    if target.name != "gaussian" or target.mean is None or target.cov is None:
        return None
    m0, c0 = frames[0].mean, frames[0].cov  # frame 0 is t = 0: the start as the grid holds it
    out, rate = [], 0.0
    for f in frames:
        m, c, rate = ou_moments(torch.tensor(target.mean), torch.tensor(target.cov), m0, c0,
                                f.t, cfg.temperature)
        out.append({"t": f.t, "mean": m.tolist(), "cov": c.tolist()})
    return {"decay_rate": rate, "frames": out}


def _view(target: Target) -> tuple[float, float, float, float]:
    """The box a uniform start covers: where the mass is, as for the chains."""
    return tuple(view_box(quadrature(target.energy, target.box, GRID)))


def cmd_flow(args: argparse.Namespace) -> int:
    """Validate everything, solve, print the frames (JSON or a table)."""
    target = build_target(args.target, key_values(args.param), args.box)
    cfg = FlowConfig(t_end=args.time, frames=args.frames, dt=args.dt, grid=args.grid,
                     temperature=args.temperature, init=args.init,
                     init_point=tuple(args.init_point), init_std=args.init_std,
                     init_box=_view(target) if args.init in ("uniform", "view") else None).validate(
                         budget_of(args), flag=BUDGET_FLAG)
    prev = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        frames = flow_frames(target, cfg, budget=budget_of(args))
    finally:
        torch.set_num_threads(prev)
    exact = _closed_form(target, cfg, frames)
    if args.json:
        record = {"target": target.name, "params": jsonable(dict(target.params)),
                  "box": list(target.box), "config": jsonable(dataclasses.asdict(cfg)),
                  "steps": frames[-1].step, "seconds": frames[-1].seconds,
                  "frames": [_frame_record(f) for f in frames], "ornstein_uhlenbeck": exact}
        print(json.dumps(jsonable(record), allow_nan=False))
        return 0
    last = frames[-1]
    print(f"target {target.name}  grid {cfg.grid}x{cfg.grid}  dt {cfg.dt:g}  "
          f"T {cfg.temperature:g}  init {cfg.init}  {last.step} steps in {last.seconds:.2f} s")
    print(f"{'t':>8} {'mass - 1':>10} {'kl':>10}  mean / cov")
    for f in frames:
        print(f"{f.t:8.4g} {f.mass - 1:10.1e} {f.kl:10.4g}  {fmt_value(f.mean)} "
              f"{fmt_value(f.cov)}")
    if exact is not None:
        e = exact["frames"][-1]
        print(f"closed form at t = {e['t']:.4g}: mean {fmt_value(e['mean'])} cov "
              f"{fmt_value(e['cov'])}; decay rate {exact['decay_rate']:.4g}")
    return 0
