"""``python -m ebmcore sample``: run chains on a target, print the exact comparison.

Parsing helpers shared by the subcommands live here too (finite numbers,
comma-separated vectors, JSON-ready values, short number formatting).
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

from ebmcore.energies import Target, ValidationError
from ebmcore.exact.density import quadrature
from ebmcore.exact.summary import GRID, RunSummary, summarize
from ebmcore.sampling.kernels import SAMPLERS
from ebmcore.sampling.runner import INITS, SampleConfig, Trace, sample
from ebmcore.targets.registry import TARGETS, make_target

__all__ = ["FORMULA_BOX", "OUT_FORMATS", "add_parser", "build_target", "cmd_sample",
           "finite_float", "fmt_value", "jsonable", "numbers", "step_size_arg"]

OUT_FORMATS = (".csv", ".parquet")
FORMULA_BOX = (-4.0, 4.0, -4.0, 4.0)  # default box of --target formula


def finite_float(text: str) -> float:
    """argparse type: a finite float (``nan``/``inf`` are usage errors)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def numbers(count: int):
    """argparse type: exactly ``count`` comma-separated finite numbers, as a tuple."""

    def parse(text: str) -> tuple[float, ...]:
        parts = [p for p in text.split(",") if p.strip()]
        if len(parts) != count:
            raise argparse.ArgumentTypeError(
                f"expected {count} comma-separated numbers, got {text!r}")
        return tuple(finite_float(p) for p in parts)

    return parse


def step_size_arg(text: str) -> float | None:
    """argparse type: a finite eps (its sign is checked with the config), or ``auto`` (None)."""
    return None if text.strip().lower() == "auto" else finite_float(text)


def add_parser(sub, epilog: str = "") -> None:
    """Register ``sample`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "sample", help="run many chains on a target and compare with the exact answers",
        description="Run N vectorised chains of SGLD, MALA or HMC on a 2D target and print the "
        "sample statistics beside the exact ones (log Z, mean and covariance by quadrature, "
        "the exact SGLD-biased covariance on Gaussians, histogram discrepancy, ESS, R-hat).",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = SampleConfig()
    p.add_argument("--target", default="gaussian", metavar="NAME",
                   help=f"registry target ({', '.join(TARGETS)}) or 'formula' (default gaussian)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="target parameter, repeatable; vectors comma separated "
                   "(mean=0.5,0.5 cov=2,1,1,2); for formula: expr=... and its named constants")
    p.add_argument("--box", type=numbers(4), metavar="XMIN,XMAX,YMIN,YMAX",
                   help=f"view and quadrature box of a formula target (default {FORMULA_BOX})")
    p.add_argument("--sampler", choices=list(SAMPLERS), default=d.sampler, help="kernel")
    p.add_argument("--chains", type=int, default=d.chains, help="independent chains N")
    p.add_argument("--steps", type=int, default=d.steps, help="transitions per chain T")
    # --- issue 11 hook: --step-size auto (ebmcore.sampling.adapt.run_auto) ---
    p.add_argument("--step-size", type=step_size_arg, default=d.step_size, metavar="EPS",
                   help="eps (the leapfrog step for HMC), or 'auto': MALA/HMC adapt it during "
                   "the burn-in (dual averaging), SGLD takes it from the curvature")
    # --- end of hook ---
    p.add_argument("--no-noise", action="store_true",
                   help="SGLD without noise: gradient descent to a mode (MAP)")
    p.add_argument("--temperature", type=finite_float, default=d.temperature,
                   help="T > 0 samples p^(1/T) (statistics still compare with p)")
    p.add_argument("--leapfrog", type=int, default=d.n_leapfrog, metavar="L",
                   help="HMC leapfrog steps")
    p.add_argument("--burn-in", type=int, default=d.burn_in, metavar="B",
                   help="steps left out of ESS, R-hat and acceptance")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the one random stream")
    p.add_argument("--init", choices=INITS, default=d.init,
                   help="initial points: uniform over the box, a gaussian, or one point")
    p.add_argument("--init-point", type=numbers(2), default=d.init_point, metavar="X,Y",
                   help="centre for --init gaussian / point")
    p.add_argument("--init-std", type=finite_float, default=d.init_std,
                   help="std of --init gaussian")
    p.add_argument("--dtype", choices=("float32", "float64"), default=d.dtype)
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write final positions (chain, x, y, energy, alive) as .csv or .parquet")
    p.add_argument("--trace", action="store_true",
                   help="with --out: write the thinned trace (chain, step, x, y) instead")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    p.set_defaults(handler=cmd_sample)


def _parse_params(items: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"--param expects KEY=VALUE, got {item!r}")
        if key in params:
            raise ValidationError(f"--param {key} given twice")
        params[key] = value
    return params


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
        raise ValidationError(f"--out must end in .csv or .parquet, got {str(out)!r}")
    if not out.parent.is_dir():
        raise ValidationError(f"--out: directory {str(out.parent)!r} does not exist")
    return out


def _frames(trace: Trace, target: Target, full: bool):
    import pandas as pd

    if full:
        pos = trace.positions.to(torch.float64)
        s, n = pos.shape[:2]
        return pd.DataFrame({"chain": torch.arange(n).repeat(s).numpy(),
                             "step": trace.steps.repeat_interleave(n).numpy(),
                             "x": pos[..., 0].reshape(-1).numpy(),
                             "y": pos[..., 1].reshape(-1).numpy()})
    x = trace.x.to(torch.float64)
    with torch.no_grad():
        energy = target(x).detach().to(torch.float64)
    return pd.DataFrame({"chain": torch.arange(x.shape[0]).numpy(), "x": x[:, 0].numpy(),
                         "y": x[:, 1].numpy(), "energy": energy.numpy(),
                         "alive": trace.alive.numpy()})


def cmd_sample(args: argparse.Namespace) -> int:
    """Validate everything, run, write ``--out``, print the summary (JSON or a table)."""
    out = _out_path(args)
    if not 0 <= args.seed < 2**63:
        raise ValidationError(f"seed must be in [0, 2**63), got {args.seed}")
    target = build_target(args.target, _parse_params(args.param), args.box)
    auto = args.step_size is None  # issue 11 hook: --step-size auto
    cfg = SampleConfig(
        sampler=args.sampler, step_size=1.0 if auto else args.step_size, steps=args.steps,
        chains=args.chains,
        noise=not args.no_noise, temperature=args.temperature, n_leapfrog=args.leapfrog,
        burn_in=args.burn_in, seed=args.seed, dtype=args.dtype, device=args.device,
        init=args.init, init_point=args.init_point, init_std=args.init_std).validate()
    gd = quadrature(target.energy, target.box, GRID)
    explanation = None
    if auto:  # issue 11 hook: adapt, then run at the frozen eps (statistics after adaptation)
        from ebmcore.sampling.adapt import run_auto

        result = run_auto(target, cfg, gd)
        trace, explanation = result.trace, result.explanation
        cfg = dataclasses.replace(cfg, step_size=result.step_size)
    else:
        trace = sample(target, cfg)
    summary = summarize(trace, target, gd)
    if out is not None:
        df = _frames(trace, target, args.trace)
        if out.suffix.lower() == ".csv":
            df.to_csv(out, index=False)
        else:
            df.to_parquet(out, index=False)
    if summary.divergence:
        sys.stderr.write(f"warning: {summary.divergence}\n")
    if args.json:
        record = {"target": target.name, "params": jsonable(dict(target.params)),
                  "box": list(target.box), "config": jsonable(dataclasses.asdict(cfg)),
                  "out": str(out) if out else None, "step_size_auto": explanation,
                  **summary.to_dict()}
        print(json.dumps(record, allow_nan=False))
    else:
        print(_table(target, cfg, summary))
    return 0


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
