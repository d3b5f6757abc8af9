"""The ``--method adversarial`` branch of ``python -m ebmcore train`` (:mod:`ebmcore.cli.train`).

Only what differs from the MLE methods lives here: the flow's options, building the
trainer, and the bound's numbers in the progress lines, the summary and ``metrics.csv``
(``bound``, ``bound_se``, ``bound_log_z`` of the live weights, ``gap``, and ``entropy``,
the bound's H(q), which history rows call ``q_entropy``).
"""

from __future__ import annotations

import argparse

from ebmcore.budget import DEFAULT_BUDGET, Budget
from ebmcore.cli.args import BUDGET_FLAG, finite_float
from ebmcore.defaults import DEFAULT_FLOW
from ebmcore.ebm.adversarial import (
    FLOW_DEFAULTS,
    METHOD,
    THETA_WEIGHTS,
    AdversarialConfig,
    AdversarialTrainer,
)
from ebmcore.ebm.data import Dataset
from ebmcore.ebm.flows import FLOWS
from ebmcore.ebm.loop import TrainEvent
from ebmcore.ebm.models import ModelConfig

__all__ = ["EXTRA_COLUMNS", "METHOD", "add_arguments", "csv_rows", "make_trainer", "progress",
           "summary"]

EXTRA_COLUMNS = ("bound", "bound_se", "bound_log_z", "gap", "entropy")  # after the MLE columns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``adversarial`` option group (ignored by the other methods)."""
    d = AdversarialConfig()
    steps = ", ".join(f"{k} {v['flow_steps']}" for k, v in FLOW_DEFAULTS.items())
    g = parser.add_argument_group(
        "adversarial (--method adversarial)",
        "q_phi is a dynamics-embedding flow; phi maximises the bound E_q[-E - K] + H(q) - "
        "log Z_K <= log Z, theta minimises E_data[E] - E_q[E]. The Langevin options of the "
        "MLE methods (--steps, --step-size, --noise, --boundary, ...) do not apply.")
    g.add_argument("--flow", choices=list(FLOWS), default=DEFAULT_FLOW,
                   help=f"hmc: T leapfrog steps (tight bound); langevin: T noisy gradient "
                   f"steps (looser: every step costs) (default {DEFAULT_FLOW})")
    g.add_argument("--flow-steps", type=int, metavar="T", help=f"dynamics steps ({steps})")
    g.add_argument("--flow-step-size", type=finite_float, metavar="EPS",
                   help="initial step size of every flow step, learned (box = [-1, 1]-ish units)")
    g.add_argument("--flow-components", type=int, default=d.flow_components, metavar="K",
                   help=f"Gaussian components of q0, started at a k-means of the data "
                   f"(default {d.flow_components})")
    g.add_argument("--flow-layers", type=int, default=d.flow_layers, metavar="L",
                   help="affine coupling layers after q0's mixture")
    g.add_argument("--flow-lr", type=finite_float, default=d.flow_lr, metavar="LR",
                   help=f"Adam learning rate of phi (default {d.flow_lr:g})")
    g.add_argument("--phi-steps", type=int, default=d.phi_steps, metavar="N",
                   help="phi updates per theta update")
    g.add_argument("--theta-weights", choices=list(THETA_WEIGHTS), default=d.theta_weights,
                   help="weights of q's draws in theta's step: uniform, or importance "
                   "(self-normalised p_aug / q)")
    g.add_argument("--bound-samples", type=int, default=d.bound_samples, metavar="N",
                   help=f"fresh draws of q for the bound at each evaluation ({d.bound_samples})")


def make_trainer(args: argparse.Namespace, data: Dataset, model: ModelConfig,
                 budget: Budget = DEFAULT_BUDGET) -> AdversarialTrainer:
    """An adversarial trainer from ``train``'s parsed arguments (shared ones included)."""
    d = AdversarialConfig()
    cfg = AdversarialConfig(
        flow=args.flow, flow_steps=args.flow_steps, flow_step_size=args.flow_step_size,
        flow_components=args.flow_components, flow_layers=args.flow_layers,
        flow_lr=args.flow_lr, phi_steps=args.phi_steps, theta_weights=args.theta_weights,
        iters=args.iters, lr=args.lr, lr_final=args.lr_final,
        betas=d.betas if args.betas is None else tuple(args.betas),
        ema=d.ema if getattr(args, "ema", None) is None else args.ema,
        batch_size=d.batch_size if args.batch_size is None else args.batch_size,
        l2=0.0 if args.l2 is None else args.l2, grad_clip=args.grad_clip,
        init_gain=d.init_gain if args.init_gain is None else args.init_gain,
        bound_samples=args.bound_samples, eval_grid=args.eval_grid,
        eval_every=args.eval_every, box_pad=args.box_pad, seed=args.seed)
    return AdversarialTrainer(data, cfg, model, budget=budget, flag=BUDGET_FLAG)


def progress(event: TrainEvent) -> str:
    """Suffix of a progress line: the bound, its error and the gap to the exact log Z.

    The line's own ``log Z`` is that of the weights' running average (``--ema``); the
    bound is about the live weights that ``q`` follows, so it shows their log Z.
    """
    x = event.extra
    if "bound" not in x:
        return ""
    return (f"  bound {x['bound']:.3f} ± {x['bound_se']:.3f} <= log Z of the live weights "
            f"{x['bound_log_z']:.3f}: gap {x['gap']:.3f}")


def csv_rows(history: list[dict]) -> list[dict]:
    """History rows for ``metrics.csv``: its ``entropy`` column is the bound's H(q)."""
    return [{**r, "entropy": r.get("q_entropy")} for r in history]


def summary(trainer: AdversarialTrainer) -> dict[str, object]:
    """The adversarial numbers of the final summary (``None`` before any evaluation)."""
    row = trainer.history[-1] if trainer.history else {}
    c = trainer.config
    return {"flow": c.flow, "flow_steps": c.flow_steps,
            **{k: row.get(k) for k in ("bound", "bound_se", "bound_log_z", "gap", "q_entropy")}}
