"""Training: the exact-MLE gradient, moment matching, pause/resume, divergence, the CLI."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ebmcore.cli.main import main
from ebmcore.ebm.data import Dataset, make_dataset
from ebmcore.ebm.evaluation import exact_metrics
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.negatives import keep_in_box
from ebmcore.ebm.training import METHODS, TrainConfig, Trainer
from ebmcore.energies import ValidationError
from ebmcore.exact.density import quadrature

TINY = ModelConfig(width=16, depth=2)


def _toy(n_train: int = 256, n_test: int = 128, seed: int = 0) -> Dataset:
    return make_dataset("mixture", n_train, n_test, seed)


def _tiny(method: str, **kw) -> TrainConfig:
    base = {"iters": 12, "batch_size": 32, "steps": 5, "eval_every": 4, "eval_grid": 32,
            "grid": 16, "buffer_size": 64}
    return TrainConfig(method=method, **{**base, **kw})


def test_exact_gradient_is_the_autograd_gradient_of_the_grid_likelihood():
    # The surrogate E_data[E] - sum_i w_i E(g_i), w = softmax(-E(grid)) detached, must
    # have exactly the gradient of mean E(data) + log Z_grid.  In float64 both are the
    # same sums in a different order: agreement to ~1e-12 relative; we allow 1e-9.
    tr = Trainer(_toy(), _tiny("exact"), TINY)
    tr.model.double()
    tr.grid = tr.grid.double()
    pos = tr.train_x[:64].double()
    loss, _, _ = tr._losses(pos)
    surrogate = torch.autograd.grad(loss, list(tr.model.parameters()))
    e_grid = tr.model(tr.grid)
    nll = tr.model(pos).mean() + torch.logsumexp(-e_grid, 0) + tr.log_cell
    exact = torch.autograd.grad(nll, list(tr.model.parameters()))
    for a, b in zip(surrogate, exact, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    # and log Z_grid is the quadrature's log Z on the same cells (midpoint rule)
    gd = quadrature(tr.model, tr.box, tr.config.grid)
    log_z = float(torch.logsumexp(-e_grid.detach(), 0)) + tr.log_cell
    assert log_z == pytest.approx(gd.log_z, abs=1e-9)


class Quadratic(nn.Module):
    """``E(x) = (x - m)^T A (x - m) / 2`` with ``A = L L^T``, L lower triangular."""

    def __init__(self) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.log_diag = nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.off = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.zeros((), dtype=torch.float64)
        lower = torch.stack([torch.stack([self.log_diag[0].exp(), z]),
                             torch.stack([self.off[0], self.log_diag[1].exp()])])
        d = (x.double() - self.m) @ lower
        return 0.5 * (d * d).sum(1)


def test_exact_training_of_a_gaussian_energy_matches_the_data_moments():
    # A quadratic energy is an exponential family with statistics x and x x^T, so at the
    # maximum of the grid likelihood the grid moments of p_theta equal the data's
    # empirical moments exactly (whatever the box).  Full-batch exact gradients make the
    # optimisation deterministic and float64 makes it precise: after 200 Adam steps the
    # residual is ~5e-6 (measured), so 1e-4 (1e-4 of the data's variances) leaves a 20x
    # margin while still catching any bias (a wrong sign or a missing log Z term is O(1)).
    g = torch.Generator().manual_seed(3)
    cov = torch.tensor([[1.0, 0.5], [0.5, 0.8]], dtype=torch.float64)
    x = torch.tensor([0.5, -0.25]) + (torch.randn(400, 2, generator=g, dtype=torch.float64)
                                      @ torch.linalg.cholesky(cov).T).float()
    data = Dataset("gauss", x, x[:50], (-5.0, 5.0, -5.0, 5.0))
    cfg = TrainConfig(method="exact", iters=200, lr=0.1, lr_final=0.01, batch_size=400,
                      grid=32, eval_grid=32, eval_every=0, ema=0.0, betas=(0.9, 0.999))
    tr = Trainer(data, cfg, model=Quadratic())
    tr.grid = tr.grid.double()
    for _ in tr.run():
        pass
    gd = quadrature(tr.model, tr.box, 32)  # the training grid's cells
    xd = x.double()
    assert torch.allclose(gd.mean, xd.mean(0), atol=1e-4)
    assert torch.allclose(gd.cov, torch.cov(xd.T, correction=0), atol=1e-4)


def _params(tr: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in tr.model.parameters()]


@pytest.mark.parametrize("method", METHODS)
def test_pause_and_resume_is_bitwise_identical(method):
    # Same seed: a run broken off twice (mid-stream, and at a run(n) boundary) and
    # resumed must give exactly the same weights, negatives and metrics.
    data = _toy()
    whole = Trainer(data, _tiny(method), TINY)
    events = list(whole.run())
    paused = Trainer(data, _tiny(method), TINY)
    for i, _ in enumerate(paused.run()):
        if i == 2:
            break  # a pause in the middle of a `for` loop
    assert paused.iteration == 3
    n = len(list(paused.run(4)))
    assert n == 4 and paused.iteration == 7
    rest = list(paused.run())
    assert paused.iteration == whole.iteration == 12 and rest[-1].finished
    for a, b in zip(_params(whole), _params(paused), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(events[-1].negatives, rest[-1].negatives)
    drop = ("seconds", "eval_seconds")  # wall-clock timings, not results
    strip = [[{k: v for k, v in r.items() if k not in drop} for r in t.history]
             for t in (whole, paused)]
    assert strip[0] == strip[1] and len(strip[0]) == 3


@pytest.mark.parametrize("boundary", ["reflect", "clamp"])
@settings(max_examples=60, deadline=None)
@given(xy=st.lists(st.floats(-50, 50), min_size=2, max_size=2))
def test_keep_in_box(boundary, xy):
    box = (-1.0, 2.0, -3.0, 0.5)
    x = torch.tensor([xy], dtype=torch.float64)
    y = keep_in_box(x, box, boundary)[0]
    assert box[0] <= y[0] <= box[1] and box[2] <= y[1] <= box[3]
    inside = box[0] <= xy[0] <= box[1] and box[2] <= xy[1] <= box[3]
    if inside:  # points inside are untouched
        assert torch.allclose(y, x[0])
    if boundary == "reflect" and box[0] - 3 <= xy[0] < box[0]:  # mirror image in the wall
        assert float(y[0]) == pytest.approx(2 * box[0] - xy[0], abs=1e-9)


@pytest.mark.parametrize("kernel", ["sgld", "mala"])
def test_chains_stay_in_the_box_and_events_are_complete(kernel):
    # big steps hit the walls: SGLD reflects, MALA rejects proposals outside the box
    tr = Trainer(_toy(), _tiny("persistent", step_size=0.5, kernel=kernel), TINY)
    x0, x1, y0, y1 = tr.box
    for ev in tr.run():
        neg = ev.negatives
        assert neg.shape == (32, 2)
        assert bool(((neg[:, 0] >= x0) & (neg[:, 0] <= x1)).all())
        assert bool(((neg[:, 1] >= y0) & (neg[:, 1] <= y1)).all())
        assert (ev.metrics is not None) == (ev.iteration % 4 == 0)
    m = ev.metrics
    assert m.kl is not None and m.kl >= 0 and m.entropy is not None
    assert math.isfinite(m.nll_test) and m.neg_discrepancy is not None


def test_a_diverging_run_is_reported():
    # The naive setup (eps 0.05, K 20 from noise, plain Adam, no care), with a
    # learning rate that makes it blow up within ~150 iterations.
    cfg = TrainConfig(method="short-run", iters=400, step_size=0.05, steps=20, lr=0.05,
                      betas=(0.9, 0.999), ema=0.0, kernel="sgld", batch_size=64, eval_every=10,
                      eval_grid=32, init_gain=1.0)
    tr = Trainer(_toy(), cfg, TINY)
    events = list(tr.run())
    last = events[-1]
    assert last.diverged and last.finished and tr.diverged == last.message
    assert "diverged" in last.message and last.iteration < 400
    assert not any(e.diverged for e in events[:-1])
    assert list(tr.run()) == []  # a diverged run does not continue


def test_exact_metrics_of_the_true_energy():
    # The data's own energy as the model: KL is 0 up to float32-vs-float64 rounding of
    # the energies (1e-6), and the test NLL is the entropy up to Monte Carlo error: for a
    # 2D Gaussian log p has variance 1, so with 2000 test points the standard error is
    # 0.022; 4 sigma = 0.09.
    data = make_dataset("gaussian", 100, 2000, seed=1)

    class Truth(nn.Module):
        box = data.box

        def forward(self, x):
            return data.target(x.double()).to(x.dtype)

    m = exact_metrics(Truth(), data, grid=128)
    assert m.kl == pytest.approx(0.0, abs=1e-6)
    assert m.nll_test == pytest.approx(m.entropy, abs=0.09)


def test_bad_configs_raise():
    data = _toy()
    for bad in ({"method": "cd"}, {"lr": -1.0}, {"steps": 0}, {"eval_grid": 100},
                {"boundary": "wrap"}, {"betas": (0.9, 1.0)}):
        with pytest.raises(ValidationError):
            Trainer(data, TrainConfig(**{"method": "persistent", **bad}), TINY)


def test_noise_decoupled_from_step_size_is_a_temperature():
    c = TrainConfig(step_size=0.01, noise=0.1).resolved()
    assert c.temperature == pytest.approx(0.5)  # 0.1^2 / (2 * 0.01)
    assert TrainConfig(step_size=0.01).resolved().temperature == pytest.approx(1.0)
    # noise off (gradient descent) cannot be Metropolis-adjusted: the default becomes SGLD
    assert TrainConfig(noise=0.0).resolved().kernel == "sgld"
    assert TrainConfig().resolved().kernel == "mala"
    with pytest.raises(ValidationError, match="MALA needs noise"):
        TrainConfig(noise=0.0, kernel="mala").validate()


def test_cli_train_writes_metrics_model_and_samples(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "mixture", "--method", "replay", "--iters", "6",
                 "--width", "16", "--steps", "3", "--batch-size", "32", "--eval-every", "3",
                 "--eval-grid", "32", "--n-train", "200", "--n-test", "100",
                 "--out", str(out), "--json", "--quiet"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iterations"] == 6 and result["kl"] is not None
    assert {"kl", "nll_test", "entropy", "seconds"} <= set(result)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["iteration"] for r in rows] == ["3", "6"]
    assert list(rows[0]) == ["iteration", "seconds", "loss", "nll_train", "nll_test", "kl",
                             "log_z", "neg_discrepancy"]
    samples = list(csv.DictReader(open(out / "samples.csv")))
    assert {r["source"] for r in samples} == {"negatives", "model"}
    assert (out / "model.pt").is_file()


def test_cli_train_unknown_kl_is_empty(tmp_path, capsys):
    out = tmp_path / "moons"
    code = main(["train", "--data", "moons", "--method", "exact", "--iters", "2",
                 "--width", "8", "--grid", "16", "--eval-grid", "32", "--n-train", "100",
                 "--n-test", "50", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["kl"] is None
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert rows[-1]["kl"] == "" and rows[-1]["nll_test"] != ""


def test_cli_bad_input_is_one_error_line(capsys):
    assert main(["train", "--data", "nope", "--iters", "1"]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_training_bench_rows():
    from ebmcore.bench.training import CASES, training_bench

    rows = training_bench(quick=True)
    assert [r["impl"] for r in rows] == [name for name, _ in CASES]
    assert all(r["rate"] > 0 and r["unit"] == "iterations/s" for r in rows)


def test_trainers_built_in_threads_get_their_seeds_weights():
    # A server builds trainers for several sessions at once, in threads: each trainer's
    # initial weights must be those its seed gives alone. The weights come from torch's
    # global generator, seeded in a block (ebmcore draws nothing else from it); a tiny
    # interpreter switch interval makes the threads interleave inside that block.
    import sys
    import threading

    ds = make_dataset("mixture", n_train=200, n_test=100, seed=0)

    def weights(seed: int) -> list[torch.Tensor]:
        t = Trainer(ds, TrainConfig(method="persistent", iters=1, seed=seed),
                    ModelConfig(width=256, depth=8))
        return [p.detach().clone() for p in t.model.parameters()]

    alone = {s: weights(s) for s in (1, 2, 3, 4, 5, 6)}
    seeds = (1, 2, 3, 4, 5, 6)
    built: dict[int, list] = {s: [] for s in seeds}
    errors: list[Exception] = []

    def build(seed: int) -> None:
        try:
            for _ in range(4):
                built[seed].append(weights(seed))
        except Exception as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(s,)) for s in seeds]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    wrong = {seed: sum(not all(torch.equal(a, b) for a, b in zip(w, alone[seed], strict=True))
                       for w in runs) for seed, runs in built.items()}
    assert not any(wrong.values()), f"trainers with other weights than their seed's: {wrong}"


@pytest.mark.parametrize("method", METHODS)
def test_every_default_fits_the_dashboard_budget(method):
    # the dashboard prices each run at the page's defaults for its data set: every
    # per-data-set entry of the defaults table must pass its whole-run and per-iteration
    # limits with the default model (raises ValidationError naming the limit otherwise)
    from dashboard.scheduler import price_training
    from ebmcore.ebm.data import dataset_names

    for data in dataset_names():
        price_training(TrainConfig(method=method).resolved(data), ModelConfig())
