"""The command line: ``python -m ebmcore {targets,sample,bench,train}``.

Every user mistake (unknown target or parameter, a non-finite or out-of-range
number, an unsupported output file) ends the program with status 2 and one
line on stderr that starts with ``error:``; nothing prints a traceback.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import sys
from collections.abc import Sequence

import torch

from ebmcore.cli import flow as cli_flow
from ebmcore.cli import sample as cli_sample
from ebmcore.cli.sample import fmt_value, jsonable
from ebmcore.energies import ValidationError
from ebmcore.exact.density import quadrature
from ebmcore.exact.summary import GRID
from ebmcore.targets.registry import TARGETS

__all__ = ["build_parser", "main"]

VECTOR_OPTIONS = ("--box", "--init-point")  # values may start with a minus sign
EPILOG = """examples:
  python -m ebmcore targets
  python -m ebmcore sample --json                      (the reference Gaussian, eps 0.3)
  python -m ebmcore sample --target banana --sampler mala --step-size 0.02 --init gaussian
  python -m ebmcore sample --chains 100000 --steps 200 --out final.parquet
  python -m ebmcore sample --sampler mala --step-size 0.5 --burn-in 200 --out run.nc  (ArviZ)
  python -m ebmcore sample --target formula --param expr='(x**2+y**2-4)**2/s' --param s=0.5
  python -m ebmcore bench --quick"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error:`` line (status 2), not the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see: {self.prog} --help)\n")
        raise SystemExit(2)


def _add_targets(sub) -> None:
    p = sub.add_parser("targets", help="list the targets, their parameters and exact log Z",
                       description="List every registry target with its parameters (defaults, "
                       "bounds, docs), its box and its exact log Z by quadrature on the box.")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=cmd_targets)


@functools.cache
def target_records() -> tuple[dict, ...]:
    """One JSON-ready record per registry target (quadrature once per process)."""
    records = []
    for name, spec in TARGETS.items():
        t = spec.make()
        gd = quadrature(t.energy, t.box, GRID)
        params = {k: {"default": jsonable(p.default), "doc": p.doc, "low": p.low,
                      "high": p.high, "integer": p.integer} for k, p in spec.params.items()}
        records.append({"name": name, "doc": spec.doc, "params": params, "box": list(t.box),
                        "log_z": gd.log_z, "log_z_err": gd.log_z_err, "log_z_closed": t.log_z,
                        "has_grad": spec.has_grad, "has_sampler": spec.has_sampler})
    return tuple(records)


def cmd_targets(args: argparse.Namespace) -> int:
    records = copy.deepcopy(list(target_records()))
    if args.json:
        print(json.dumps(records, allow_nan=False))
        return 0
    for r in records:
        print(f"{r['name']:<12} {r['doc']}")
        print(f"{'':<12} box {fmt_value(r['box'])}   log Z {r['log_z']:.6g} ± {r['log_z_err']:.1g}")
        for k, p in r["params"].items():
            rng = f"[{fmt_value(p['low'])}, {fmt_value(p['high'])}]"
            print(f"{'':<14}{k}={fmt_value(p['default'])}  {rng}  {p['doc']}")
    print("formula      your own energy: --target formula --param expr='x**2 + y**2' "
          "[--param NAME=VALUE]... [--box XMIN,XMAX,YMIN,YMAX]")
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measure sampler throughput (chain-steps/s) and more",
                       description="Time our samplers against NumPy baselines in the same run "
                       "(median of repeats after a warm-up), plus benches other modules "
                       "register. No timing is asserted anywhere: this only reports.")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this bench (repeatable): sampler, training, dashboard")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    import pandas as pd

    from ebmcore.bench.core import run_benches

    df = run_benches(quick=args.quick, only=args.only)
    if args.json:
        print(df.to_json(orient="records"))
        return 0
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cpus, load average {load}")
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.float_format", "{:.3g}".format):
        print(df.to_string(index=False))
    return 0


def _glue_negative(argv: list[str]) -> list[str]:
    """``--box -4,4,-4,4`` -> ``--box=-4,4,-4,4``: argparse would take ``-4,...`` for an option."""
    out: list[str] = []
    for a in argv:
        negative = a[:1] == "-" and (a[1:2].isdigit() or a[1:2] == ".")
        if out and out[-1] in VECTOR_OPTIONS and negative:
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The full parser, subcommands included."""
    parser = _Parser(prog="python -m ebmcore", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Langevin Lab without a browser: targets with exact "
                     "ground truth, vectorised samplers, EBM training, benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_targets(sub)
    cli_sample.add_parser(sub, EPILOG)
    _add_bench(sub)
    cli_flow.add_parser(sub)
    from ebmcore.cli import (
        train as cli_train,  # imported here: its training imports only load with the parser
    )

    cli_train.add_parser(sub)
    return parser


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(exc: BaseException, limit: int = 500) -> str:
    """An error for the terminal: colour codes removed, one line, at most ``limit`` chars."""
    text = " ".join(_ANSI.sub("", str(exc)).split())
    return text if len(text) <= limit else f"{text[:limit]}..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 for bad input, as argparse)."""
    argv = _glue_negative(sys.argv[1:] if argv is None else list(argv))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except ValidationError as exc:
        sys.stderr.write(f"error: {one_line(exc)}\n")
        return 2
    except (OverflowError, FloatingPointError) as exc:  # a product no check foresaw
        sys.stderr.write(f"error: a number overflowed ({one_line(exc)}); lower the step "
                         "size, the temperature or the other large settings\n")
        return 2
    except OSError as exc:  # e.g. the output file cannot be written
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
