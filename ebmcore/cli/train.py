"""``python -m ebmcore train``: fit an energy model to a 2D data set, with exact metrics.

Writes, under ``--out DIR``: ``metrics.csv`` (one row per exact evaluation),
``model.pt`` (a resumable checkpoint, see :mod:`ebmcore.ebm.checkpoint`) and
``samples.csv`` (the final negatives and exact draws from the trained model).
A run that blows up stops with a clear message and exit status 1 (its files
are still written, for inspection).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import torch

from ebmcore.cli import adversarial as cli_adversarial
from ebmcore.cli.args import BUDGET_FLAG, add_budget, budget_of, finite_float, key_values, numbers
from ebmcore.cli.progress import EventProgress, progress_wanted
from ebmcore.defaults import DEFAULT_DATASET, DEFAULT_METHOD, METHOD_DEFAULTS
from ebmcore.ebm.adversarial import AdversarialTrainer
from ebmcore.ebm.checkpoint import load_checkpoint
from ebmcore.ebm.data import dataset_names, make_dataset
from ebmcore.ebm.loop import TrainingLoop
from ebmcore.ebm.models import ACTIVATIONS, ModelConfig
from ebmcore.ebm.negatives import BOUNDARIES, KERNELS, grid_samples
from ebmcore.ebm.training import METHODS, TrainConfig, Trainer
from ebmcore.energies import ValidationError
from ebmcore.exact.density import grid_points

__all__ = ["METRIC_COLUMNS", "add_parser", "cmd_train", "write_metrics", "write_samples"]

METRIC_COLUMNS = ("iteration", "seconds", "loss", "nll_train", "nll_test", "kl", "log_z",
                  "neg_discrepancy")
N_TRAIN, N_TEST = 10_000, 2_000  # more points than the data module's default: less overfitting
N_MODEL_SAMPLES = 2_000  # exact draws from the trained model written to samples.csv
EXAMPLES = """examples:
  python -m ebmcore train --data mixture --out runs/mix            (persistent chains)
  python -m ebmcore train --data mixture --method exact --json     (exact MLE, the reference)
  python -m ebmcore train --data rings --method replay --steps 40 --out runs/rings
  python -m ebmcore train --data moons --method short-run --iters 500 --l2 0.1 --json
  python -m ebmcore train --data mixture --method adversarial --flow hmc --flow-steps 10
  python -m ebmcore train --resume runs/mix/model.pt --iters 5000 --out runs/mix2"""


def _fmt(v: object) -> str:
    if isinstance(v, str):
        return v
    return ",".join(f"{x:g}" for x in v) if isinstance(v, tuple) else f"{v:g}"


def _method_defaults() -> str:
    return "; ".join(f"{m}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in d.items()
                                          if not (k == "steps" and m == "exact"))
                     for m, d in METHOD_DEFAULTS.items())


def add_parser(sub) -> None:
    """Register ``train`` on the subparsers ``sub``."""
    d = TrainConfig()
    p = sub.add_parser(
        "train", help="train an energy model on 2D data (MCMC or exact MLE), exact metrics",
        description="Fit an MLP energy to a data set by maximum likelihood. The model's density "
        "exp(-E)/Z lives on the data's box (zero outside), so log Z, the NLL and KL(p_data || "
        "p_theta) are computed exactly by quadrature. Negatives: short-run (K Langevin steps "
        "from noise), persistent (PCD), replay (a buffer, a fraction restarted from noise) or "
        "exact (the grid). "
        "Langevin chains stay in the box by REFLECTION at its walls (--boundary clamp projects "
        "onto the wall instead). Method defaults: " + _method_defaults(),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATASET, metavar="NAME",
                   help=f"data set ({', '.join(dataset_names())}); default {DEFAULT_DATASET}")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="data-set parameter, repeatable (noise=0.1, std=0.3, ...)")
    p.add_argument("--n-train", type=int, default=N_TRAIN, help="training points")
    p.add_argument("--n-test", type=int, default=N_TEST, help="held-out points")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the data draw")
    p.add_argument("--method", choices=[*METHODS, cli_adversarial.METHOD], default=DEFAULT_METHOD,
                   help=f"where negatives come from (default {DEFAULT_METHOD})")
    p.add_argument("--iters", type=int, help="training iterations (default: per method)")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds weights, batches, noise")
    g = p.add_argument_group("model")
    g.add_argument("--width", type=int, default=ModelConfig().width, help="hidden units")
    g.add_argument("--depth", type=int, default=ModelConfig().depth, help="hidden layers")
    g.add_argument("--activation", choices=list(ACTIVATIONS), default=ModelConfig().activation)
    g.add_argument("--init-gain", type=finite_float, metavar="G",
                   help="first layer's initial weights x G (default: per method)")
    g.add_argument("--box-pad", type=finite_float, default=d.box_pad,
                   help="model box = data box grown by this fraction per side")
    s = p.add_argument_group("Langevin negatives")
    s.add_argument("--step-size", "--eps", type=finite_float, metavar="EPS",
                   help="Langevin step size eps (default: per method)")
    s.add_argument("--steps", "-K", type=int, metavar="K", help="Langevin steps per iteration")
    s.add_argument("--temperature", type=finite_float, metavar="T",
                   help=f"the chains sample exp(-E/T) (default {d.temperature:g}). ANY OTHER "
                   "VALUE TEMPERS: p_theta is learned too sharp (T<1) or too flat (T>1)")
    s.add_argument("--noise", type=finite_float, metavar="SIGMA",
                   help="the same as a noise std per step: T = sigma^2/(2 eps); 0 = no noise")
    s.add_argument("--no-noise", action="store_true",
                   help="chains without noise: gradient descent on the energy (SGLD only)")
    s.add_argument("--boundary", choices=BOUNDARIES, default=d.boundary,
                   help=f"how SGLD chains stay in the box (default {d.boundary})")
    s.add_argument("--kernel", choices=KERNELS,
                   help="mala (default): the SGLD proposal with a Metropolis accept/reject, "
                   "exact for p_theta, proposals leaving the box rejected; sgld: unadjusted, "
                   "biased at finite eps and unstable where E is steep")
    s.add_argument("--chains", type=int, help="persistent chains (default: batch size)")
    s.add_argument("--buffer-size", type=int,
                   help="replay buffer size (default: per data set)")
    s.add_argument("--restart", type=finite_float,
                   help="replay: fraction of negatives restarted from noise (default: per data "
                   "set)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--lr", type=finite_float, help="Adam learning rate (default: per method)")
    o.add_argument("--lr-final", type=finite_float, default=d.lr_final,
                   help="final lr as a fraction of --lr (cosine decay)")
    o.add_argument("--betas", type=numbers(2), metavar="B1,B2",
                   help="Adam betas (default: per method; 0 momentum for the MCMC methods)")
    o.add_argument("--ema", type=finite_float,
                   help="decay of the running average of the weights that metrics, samples "
                   "and model.pt use (0 = off; default: per method)")
    o.add_argument("--batch-size", type=int, help="data points and negatives per iteration")
    o.add_argument("--l2", type=finite_float, default=None,
                   help="L2 penalty weight on energies (0 = off; default: per data set)")
    o.add_argument("--grad-clip", type=finite_float, default=d.grad_clip,
                   help="max gradient norm (0 = off)")
    o.add_argument("--grid", type=int, default=d.grid, help="exact method: training grid side")
    m = p.add_argument_group("metrics and output")
    m.add_argument("--eval-grid", type=int, default=d.eval_grid, help="metrics grid side")
    m.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="iterations between exact metrics")
    m.add_argument("--out", metavar="DIR", help="write metrics.csv, model.pt, samples.csv here")
    m.add_argument("--resume", metavar="CKPT", help="continue a model.pt (its data and settings; "
                   "--iters raises the total)")
    m.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    m.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    m.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the matrices are small, and threads on a "
                   "shared machine thrash); 0 = torch's default")
    cli_adversarial.add_arguments(p)
    add_budget(p)
    p.set_defaults(handler=cmd_train)


def _noise(args: argparse.Namespace) -> dict[str, object]:
    """``noise`` and ``temperature`` of TrainConfig from the three noise flags."""
    given = [f for f, v in (("--temperature", args.temperature), ("--noise", args.noise),
                            ("--no-noise", args.no_noise or None)) if v is not None]
    if len(given) > 1:
        raise ValidationError(f"give one of {', '.join(given)}, not several")
    if args.no_noise:
        return {"noise": False}
    if args.noise is not None:
        return {"noise": args.noise}  # a noise std: TrainConfig turns it into a temperature
    return {} if args.temperature is None else {"temperature": args.temperature}


def _trainer(args: argparse.Namespace) -> TrainingLoop:
    if args.resume:
        adversarial = load_checkpoint(args.resume).method == cli_adversarial.METHOD
        trainer = (AdversarialTrainer if adversarial else Trainer).resume(
            args.resume, budget=budget_of(args), flag=BUDGET_FLAG)
        if args.iters is not None:
            if args.iters < trainer.iteration:
                raise ValidationError(f"--iters {args.iters} is below the checkpoint's "
                                      f"iteration {trainer.iteration}")
            trainer.config = replace(trainer.config, iters=args.iters).validate(
                budget_of(args), model=trainer.model.config, flag=BUDGET_FLAG)
        return trainer
    data = make_dataset(args.data, args.n_train, args.n_test, args.data_seed,
                        key_values(args.param))
    model = ModelConfig(width=args.width, depth=args.depth, activation=args.activation)
    if args.method == cli_adversarial.METHOD:
        return cli_adversarial.make_trainer(args, data, model, budget_of(args))
    cfg = TrainConfig(
        method=args.method, iters=args.iters, lr=args.lr, lr_final=args.lr_final,
        betas=None if args.betas is None else tuple(args.betas), ema=args.ema,
        batch_size=args.batch_size, step_size=args.step_size,
        steps=args.steps, **_noise(args), l2=args.l2, grad_clip=args.grad_clip,
        chains=args.chains, buffer_size=args.buffer_size, restart=args.restart, grid=args.grid,
        eval_grid=args.eval_grid, eval_every=args.eval_every, init_gain=args.init_gain,
        box_pad=args.box_pad, boundary=args.boundary, kernel=args.kernel, seed=args.seed)
    return Trainer(data, cfg, model, budget=budget_of(args), flag=BUDGET_FLAG)


def _cell(v: object) -> object:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def write_metrics(path: Path, rows: list[dict], columns: tuple[str, ...] = METRIC_COLUMNS
                  ) -> None:
    """``metrics.csv``: ``columns``, one row per evaluation; empty cells where unknown."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(k)) for k in columns])


def write_samples(path: Path, trainer: Trainer, n: int = N_MODEL_SAMPLES) -> None:
    """``samples.csv`` (x, y, source): the final negatives, and exact draws from p_theta."""
    parts = [(trainer.negatives, "negatives")]
    gd = trainer.last_metrics.density if trainer.last_metrics is not None else None
    if gd is not None:
        pts = grid_points(gd.box, gd.n)[2]
        gen = torch.Generator().manual_seed(trainer.config.seed + 1)
        cell = ((gd.box[1] - gd.box[0]) / gd.n, (gd.box[3] - gd.box[2]) / gd.n)
        draws = grid_samples(pts, gd.prob.reshape(-1), cell, n, gen)
        parts.append((draws, "model"))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("x", "y", "source"))
        for x, source in parts:
            for a, b in x.tolist():
                w.writerow((f"{a:.6g}", f"{b:.6g}", source))


def _summary(trainer: TrainingLoop, out: str | None) -> dict:
    m = trainer.last_metrics
    md = m.to_dict() if m is not None else {}
    return {"data": trainer.dataset.name, "method": trainer.method, "iterations": trainer.iteration,
            "seconds": trainer.seconds,
            "iters_per_second": trainer.iteration / trainer.seconds if trainer.seconds else None,
            "kl": md.get("kl"), "nll_train": md.get("nll_train"), "nll_test": md.get("nll_test"),
            "entropy": md.get("entropy"), "log_z": md.get("log_z"),
            "neg_discrepancy": md.get("neg_discrepancy"), "neg_floor": md.get("neg_floor"),
            "temperature": trainer.temperature, "diverged": trainer.diverged is not None,
            "message": trainer.diverged, "out": out,
            **(cli_adversarial.summary(trainer) if trainer.method == cli_adversarial.METHOD
               else {})}


def _progress(ev) -> str:
    m = ev.metrics
    kl = "" if m.kl is None else f"  KL {m.kl:.4f}"
    tv = "" if m.neg_discrepancy is None else (
        f"  neg TV {m.neg_discrepancy:.3f} (floor {m.neg_floor:.3f})")
    return (f"[{ev.iteration:>6}/{ev.total}] {ev.seconds:7.1f} s  loss {ev.loss:+.4f}  "
            f"NLL train {m.nll_train:.4f} test {m.nll_test:.4f}{kl}  log Z {m.log_z:.3f}{tv}"
            + cli_adversarial.progress(ev))


def cmd_train(args: argparse.Namespace) -> int:
    if args.threads < 0:
        raise ValidationError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = _trainer(args)
    c, method = trainer.config, trainer.method
    if not args.quiet:
        if method in METHODS and method != "exact" and abs(trainer.temperature - 1.0) > 1e-9:
            sys.stderr.write(f"warning: noise {c.noise_scale:g} != sqrt(2 eps) = "
                             f"{math.sqrt(2 * c.step_size):g}: the chains sample exp(-E/T) with "
                             f"T = {trainer.temperature:.3g}, so p_theta is learned TEMPERED\n")
        sys.stderr.write(f"train {trainer.dataset.name}: {method}, {c.iters} iterations, "
                         f"box {tuple(round(v, 3) for v in trainer.box)}\n")
    bar = EventProgress(c.iters, initial=trainer.iteration, unit="it", desc=method,  # progress
                        enabled=progress_wanted(sys.stderr, json=args.json, quiet=args.quiet))
    for ev in bar.track(trainer.run(), lambda ev: ev.iteration):
        if ev.metrics is not None and not args.quiet:
            bar.write(_progress(ev))
        if ev.diverged:
            bar.write(f"error: {ev.message}")
    stopped = bar.interrupted and not trainer.finished  # progress: Ctrl-C, between iterations
    out = None
    if args.out:
        d = Path(args.out)
        d.mkdir(parents=True, exist_ok=True)
        if method == cli_adversarial.METHOD:
            write_metrics(d / "metrics.csv", cli_adversarial.csv_rows(trainer.history),
                          METRIC_COLUMNS + cli_adversarial.EXTRA_COLUMNS)
        else:
            write_metrics(d / "metrics.csv", trainer.history)
        trainer.save(str(d / "model.pt"))
        write_samples(d / "samples.csv", trainer)
        out = str(d)
    summary = _summary(trainer, out)
    if args.json:
        print(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                          for k, v in summary.items()}, allow_nan=False))
    elif not args.quiet:
        print(_text(summary))
    if stopped:  # progress: say what finished
        wrote = f"; wrote them to {out}" if out else ""
        sys.stderr.write(f"interrupted: {trainer.iteration} of {c.iters} iterations "
                         f"finished{wrote}\n")
        return 130
    return 1 if trainer.diverged is not None else 0


def _text(s: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:.4f}"

    lines = [f"{s['data']} / {s['method']}: {s['iterations']} iterations in {s['seconds']:.1f} s",
             f"  NLL train {f(s['nll_train'])}  test {f(s['nll_test'])}  "
             f"(entropy of p_data {f(s['entropy'])})",
             f"  KL(p_data || p_theta) {f(s['kl'])}   log Z {f(s['log_z'])}",
             f"  negatives vs p_theta: TV {f(s['neg_discrepancy'])} (iid floor "
             f"{f(s['neg_floor'])})"]
    if "bound" in s:
        lines.append(f"  {s['flow']} flow, T = {s['flow_steps']}: bound {f(s['bound'])} "
                     f"(+- {f(s['bound_se'])}) <= log Z of the live weights "
                     f"{f(s['bound_log_z'])}, gap {f(s['gap'])}, entropy of q "
                     f"{f(s['q_entropy'])}")
    if s["diverged"]:
        lines.append(f"  DIVERGED: {s['message']}")
    if s["out"]:
        lines.append(f"  wrote {s['out']}/metrics.csv, model.pt, samples.csv")
    return "\n".join(lines)
