"""ArviZ export: round trip through NetCDF (dims, values, attributes), and DataFrames."""

from __future__ import annotations

import io
import json
import math
import os
import sys

import numpy as np
import pytest
import torch

from ebmcore.cli.main import main
from ebmcore.ebm.data import make_dataset
from ebmcore.ebm.training import TrainConfig, train
from ebmcore.energies import ValidationError
from ebmcore.exact.summary import summarize
from ebmcore.interop import (
    INSTALL_HINT,
    final_frame,
    metrics_frame,
    to_inference_data,
    to_netcdf_bytes,
    trace_frame,
    write_netcdf,
)
from ebmcore.sampling.kernels import METROPOLIS, SAMPLERS
from ebmcore.sampling.runner import SampleConfig, sample
from ebmcore.targets.formula import formula_target
from ebmcore.targets.registry import TARGETS, make_target

# The extra is in the test extra, so CI has it; elsewhere these tests skip without it.
if os.environ.get("CI"):
    import xarray as xr
else:
    xr = pytest.importorskip("xarray")
    pytest.importorskip("arviz_base")
    pytest.importorskip("h5netcdf")

LOG_Z_REF = math.log(2 * math.pi) + 0.5 * math.log(3.0)  # N(0, [[2, 1], [1, 2]]) over R^2


def read_back(data: bytes):
    return xr.open_datatree(io.BytesIO(data), engine="h5netcdf").load()


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_round_trip_dims_values_attributes(sampler):
    target = make_target("gaussian")
    cfg = SampleConfig(sampler=sampler, step_size=0.3 if sampler == "sgld" else 0.5, steps=120,
                       chains=6, burn_in=20, seed=3, n_leapfrog=3)
    trace = sample(target, cfg)
    tree = read_back(to_netcdf_bytes(trace, target, cfg))
    assert {"posterior", "sample_stats", "warmup_posterior", "warmup_sample_stats"} <= set(
        tree.children)
    post, stats = tree["posterior"], tree["sample_stats"]
    steps = trace.steps.numpy()
    keep = steps >= cfg.burn_in
    assert post["x"].dims == ("chain", "draw") and post.sizes == {"chain": 6, "draw": keep.sum()}
    np.testing.assert_array_equal(post["step"].values, steps[keep])
    np.testing.assert_array_equal(tree["warmup_posterior"]["step"].values, steps[~keep])
    pos = trace.positions.numpy()
    np.testing.assert_array_equal(post["x"].values, pos[keep, :, 0].T)  # float32 both ways
    np.testing.assert_array_equal(post["y"].values, pos[keep, :, 1].T)
    # energy recomputed in closed form here: E = x^T S^-1 x / 2 with S = [[2, 1], [1, 2]]
    x, y = pos[keep, :, 0].T.astype(np.float64), pos[keep, :, 1].T.astype(np.float64)
    energy = (2 * x * x - 2 * x * y + 2 * y * y) / 6.0
    np.testing.assert_allclose(stats["energy"].values, energy, rtol=1e-6, atol=1e-6)
    attrs = tree.attrs
    assert abs(attrs["log_z"] - LOG_Z_REF) < attrs["log_z_err"] + 1e-8
    np.testing.assert_allclose(stats["lp"].values, -energy - attrs["log_z"], rtol=1e-6, atol=1e-6)
    assert not stats["diverging"].values.any() and stats["diverging"].dtype == bool
    np.testing.assert_array_equal(attrs["exact_mean"], [0.0, 0.0])
    np.testing.assert_array_equal(attrs["exact_cov"], [2.0, 1.0, 1.0, 2.0])
    assert attrs["target"] == "gaussian" and json.loads(attrs["target_params"])["cov"] == [
        2.0, 1.0, 1.0, 2.0]
    back = json.loads(attrs["sample_config"])
    back["init_point"] = tuple(back["init_point"])
    assert SampleConfig(**back) == cfg
    assert attrs["thin"] == 1 and attrs["steps_done"] == cfg.steps and attrs["sampler"] == sampler
    if sampler not in METROPOLIS:  # no accept step: nothing to report
        assert "accepted" not in stats and "acceptance_rate" not in attrs
        if sampler == "sgld":
            assert len(attrs["exact_sgld_cov"]) == 4
        return
    # Each transition after burn-in is accepted with probability a_t; the trace's acceptance is
    # the mean of the a_t, the export's indicators are Bernoulli(a_t) on the same transitions:
    # their means differ by at most 4 sd, sd <= sqrt(0.25 / n).
    after = post["step"].values > cfg.burn_in
    ind = stats["accepted"].values[:, after]
    assert abs(ind.mean() - attrs["acceptance_rate"]) <= 4 * math.sqrt(0.25 / ind.size)
    assert attrs["acceptance_rate"] == pytest.approx(trace.acceptance)


def test_diverged_chains_are_flagged_and_frozen():
    target = make_target("gaussian")
    cfg = SampleConfig(step_size=5.0, steps=60, chains=8, seed=1)  # far past SGLD's stability
    trace = sample(target, cfg)
    assert trace.n_diverged > 0
    tree = to_inference_data(trace, target)
    div = tree["sample_stats"]["diverging"].values  # (chain, draw)
    alive = trace.alive.numpy()
    assert not div[alive].any() and div[~alive, -1].all()
    x = tree["posterior"]["x"].values
    for c in np.flatnonzero(~alive):
        first = np.argmax(div[c])
        assert div[c, first:].all()  # a trailing run: frozen to the end
        assert (x[c, first:] == x[c, -1]).all() and np.isfinite(x[c]).all()
    assert tree.attrs["n_diverged"] == trace.n_diverged


def test_write_netcdf_thinned_and_no_burn_in(tmp_path):
    target = make_target("banana")
    cfg = SampleConfig(sampler="mala", step_size=0.05, steps=3000, chains=1000, max_points=1000,
                       init="gaussian", init_std=0.5)
    trace = sample(target, cfg)
    assert trace.thin > 1
    path = write_netcdf(tmp_path / "run.nc", trace, target)
    tree = xr.open_datatree(path, engine="h5netcdf")
    assert "warmup_posterior" not in tree.children
    assert "accepted" not in tree["sample_stats"]  # thinned: moves between frames are not accepts
    np.testing.assert_array_equal(tree["posterior"]["step"].values, trace.steps.numpy())
    assert tree.attrs["thin"] == trace.thin


def test_config_must_match_and_stop_before_burn_in_is_refused():
    target = make_target("gaussian")
    cfg = SampleConfig(steps=40, chains=4, burn_in=30, report_every=10)
    trace = sample(target, cfg)
    with pytest.raises(ValidationError, match="differs"):
        to_inference_data(trace, target, SampleConfig(steps=41, chains=4))
    from ebmcore.sampling.runner import run

    early = next(run(target, cfg)).trace  # stopped at step 10 < burn_in
    with pytest.raises(ValidationError, match="before burn-in"):
        to_inference_data(early, target)


def test_cli_out_nc_and_missing_extra(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run.nc"
    code = main(["sample", "--chains", "20", "--steps", "50", "--out", str(out), "--json"])
    assert code == 0
    d = json.loads(capsys.readouterr().out)
    assert d["out"] == str(out) and d["steps_done"] == 50 and d["interrupted"] is False
    tree = xr.open_datatree(out, engine="h5netcdf")
    assert tree["posterior"].sizes == {"chain": 20, "draw": 51}
    out.unlink()
    for missing in ("arviz_base", "h5netcdf"):
        monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError
        code = main(["sample", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err == f"error: {INSTALL_HINT}\n" and not out.exists()
        monkeypatch.delitem(sys.modules, missing)
    code = main(["sample", "--out", str(tmp_path / "run.h5")])
    assert code == 2 and ".nc" in capsys.readouterr().err


def test_frames_for_notebooks():
    target = make_target("gaussian")
    trace = sample(target, SampleConfig(steps=30, chains=5))
    df = trace_frame(trace, target)
    assert list(df.columns) == ["chain", "step", "x", "y", "energy"] and len(df) == 31 * 5
    row = df.iloc[-1]
    x, y = trace.positions[-1, -1].double().tolist()
    assert row["chain"] == 4 and row["step"] == 30 and (row["x"], row["y"]) == (x, y)
    assert row["energy"] == pytest.approx((2 * x * x - 2 * x * y + 2 * y * y) / 6, rel=1e-12)
    fin = final_frame(trace, target)
    assert list(fin.columns) == ["chain", "x", "y", "energy", "alive"] and fin["alive"].all()
    torch.testing.assert_close(torch.tensor(fin[["x", "y"]].values), trace.x.double())


def test_metrics_frame_from_a_trainer():
    data = make_dataset("mixture", 500, 200, 0)
    trainer, _ = train(data, TrainConfig(method="exact", iters=4, eval_every=2, eval_grid=32,
                                         grid=32))
    df = metrics_frame(trainer)
    assert list(df.index) == [2, 4] and {"nll_train", "kl", "log_z", "loss"} <= set(df.columns)
    assert metrics_frame(trainer.history).equals(df)
    with pytest.raises(ValidationError):
        metrics_frame(3)


@pytest.mark.parametrize("name", [*TARGETS, "formula"])
def test_every_target_exports_its_exact_reference(name):
    if name == "formula":
        target = formula_target("(x**2 + y**2 - 4)**2 / s", (-4.0, 4.0, -4.0, 4.0), {"s": "0.5"})
    else:
        target = make_target(name)
    trace = sample(target, SampleConfig(step_size=0.01, steps=40, chains=4, seed=2))
    s = summarize(trace, target)
    tree = read_back(to_netcdf_bytes(trace, target, summary=s))
    a = tree.attrs
    assert a["target"] == target.name and a["log_z"] == s.log_z
    np.testing.assert_array_equal(a["exact_mean"], s.target_mean.numpy())
    np.testing.assert_array_equal(a["exact_cov"], s.target_cov.reshape(-1).numpy())
    np.testing.assert_array_equal(a["box"], list(target.box))
    # recomputed here in float64; the export evaluates in the run's float32 (relative rounding
    # ~1e-7 per operation, a few dozen operations per energy): 1e-5 relative
    pos = trace.positions.to(torch.float64)
    e = target.energy(pos.reshape(-1, 2)).reshape(pos.shape[:2]).T.numpy()
    np.testing.assert_allclose(tree["sample_stats"]["energy"].values, e, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tree["sample_stats"]["lp"].values, -e - s.log_z, rtol=1e-5,
                               atol=1e-5)
