"""``python -m ebmcore sample``: run chains on a target, print the exact comparison.

The JSON and number formatting that the other subcommands print with live here too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ebmcore.cli.args import BUDGET_FLAG, add_budget, budget_of, finite_float, key_values, numbers
from ebmcore.cli.progress import EventProgress, progress_wanted
from ebmcore.defaults import DEFAULT_TARGET, sampling_defaults
from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import quadrature
from ebmcore.exact.summary import GRID, RunSummary, summarize
from ebmcore.exact.view import view_box
from ebmcore.interop.frames import final_frame, trace_frame
from ebmcore.sampling.adapt import run_auto
from ebmcore.sampling.kernels import SAMPLERS
from ebmcore.sampling.runner import INITS, Progress, SampleConfig, run
from ebmcore.targets.registry import TARGETS, make_target

__all__ = ["FORMULA_BOX", "OUT_FORMATS", "add_parser", "build_target", "cmd_sample",
           "fmt_value", "jsonable", "step_size_arg"]

OUT_FORMATS = (".csv", ".parquet", ".nc")
FORMULA_BOX = (-4.0, 4.0, -4.0, 4.0)  # default box of --target formula


def step_size_arg(text: str) -> float | str:
    """argparse type: a finite eps (its sign is checked with the config), or ``"auto"``."""
    return "auto" if text.strip().lower() == "auto" else finite_float(text)


def add_parser(sub, epilog: str = "") -> None:
    """Register ``sample`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "sample", help="run many chains on a target and compare with the exact answers",
        description="Run N vectorised chains of SGLD, MALA, HMC, underdamped (BAOAB) or annealed "
        "Langevin on a 2D target and print the "
        "sample statistics beside the exact ones (log Z, mean and covariance by quadrature, "
        "the exact SGLD-biased covariance on Gaussians, histogram discrepancy, ESS, R-hat).",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    d, ref = SampleConfig(), sampling_defaults()
    p.add_argument("--target", default=DEFAULT_TARGET, metavar="NAME",
                   help=f"registry target ({', '.join(TARGETS)}) or 'formula' "
                   f"(default {DEFAULT_TARGET})")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="target parameter, repeatable; vectors comma separated "
                   "(mean=0.5,0.5 cov=2,1,1,2); for formula: expr=... and its named constants")
    p.add_argument("--box", type=numbers(4), metavar="XMIN,XMAX,YMIN,YMAX",
                   help=f"view and quadrature box of a formula target (default {FORMULA_BOX})")
    p.add_argument("--sampler", choices=list(SAMPLERS), default=ref["sampler"], help="kernel")
    p.add_argument("--chains", type=int,
                   help=f"independent chains N (default: per target and sampler, {ref['chains']})")
    p.add_argument("--steps", type=int,
                   help=f"transitions per chain T (default: per target and sampler, "
                   f"{ref['steps']})")
    p.add_argument("--step-size", type=step_size_arg, metavar="EPS",
                   help=f"eps (the leapfrog step for HMC), or 'auto': MALA/HMC adapt it during "
                   f"the burn-in (dual averaging), SGLD takes it from the curvature (default: per "
                   f"target and sampler, {ref['step_size']:g})")
    p.add_argument("--no-noise", action="store_true",
                   help="SGLD without noise: gradient descent to a mode (MAP)")
    p.add_argument("--temperature", type=finite_float, default=d.temperature,
                   help="T > 0 samples p^(1/T) (statistics still compare with p)")
    p.add_argument("--leapfrog", type=int, metavar="L",
                   help="HMC leapfrog steps (default: per target)")
    p.add_argument("--friction", type=finite_float, default=d.friction, metavar="G",
                   help="underdamped friction gamma (large: overdamped Langevin)")
    p.add_argument("--levels", type=int, default=d.levels, metavar="L",
                   help="annealed noise levels (halving from --sigma-max, the last the target)")
    p.add_argument("--sigma-max", type=finite_float, default=d.sigma_max, metavar="S",
                   help="annealed widest Gaussian smoothing")
    p.add_argument("--burn-in", type=int, metavar="B",
                   help="steps left out of ESS, R-hat and acceptance (default: per target and "
                   "sampler; with --step-size auto, MALA/HMC adapt eps during it)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the one random stream")
    p.add_argument("--init", choices=INITS,
                   help="initial points: uniform over the view box (the smallest box with "
                   "99.5%% of the mass), a Gaussian over it (view), a given gaussian, or one "
                   "point (default: per target)")
    p.add_argument("--init-point", type=numbers(2), metavar="X,Y",
                   help="centre for --init gaussian / point")
    p.add_argument("--init-std", type=finite_float,
                   help="std of --init gaussian")
    p.add_argument("--dtype", choices=("float32", "float64"), default=d.dtype)
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="CPU threads sharing the chains (whole blocks of 256 each; the same "
                        "positions at any count, faster from 512 chains on)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write final positions (chain, x, y, energy, alive) as .csv or .parquet; "
                   ".nc writes the whole run as ArviZ data (NetCDF; needs the 'arviz' extra)")
    p.add_argument("--trace", action="store_true",
                   help="with --out .csv/.parquet: write the thinned trace (chain, step, x, y) "
                   "instead (.nc always holds the trace)")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no table (warnings and errors still on stderr)")
    add_budget(p)
    p.set_defaults(handler=cmd_sample)


def build_target(name: str, params: dict[str, str], box: Sequence[float] | None) -> Target:
    """A registry target, or ``formula`` (``expr`` plus named constants) on ``box``."""
    if name == "formula":
        from ebmcore.targets.formula import formula_target

        consts = dict(params)
        expr = consts.pop("expr", None)
        if expr is None:
            raise ValidationError("--target formula needs --param expr='...' (a formula in x, y)")
        return formula_target(expr, box or FORMULA_BOX, consts)
    if box is not None:
        raise ValidationError("--box applies to --target formula only (targets carry their box)")
    return make_target(name, **params)


def _out_path(args: argparse.Namespace) -> Path | None:
    out: Path | None = args.out
    if out is None:
        if args.trace:
            raise ValidationError("--trace needs --out FILE.csv or FILE.parquet")
        return None
    if out.suffix.lower() not in OUT_FORMATS:
        raise ValidationError(f"--out must end in .csv, .parquet or .nc, got {str(out)!r}")
    if not out.parent.is_dir():
        raise ValidationError(f"--out: directory {str(out.parent)!r} does not exist")
    if out.suffix.lower() == ".nc":
        from ebmcore.interop.arviz import require_arviz

        require_arviz()  # before the run: a missing extra must not cost a long run
    return out


def _write(out: Path, trace, target: Target, summary: RunSummary, full: bool) -> None:
    suffix = out.suffix.lower()
    if suffix == ".nc":
        from ebmcore.interop.arviz import write_netcdf

        write_netcdf(out, trace, target, summary=summary)
        return
    df = trace_frame(trace) if full else final_frame(trace, target)
    if suffix == ".csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)


def _run(target: Target, cfg: SampleConfig, args: argparse.Namespace) -> tuple[Progress, bool]:
    """Drain the run under a progress bar; the last event, and whether Ctrl-C stopped it."""
    wanted = progress_wanted(sys.stderr, json=args.json, quiet=args.quiet)
    bar = EventProgress(cfg.steps, enabled=wanted, unit="step",
                        desc=f"{cfg.sampler} x {cfg.chains:,} chains")
    last = None
    events = run(target, cfg, budget=budget_of(args))
    for last in bar.track(events, lambda ev: ev.step):  # noqa: B007 - draining
        pass
    assert last is not None  # run() always yields at least its final event
    return last, bar.interrupted and not last.finished


def cmd_sample(args: argparse.Namespace) -> int:
    """Validate everything, run, write ``--out``, print the summary (JSON or a table)."""
    out = _out_path(args)
    if not 0 <= args.seed < 2**63:
        raise ValidationError(f"seed must be in [0, 2**63), got {args.seed}")
    target = build_target(args.target, key_values(args.param), args.box)
    d = sampling_defaults(args.target, args.sampler)
    given = {"steps": args.steps, "chains": args.chains, "burn_in": args.burn_in,
             "n_leapfrog": args.leapfrog, "init": args.init, "init_point": args.init_point,
             "init_std": args.init_std}
    if args.steps is not None and args.burn_in is None:  # keep the default's share of burn-in
        given["burn_in"] = int(d["burn_in"]) * max(args.steps, 0) // int(d["steps"])
    auto = args.step_size == "auto" or (args.step_size is None and d["step_size"] is None)
    eps = 1.0 if auto else d["step_size"] if args.step_size is None else args.step_size
    cfg = SampleConfig(
        sampler=args.sampler, step_size=eps, **{k: d[k] if v is None else v
                                                for k, v in given.items()},
        noise=not args.no_noise and bool(d["noise"]), temperature=args.temperature,
        friction=args.friction, levels=args.levels, sigma_max=args.sigma_max, seed=args.seed,
        dtype=args.dtype, device=args.device, threads=args.threads,
    ).validate(budget_of(args), flag=BUDGET_FLAG)
    gd = quadrature(target.energy, target.box, GRID)
    if cfg.init in ("uniform", "view"):  # over the box framing the mass, not the quadrature box
        cfg = dataclasses.replace(cfg, init_box=tuple(view_box(gd)))
    explanation = None
    if auto:  # adapt, then run at the frozen eps (statistics after adaptation only)
        result = run_auto(target, cfg, gd)
        stopped, explanation = False, result.explanation
        last = Progress(result.trace.done, result.trace.done, result.trace)
        cfg = dataclasses.replace(cfg, step_size=result.step_size)
    else:
        last, stopped = _run(target, cfg, args)
    trace = last.trace
    summary = summarize(trace, target, gd)
    if out is not None:
        _write(out, trace, target, summary, args.trace)
    if summary.divergence:
        sys.stderr.write(f"warning: {summary.divergence}\n")
    if stopped:
        wrote = f"; wrote them to {out}" if out is not None else ""
        sys.stderr.write(f"interrupted: {last.step} of {cfg.steps} steps finished{wrote}\n")
    if args.json:
        record = {"target": target.name, "params": jsonable(dict(target.params)),
                  "box": list(target.box), "config": jsonable(dataclasses.asdict(cfg)),
                  "out": str(out) if out else None, "steps_done": last.step,
                  "interrupted": stopped, "step_size_auto": explanation, **summary.to_dict()}
        print(json.dumps(record, allow_nan=False))
    elif not args.quiet:
        print(_table(target, cfg, summary))
    return 130 if stopped else 0


def jsonable(v: object) -> object:
    """Nested dicts/sequences of plain values for ``json.dumps`` (non-finite -> None)."""
    if isinstance(v, dict):
        return {str(k): jsonable(e) for k, e in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(e) for e in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def fmt_value(v: object) -> str:
    """A number, tensor or nested list in 4 significant digits; None as ``-``."""
    if v is None:
        return "-"
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(e) for e in v) + "]"
    return f"{float(v):.4g}"  # type: ignore[arg-type]


def _table(target: Target, cfg: SampleConfig, s: RunSummary) -> str:
    params = " ".join(f"{k}={fmt_value(list(v)) if isinstance(v, tuple) else v}"
                      for k, v in target.params.items())
    noise = "" if cfg.noise else " (no noise: MAP)"
    d = s.discrepancy
    rows = [
        ("target", f"{target.name} {params}"),
        ("run", f"{cfg.sampler}{noise}, eps {cfg.step_size:g}, T {cfg.temperature:g}, "
                f"{cfg.chains} chains x {cfg.steps} steps (thin {s.thin}), {s.seconds:.2f} s"),
        ("log Z", f"{s.log_z:.6g} ± {s.log_z_err:.1g} (quadrature)"),
        ("mean", f"{fmt_value(s.mean)}   exact {fmt_value(s.target_mean)}"),
        ("cov", f"{fmt_value(s.cov)}   exact {fmt_value(s.target_cov)}"),
    ]
    if s.sgld_cov is not None:
        rows.append(("sgld cov", f"{fmt_value(s.sgld_cov)}   (exact stationary cov at this eps)"))
    rows += [
        ("discrepancy", f"{fmt_value(d.tv)}   floor {fmt_value(d.floor)} for {d.n} iid samples"),
        ("log p", f"{fmt_value(s.likelihood[-1] if len(s.likelihood) else None)} (final mean)   "
                  f"exact E_p[log p] {fmt_value(s.neg_entropy)}"),
        ("ESS", f"{fmt_value(s.ess)}   R-hat {fmt_value(s.rhat)}"),
        ("acceptance", fmt_value(s.acceptance)),
        ("diverged", s.divergence or "0"),
    ]
    return "\n".join(f"{k:<12}{v}" for k, v in rows)
