"""Kernel threads: a run split over threads (whole blocks of chains each) is the one-thread
run, bit for bit, on every registry target and every compiled sampler, diverging chains
included; only the float64 sums of energies and acceptances add up in another order."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from ebmcore.energies import ValidationError
from ebmcore.sampling import compiled_run
from ebmcore.sampling.compiled_loops import BLOCK
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.registry import TARGETS, make_target

SAMPLERS = ("sgld", "mala", "hmc", "underdamped")
CHAINS = 2 * BLOCK + 88  # three parts at threads=3: two whole blocks and a short one
EXACT = ("x", "alive", "positions", "paths", "steps", "path_steps")


def _same(a, b) -> None:
    for field in EXACT:
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.n_diverged == b.n_diverged and a.first_diverged_step == b.first_diverged_step
    # The frame sums of energies: the parts' float64 sums added in another order, each term a
    # float32 energy, so they differ by a few float64 roundings of the total (2^-52 relative).
    torch.testing.assert_close(a.mean_energy, b.mean_energy, rtol=1e-12, atol=1e-12)
    if a.acceptance is not None:
        assert math.isclose(a.acceptance, b.acceptance, rel_tol=1e-12)


@pytest.fixture
def split_small(monkeypatch):
    """Split even the tests' small runs (at the library's threshold they would run whole)."""
    monkeypatch.setattr(compiled_run, "MIN_PART_WORK", 1)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("name", list(TARGETS))
def test_threads_give_the_one_thread_run(name, sampler, split_small):
    cfg = SampleConfig(sampler=sampler, chains=CHAINS, steps=40, step_size=0.01, n_leapfrog=3,
                       keep_paths=20, burn_in=10, seed=3)
    one = sample(make_target(name), cfg)
    for threads in (2, 3):
        _same(sample(make_target(name), dataclasses.replace(cfg, threads=threads)), one)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_chains_diverging_in_a_later_part_are_frozen_as_in_one_thread(sampler, dtype,
                                                                       split_small):
    # Chains started at x = 30 on banana blow up at eps = 0.05 (as in test_compiled); here
    # they sit in the last part, so its helper thread reports the first failed check and the
    # span is replayed check by check across all parts.
    x0 = torch.zeros(CHAINS, 2, dtype=getattr(torch, dtype))
    x0[-7:, 0] = 30.0
    cfg = SampleConfig(sampler=sampler, step_size=0.05, steps=300, chains=CHAINS, dtype=dtype,
                       keep_paths=9, n_leapfrog=2, seed=5, burn_in=50)
    one = sample(make_target("banana"), cfg, x0=x0)
    many = sample(make_target("banana"), dataclasses.replace(cfg, threads=3), x0=x0)
    if sampler in ("sgld", "underdamped"):
        assert 0 < one.n_diverged < CHAINS
    _same(many, one)


def test_the_threshold_keeps_small_runs_in_one_thread(monkeypatch):
    calls = []
    real = compiled_run._pool

    def spy(workers):
        calls.append(workers)
        return real(workers)

    monkeypatch.setattr(compiled_run, "_pool", spy)
    sample(make_target("banana"), SampleConfig(chains=CHAINS, steps=20, threads=2))
    assert calls == []  # 600 x 20 chain-steps: below MIN_PART_WORK per part
    sample(make_target("banana"), SampleConfig(chains=4 * BLOCK, steps=1000, threads=2))
    assert calls and set(calls) == {1}  # one helper thread beside the caller's


@pytest.mark.parametrize("threads", [0, -1, 65])
def test_threads_out_of_range_are_refused(threads):
    with pytest.raises(ValidationError, match="threads must be in"):
        SampleConfig(threads=threads).validate()
