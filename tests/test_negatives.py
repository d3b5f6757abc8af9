"""ebmcore.ebm.negatives: the replay buffer's ages (exact bookkeeping, checkpoints)."""

from __future__ import annotations

import pytest
import torch

from ebmcore.box import Box
from ebmcore.ebm.negatives import ReplaySampler


def _replay(size: int, restart: float) -> ReplaySampler:
    return ReplaySampler(Box(-4.0, 4.0, -4.0, 4.0), size, restart,
                         torch.Generator().manual_seed(0), step_size=0.01, steps=2,
                         temperature=1.0, boundary="reflect")


def _quadratic(x):
    return 0.5 * (x ** 2).sum(1)


def test_replay_ages_count_the_runs_since_noise():
    one = _replay(1, 0.0)  # one entry, never restarted: its age is the number of runs
    g = torch.Generator().manual_seed(1)
    for k in range(1, 6):
        one.sample(_quadratic, 1, g)
        assert one.age.tolist() == [k]
    fresh = _replay(1000, 1.0)  # always restarted: every entry drawn has run once
    picked = torch.zeros(1000, dtype=torch.bool)
    for _ in range(3):
        g0 = g.get_state()
        idx = torch.randint(1000, (200,), generator=g)  # the draws sample() makes first
        g.set_state(g0)
        fresh.sample(_quadratic, 200, g)
        picked[idx] = True
    assert set(fresh.age[picked].tolist()) == {1} and set(fresh.age[~picked].tolist()) == {0}


def test_replay_ages_survive_a_checkpoint_and_bad_ones_are_refused():
    a = _replay(100, 0.05)
    g = torch.Generator().manual_seed(2)
    for _ in range(4):
        a.sample(_quadratic, 50, g)
    b = _replay(100, 0.05)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.age, a.age) and int(a.age.max()) >= 2
    b.load_state_dict({"buffer": a.buffer})  # a checkpoint from before ages: count from now
    assert b.age.tolist() == [0] * 100
    for bad in (a.age[:50], a.age.float(), -a.age - 1, [1] * 100):
        with pytest.raises(ValueError, match="ages"):
            b.load_state_dict({"buffer": a.buffer, "age": bad})
