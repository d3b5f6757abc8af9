"""Every method's defaults on every data set of the registry: the run does not diverge.

Each case is the default run itself (its iterations, schedule and evaluation cadence),
broken off after :data:`ITERS` iterations: two exact evaluations.  It must not have
diverged, and its exact test NLL must be below ``log(area of the box)``, the NLL of the
uniform density on the box: the model has learned something, not moved its mass away
from the data.  With eps 0.01, banana's short-run and replay defaults failed both at
iteration 50 (train NLL 26 nats above uniform); with eps 0.01, short-run on circles,
swissroll, checkerboard and u4 was still worse than uniform at iteration 100.
"""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.box import Box
from ebmcore.ebm.data import dataset_names, make_dataset
from ebmcore.ebm.training import METHODS, TrainConfig, Trainer
from ebmcore.exact.density import kl_divergence, quadrature

pytestmark = pytest.mark.slow

ITERS = 100  # two evaluations at the default cadence of 50


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("data", dataset_names())
def test_default_run_does_not_diverge(data: str, method: str) -> None:
    torch.manual_seed(0)
    trainer = Trainer(make_dataset(data, 2000, 1000, seed=0), TrainConfig(method=method))
    events = list(trainer.run(ITERS))
    assert not any(e.diverged for e in events), events[-1].message
    m = trainer.last_metrics
    assert m is not None and m.iteration == ITERS
    assert math.isfinite(m.nll_test) and m.nll_test < trainer.log_area, (
        f"{data}/{method}: test NLL {m.nll_test:.3f} >= uniform {trainer.log_area:.3f}")


def test_persistent_default_learns_the_rings() -> None:
    # issue #13's goal: persistent chains at rings' defaults reach exact KL <= 0.15 (the
    # exact gradient's own figure at 1500 iterations was 0.16).  Measured at seed 0 with the
    # default (eps 0.04, lr 3e-3, 6000 iterations): 0.137 (seed 1: 0.058); at lr 2e-3 0.1499
    # (a pass by 1e-4, hence the higher rate; lr 4e-3 diverged at seed 1), at eps 0.01 and
    # 3000 iterations 0.33.  About 40-110 s on one loaded core.
    torch.manual_seed(0)
    trainer = Trainer(make_dataset("rings", 2000, 1000, seed=0), TrainConfig(method="persistent"))
    events = list(trainer.run())
    assert not events[-1].diverged, events[-1].message
    m = trainer.last_metrics
    assert m is not None and m.iteration == 6000 and m.kl is not None
    assert m.kl <= 0.15, f"rings/persistent: KL {m.kl:.3f}"


def _eight_gaussians(x: torch.Tensor) -> torch.Tensor:
    """The energy of 8gaussians' density up to a constant: eight std-0.3 Gaussians at radius 2.8
    (the toy set carries no density; this is the one it is drawn from)."""
    angle = (math.pi / 4) * torch.arange(8, dtype=torch.float64)
    centres = 2.8 * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    d2 = ((x.double()[:, None, :] - centres) ** 2).sum(-1)
    return -torch.logsumexp(-d2 / (2 * 0.3**2), 1)


def _final_kl(trainer: Trainer) -> float:
    """Exact KL(p_data || p_theta) of the run's last model on the evaluation grid."""
    if trainer.dataset.name == "8gaussians":
        box, n = Box.of(trainer.box), trainer.config.eval_grid
        return kl_divergence(quadrature(_eight_gaussians, box, n),
                             quadrature(trainer.eval_model, box, n))
    assert trainer.last_metrics is not None and trainer.last_metrics.kl is not None
    return trainer.last_metrics.kl


# issue #13's goal for replay: exact KL <= 0.05 at the default seed.  The runs are
# deterministic (one seeded generator), so the bound is the goal itself, not a tolerance.
REPLAY_GOALS = {"banana": 0.05, "8gaussians": 0.05}


@pytest.mark.parametrize("data", REPLAY_GOALS)
def test_replay_default_reaches_its_goal(data: str) -> None:
    # measured at seed 0: banana 0.019, 8gaussians 0.038 (seed 1: 0.021, 0.030); 1-3
    # minutes each on one loaded core
    torch.manual_seed(0)
    trainer = Trainer(make_dataset(data, 2000, 1000, seed=0), TrainConfig(method="replay"))
    events = list(trainer.run())
    assert not events[-1].diverged, events[-1].message
    kl = _final_kl(trainer)
    assert kl <= REPLAY_GOALS[data], f"{data}/replay: KL {kl:.3f}"
