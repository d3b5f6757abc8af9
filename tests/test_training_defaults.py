"""Every method's defaults on every data set of the registry: the run does not diverge.

Each case is the default run itself (its iterations, schedule and evaluation cadence),
broken off after :data:`ITERS` iterations: two exact evaluations.  It must not have
diverged, and its exact test NLL must be below ``log(area of the box)``, the NLL of the
uniform density on the box: the model has learned something, not moved its mass away
from the data.  With eps 0.01, banana's short-run and replay defaults failed both at
iteration 50 (train NLL 26 nats above uniform).
"""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.ebm.data import dataset_names, make_dataset
from ebmcore.ebm.training import METHODS, TrainConfig, Trainer

pytestmark = pytest.mark.slow

ITERS = 100  # two evaluations at the default cadence of 50
# measured open cases: short-run from noise at eps 0.01 is still worse than uniform at
# iteration 100 here (test NLL 4.43 vs 4.39 on circles, 4.91 vs 4.31 swissroll, 4.65 vs 4.52
# checkerboard, 5.06 vs 4.71 u4); strict, so the mark must go once a default fixes one
OPEN = {("circles", "short-run"), ("swissroll", "short-run"), ("checkerboard", "short-run"),
        ("u4", "short-run")}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("data", dataset_names())
def test_default_run_does_not_diverge(data: str, method: str, request) -> None:
    if (data, method) in OPEN:
        request.applymarker(pytest.mark.xfail(strict=True, reason="short-run default slow"))
    torch.manual_seed(0)
    trainer = Trainer(make_dataset(data, 2000, 1000, seed=0), TrainConfig(method=method))
    events = list(trainer.run(ITERS))
    assert not any(e.diverged for e in events), events[-1].message
    m = trainer.last_metrics
    assert m is not None and m.iteration == ITERS
    assert math.isfinite(m.nll_test) and m.nll_test < trainer.log_area, (
        f"{data}/{method}: test NLL {m.nll_test:.3f} >= uniform {trainer.log_area:.3f}")
