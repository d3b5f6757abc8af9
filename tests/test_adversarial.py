"""Adversarial training with dynamics embedding: the bound on the box model, the trainer.

The bound must sit below the exact log Z (grid quadrature) up to its Monte Carlo
error and the quadrature error; the trainer must follow the MLE trainer's
conventions (events, checkpoints, pause / resume bit-for-bit).
"""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.ebm.adversarial import AdversarialConfig, AdversarialTrainer, train_adversarial
from ebmcore.ebm.bound import BoxMap, estimate_bound
from ebmcore.ebm.data import make_dataset
from ebmcore.ebm.flows import make_flow
from ebmcore.ebm.models import MLPEnergy, ModelConfig
from ebmcore.energies import ValidationError
from ebmcore.exact.density import quadrature

BOX = (-2.0, 3.0, -1.0, 2.0)
SMALL = ModelConfig(width=16, depth=2)


def random_energy(seed: int, scale: float = 4.0):
    """A random small MLP energy on BOX, in float64, scaled to have some structure."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLPEnergy(SMALL, BOX).double()
    return lambda x: scale * model(x)


def randomise(flow, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def test_box_map_pulls_back_with_the_same_normaliser():
    # exp(-E(x(z)) + log|dx/dz|) integrates over R^2 to the box's Z (change of variables).
    # The z-integral stops at |z| = 9, missing the strips within s (1 - tanh 9) = 3e-8 s of
    # the 4 walls: a fraction <= 4 * 3e-8 * e^{max E - min E} (= e^{0.39} here) < 1e-6.
    energy, bm = random_energy(0), BoxMap(BOX)
    gx = quadrature(energy, BOX, 256)
    gz = quadrature(bm.pullback(energy), (-9.0, 9.0, -9.0, 9.0), 256)
    assert abs(gx.log_z - gz.log_z) < gx.log_z_err + gz.log_z_err + 1e-6
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(bm.from_box(bm.to_box(z)), z, atol=1e-9, rtol=0)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: bm.to_box(v[None])[0]))(z)
    torch.testing.assert_close(bm.log_det(z), torch.linalg.det(jac).abs().log(), atol=1e-10,
                               rtol=0)


@pytest.mark.parametrize("kind", ["langevin", "hmc"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bound_is_below_exact_log_z(kind, seed):
    # Random energies, random phi (mixture q0 with a coupling layer): bound <= log Z +
    # 3 MC standard errors + the quadrature error estimate.  A true bound exceeds its
    # own 3 sigma with probability 0.13% per case; these bounds are far below anyway.
    energy = random_energy(seed)
    flow = randomise(make_flow(kind, 3, 0.05, components=2, layers=1).double(), seed)
    gd = quadrature(energy, BOX, 256)
    b = estimate_bound(flow, energy, 2000, torch.Generator().manual_seed(seed), BoxMap(BOX))
    assert math.isfinite(b.bound) and b.se > 0
    assert b.bound <= gd.log_z + 3 * b.se + gd.log_z_err
    # The reported terms add up to the bound.
    assert abs(b.energy - b.kinetic + b.entropy - b.log_norm - b.bound) < 1e-9


@pytest.mark.parametrize("kind", ["langevin", "hmc"])
def test_importance_weights_recover_log_z_on_the_box(kind):
    # With q0 fitted to exact draws of p (pulled into z), E_q[exp(w)] = Z exactly, so the
    # log of the mean weight estimates log Z with delta-method standard error
    # std(exp w) / (mean sqrt n), measured on the draws; 4 of those plus the quadrature
    # error.  This checks the box Jacobian and the velocity normalisers, not just a sign.
    energy, bm = random_energy(3), BoxMap(BOX)
    gd = quadrature(energy, BOX, 256)
    g = torch.Generator().manual_seed(0)
    cells = torch.multinomial(gd.prob.reshape(-1), 4000, replacement=True, generator=g)
    xs = torch.stack([gd.xs[cells % 256], gd.ys[cells // 256]], 1)
    flow = make_flow(kind, 2, 0.01 if kind == "langevin" else 0.1, components=8).double()
    flow.q0.fit(bm.from_box(xs))
    n = 20_000
    with torch.no_grad():  # the flow still differentiates E in x internally
        w = flow(bm.pullback(energy), n, g).log_weights
    ratio = (w - w.max()).exp()
    log_mean = float(ratio.mean().log() + w.max())
    rel_se = float(ratio.std() / ratio.mean()) / math.sqrt(n)
    assert rel_se < 0.05
    assert abs(log_mean - gd.log_z) < 4 * rel_se + gd.log_z_err


def tiny(flow: str = "langevin", **kw) -> AdversarialConfig:
    base = dict(flow=flow, flow_steps=2, iters=6, eval_every=3, batch_size=32,
                bound_samples=256, eval_grid=32, flow_components=2, seed=3)
    return AdversarialConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def data():
    return make_dataset("mixture", n_train=200, n_test=100, seed=0)


@pytest.mark.parametrize(("kind", "ema"), [("langevin", 0.0), ("hmc", 0.99)])
def test_training_events_and_the_bound_at_every_logged_iteration(data, kind, ema):
    trainer = AdversarialTrainer(data, tiny(kind, ema=ema), SMALL)
    events = list(trainer.run())
    assert [e.iteration for e in events] == list(range(1, 7))
    assert all(e.method == "adversarial" and e.negatives.shape == (32, 2) for e in events)
    assert events[-1].finished and "finished" in events[-1].message
    x0, x1, y0, y1 = trainer.box
    for e in events:
        assert "bound_batch" in e.extra and "phi_grad_norm" in e.extra
        neg = e.negatives
        assert bool(((neg[:, 0] >= x0) & (neg[:, 0] <= x1) & (neg[:, 1] >= y0)
                     & (neg[:, 1] <= y1)).all())  # the flow maps into the box
    logged = [e for e in events if e.metrics is not None]
    assert [e.iteration for e in logged] == [3, 6]
    for e in logged:
        x, m = e.extra, e.metrics
        # The bound is about the live weights (q follows them); the metrics are about their
        # running average.  Without the average the two log Z are one and the same.
        assert abs(x["gap"] - (x["bound_log_z"] - x["bound"])) < 1e-12
        assert x["bound"] <= x["bound_log_z"] + 3 * x["bound_se"] + x["log_z_err"]
        assert (x["bound_log_z"] == m.log_z) == (ema == 0)
        assert math.isfinite(x["entropy"]) and m.kl is not None
    rows = trainer.history
    assert [r["iteration"] for r in rows] == [3, 6]
    assert {"bound", "bound_se", "bound_log_z", "gap", "q_entropy", "entropy"} <= set(rows[0])
    assert rows[-1]["q_entropy"] == logged[-1].extra["entropy"]  # H(q); "entropy" is p_data's


def test_importance_weights_and_a_frozen_flow(data):
    # phi_steps = 0 leaves phi exactly as initialised; importance weights report an
    # effective sample size between 1 and the batch (uniform weights: exactly the batch).
    trainer = AdversarialTrainer(data, tiny(phi_steps=0, theta_weights="importance"), SMALL)
    before = {k: v.clone() for k, v in trainer.flow.state_dict().items()}
    events = list(trainer.run())
    assert all(torch.equal(v, trainer.flow.state_dict()[k]) for k, v in before.items())
    assert all(1.0 <= e.extra["ess"] <= 32.0 + 1e-9 for e in events)
    uniform = next(AdversarialTrainer(data, tiny(), SMALL).run(1))
    assert uniform.extra["ess"] == pytest.approx(32.0)


def _same(a: AdversarialTrainer, b: AdversarialTrainer) -> None:
    for sa, sb in ((a.model.state_dict(), b.model.state_dict()),
                   (a.eval_model.state_dict(), b.eval_model.state_dict()),
                   (a.flow.state_dict(), b.flow.state_dict())):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(a.negatives, b.negatives)
    assert [r["bound"] for r in a.history] == [r["bound"] for r in b.history]


def test_pause_and_resume_are_bit_for_bit(data):
    whole, _ = train_adversarial(data, tiny(), SMALL)
    paused = AdversarialTrainer(data, tiny(), SMALL)
    losses = []
    for chunk in (2, 1, None):
        for event in paused.run(chunk):
            losses.append(event.loss)
    assert len(losses) == 6 and paused.finished
    _same(whole, paused)


def test_checkpoint_round_trip(data, tmp_path):
    whole, last = train_adversarial(data, tiny("hmc"), SMALL)
    first = AdversarialTrainer(data, tiny("hmc"), SMALL)
    for _ in first.run(4):
        pass
    path = str(tmp_path / "adv.pt")
    first.save(path)
    resumed = AdversarialTrainer.resume(path)
    assert resumed.iteration == 4 and resumed.config == first.config
    events = list(resumed.run())
    assert events[-1].loss == last.loss
    _same(whole, resumed)
    from ebmcore.ebm.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    assert ck.method == "adversarial" and ck.config["flow"] == "hmc"
    assert ck.model()(torch.zeros(1, 2)).shape == (1,)


def test_validation(data, tmp_path):
    for bad in (dict(flow="nuts"), dict(iters=0), dict(flow_steps=-1), dict(flow_lr=0.0),
                dict(bound_samples=1), dict(flow_components=0)):
        with pytest.raises(ValidationError):
            AdversarialConfig(**bad).validate()
    from ebmcore.ebm.checkpoint import save_checkpoint

    path = str(tmp_path / "mle.pt")
    save_checkpoint(path, method="exact", model=MLPEnergy(SMALL, data.box), config={},
                    dataset=data, metrics=[])
    with pytest.raises(ValidationError, match="not a resumable adversarial"):
        AdversarialTrainer.resume(path)


@pytest.mark.parametrize("kind", ["langevin", "hmc"])
def test_cli_adversarial_writes_the_same_outputs_plus_the_bound(tmp_path, capsys, kind):
    import csv
    import json

    from ebmcore.cli.main import main

    out = tmp_path / kind
    common = ["--width", "16", "--batch-size", "32", "--eval-every", "3", "--eval-grid", "32",
              "--json", "--quiet"]
    code = main(["train", "--data", "mixture", "--method", "adversarial", "--flow", kind,
                 "--flow-steps", "2", "--iters", "6", "--n-train", "200", "--n-test", "100",
                 "--bound-samples", "256", "--out", str(out), *common])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "adversarial" and result["flow"] == kind
    assert result["gap"] == pytest.approx(result["bound_log_z"] - result["bound"], abs=1e-12)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["iteration"] for r in rows] == ["3", "6"]
    assert list(rows[0])[-5:] == ["bound", "bound_se", "bound_log_z", "gap", "entropy"]
    assert float(rows[-1]["entropy"]) == pytest.approx(result["q_entropy"])
    samples = list(csv.DictReader(open(out / "samples.csv")))
    assert {r["source"] for r in samples} == {"negatives", "model"}
    code = main(["train", "--resume", str(out / "model.pt"), "--iters", "9", *common[6:]])
    assert code == 0 and json.loads(capsys.readouterr().out)["iterations"] == 9
