"""ebmcore.budget: cost estimates and the one-line refusals above the budget."""

from __future__ import annotations

import math

import pytest

from ebmcore.budget import ANALYTIC_EVAL, GIB, Budget, Cost, check, sampling_cost, training_cost
from ebmcore.energies import ValidationError


def test_sampling_work_counts_every_gradient_evaluation():
    c = sampling_cost(chains=500, steps=1000, grads_per_step=10)
    assert c.work == 500 * 1000 * 10 * ANALYTIC_EVAL
    assert "leapfrog" in c.lower and "leapfrog" not in sampling_cost(chains=1, steps=1).lower


def test_sampling_memory_caps_the_trace_but_not_the_paths():
    small = sampling_cost(chains=10, steps=100, keep_paths=16, itemsize=8)
    # 16 numbers of state per chain, every position recorded (10 x 101), 10 full paths
    assert small.memory == 8 * (16 * 10 + 2 * 10 * 101 + 2 * 10 * 101)
    huge = sampling_cost(chains=1000, steps=10**6, keep_paths=16, max_points=2_000_000)
    assert huge.memory == 4 * (16 * 1000 + 2 * 2_000_000 + 2 * 16 * (10**6 + 1))


def test_defaults_fit_and_the_reported_abuses_do_not():
    check(sampling_cost(chains=500, steps=1000))  # the playground's defaults
    check(sampling_cost(chains=10**6, steps=1000))  # a researcher's large run
    with pytest.raises(ValidationError, match=r"operations, over the budget.*lower chains"):
        check(sampling_cost(chains=2 * 10**6, steps=10**6))  # 2e12 chain-steps
    with pytest.raises(ValidationError, match="leapfrog"):
        check(sampling_cost(chains=10**6, steps=1000, grads_per_step=1000))
    mlp = {"params": 3 * 128 + 129 * 128 + 129, "width": 128, "depth": 2}
    check(training_cost(iters=3000, points=256, steps=20, **mlp))  # default persistent run
    with pytest.raises(ValidationError, match="over the budget"):
        check(training_cost(iters=2, points=10**6, steps=10_000, **mlp))
    wide = {"params": 3 * 1024 + 7 * 1025 * 1024 + 1025, "width": 1024, "depth": 8}
    with pytest.raises(ValidationError, match="model size"):
        check(training_cost(iters=10, points=256, steps=10_000, **wide))


def test_memory_limit_and_flag_are_named():
    c = Cost(work=1.0, memory=8 * GIB, lower="chains")
    with pytest.raises(ValidationError, match=r"8 GiB of memory, over the budget of 4 GiB: "
                                              r"lower chains \(or raise it with --budget\)"):
        check(c, flag="--budget")
    assert check(c, Budget(memory=16 * GIB)) is c


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_non_finite_estimates_are_refused(bad):
    with pytest.raises(ValidationError, match="too large to estimate"):
        check(Cost(work=bad, memory=0.0, lower="steps"))
