"""Step-by-step MALA and HMC: the records replay the kernels' own decisions, draw for draw."""

from __future__ import annotations

import json

import pytest
import torch

from ebmcore.energies import ValidationError
from ebmcore.sampling.kernels import hmc_step, init_state, mala_step
from ebmcore.sampling.stepwise import step_by_step
from ebmcore.targets.registry import TARGETS, make_target

X0 = torch.tensor([[0.5, 0.5], [-1.0, 0.3], [1.5, -1.0], [0.0, 2.0]], dtype=torch.float64)


def replay(target, sampler, x0, n, seed, **kw):
    """Positions and accept decisions of the plain kernels from the same seed."""
    gen = torch.Generator().manual_seed(seed)
    st = init_state(target.energy, x0, target.grad)
    kernel = mala_step if sampler == "mala" else hmc_step
    xs, moved = [], []
    for _ in range(n):
        new, _ = kernel(target.energy, st, gen, grad=target.grad, **kw)
        moved.append((new.x != st.x).any(1).tolist())
        xs.append(new.x)
        st = new
    return torch.stack(xs), moved


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
@pytest.mark.parametrize("name", list(TARGETS))
def test_same_generator_same_decisions(name, sampler):
    t = make_target(name)  # u1..u4 have no closed-form gradient: the autograd path
    kw = {"step_size": 0.2} | ({"n_leapfrog": 4} if sampler == "hmc" else {})
    rec = step_by_step(t, sampler, X0, 25, seed=7, **kw)
    xs, moved = replay(t, sampler, X0, 25, 7, **kw)
    assert rec["accepted"] == moved
    assert torch.allclose(torch.tensor(rec["final"], dtype=torch.float64), xs[-1])
    assert torch.allclose(torch.tensor(rec["x"][1:], dtype=torch.float64), xs[:-1])


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_record_is_json_and_self_consistent(sampler):
    t = make_target("banana")
    rec = step_by_step(t, sampler, X0, 30, step_size=0.3, n_leapfrog=5, seed=1)
    back = json.loads(json.dumps(rec, allow_nan=False))
    assert back == rec
    points = 6 if sampler == "hmc" else 1  # HMC: start plus 5 leapfrog positions
    acc = torch.tensor(rec["accepted"])
    assert torch.tensor(rec["path"]).shape == (30, 4, points, 2)
    assert 0 < acc.double().mean() < 1  # both colours occur at this step size
    for i in range(29):
        for c in range(4):
            proposal, nxt = rec["path"][i][c][-1], rec["x"][i + 1][c]
            assert (nxt == proposal) == acc[i, c]  # accepted: moved to the proposal
            if sampler == "hmc":
                assert rec["path"][i][c][0] == rec["x"][i][c]
    assert all(la is None or la <= 0 for row in rec["log_alpha"] for la in row)
    running = acc.double().cumsum(0) / torch.arange(1, 31)[:, None]
    assert torch.allclose(torch.tensor(rec["acceptance_rate"], dtype=torch.float64), running)
    assert rec["overall_rate"][-1] == pytest.approx(float(acc.double().mean()))


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_tiny_steps_accept_huge_steps_reject(sampler):
    t = make_target("gaussian")
    tiny = step_by_step(t, sampler, X0, 40, step_size=1e-3, n_leapfrog=3, seed=0)
    huge = step_by_step(t, sampler, X0, 40, step_size=5.0, n_leapfrog=3, seed=0)
    assert tiny["overall_rate"][-1] > 0.95 and huge["overall_rate"][-1] < 0.2


def test_bad_input():
    t = make_target("gaussian")
    with pytest.raises(ValidationError, match="step-by-step"):
        step_by_step(t, "sgld", X0, 5, step_size=0.1)
    with pytest.raises(ValidationError, match="initial points"):
        step_by_step(t, "mala", torch.zeros(100, 2), 5, step_size=0.1)
    with pytest.raises(ValidationError, match="step size"):
        step_by_step(t, "hmc", X0, 5, step_size=-1.0)
