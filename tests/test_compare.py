"""The records behind the family's views: phase space, equal-gradient race, mode weights."""

from __future__ import annotations

import json

import torch

from ebmcore.exact.density import quadrature
from ebmcore.exact.modes import mixture_centres
from ebmcore.sampling.compare import equal_gradient_race, mode_weights, phase_space
from ebmcore.sampling.underdamped import underdamped_init, underdamped_step
from ebmcore.targets.registry import make_target


def test_phase_space_replays_the_kernel():
    t = make_target("double_well")
    x0 = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    rec = phase_space(t, x0, 20, step_size=0.1, friction=0.5, seed=4)
    assert json.loads(json.dumps(rec, allow_nan=False)) == rec
    gen = torch.Generator().manual_seed(4)
    st = underdamped_init(t.energy, x0, gen, grad=t.grad)
    for _ in range(20):
        st, _ = underdamped_step(t.energy, st, gen, step_size=0.1, friction=0.5, grad=t.grad)
    assert len(rec["x"]) == len(rec["v"]) == 21
    assert torch.allclose(torch.tensor(rec["x"][-1], dtype=torch.float64), st.x)
    assert torch.allclose(torch.tensor(rec["v"][-1], dtype=torch.float64), st.v)


def test_equal_gradient_race_reaches_the_floor_for_both():
    # After 300 gradients both have forgotten the uniform start on the Gaussian; with 16x16
    # bins and 4000 chains neither step's bias is visible: both sit within 1.5x the iid floor,
    # while the uniform start is far above it.
    t = make_target("gaussian")
    gd = quadrature(t.energy, t.box, 256)
    rec = equal_gradient_race(t, gd, steps=300, chains=4000, sgld_step=0.1,
                              underdamped_step=0.3, frames=10)
    assert json.loads(json.dumps(rec, allow_nan=False)) == rec
    assert rec["steps"][0] == 0 and len(rec["sgld"]) == len(rec["underdamped"]) == len(
        rec["steps"])
    for name in ("sgld", "underdamped"):
        assert rec[name][0] > 5 * rec["floor"] and rec[name][-1] < 1.5 * rec["floor"]


def test_mode_weights_record():
    t = make_target("mixture", k=4)
    gd = quadrature(t.energy, t.box, 256)
    rec = mode_weights(t, gd, mixture_centres(t), steps=200, chains=500)
    assert json.loads(json.dumps(rec)) == rec
    assert len(rec["exact"]) == len(rec["annealed"]) == len(rec["plain"]) == 4
    assert abs(sum(rec["annealed"]) - 1) < 1e-12 and rec["plain"][0] > 0.9  # k=4: stuck
