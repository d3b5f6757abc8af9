"""``python -m ebmcore``: outputs that parse, sane numbers, and one-line errors (status 2)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch

from ebmcore.cli.main import main
from ebmcore.targets.registry import TARGETS

LOG_Z_REF = math.log(2 * math.pi) + 0.5 * math.log(3.0)  # N(0, [[2, 1], [1, 2]]) over R^2
SMALL = ["--chains", "200", "--steps", "200"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_targets_json_lists_every_target_with_exact_log_z(capsys):
    code, out, err = run(capsys, "targets", "--json")
    assert code == 0 and err == ""
    records = {r["name"]: r for r in json.loads(out)}
    assert list(records) == list(TARGETS)
    for r in records.values():
        assert math.isfinite(r["log_z"]) and len(r["box"]) == 4
        assert all({"default", "doc", "low", "high"} <= set(p) for p in r["params"].values())
    g = records["gaussian"]
    assert g["params"]["cov"]["default"] == [2.0, 1.0, 1.0, 2.0]
    # The box misses < 1e-8 of the mass (ebmcore.targets.registry), plus the quadrature error.
    assert abs(g["log_z"] - LOG_Z_REF) < g["log_z_err"] + 1e-8
    code, out, _ = run(capsys, "targets")
    assert code == 0 and "banana" in out and "formula" in out


def test_sample_json_reference_gaussian(capsys):
    code, out, err = run(capsys, "sample", *SMALL, "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    for key in ("mean", "cov", "target_mean", "target_cov", "sgld_cov", "log_z", "log_z_err",
                "discrepancy", "discrepancy_floor", "acceptance", "ess", "rhat", "diverged",
                "first_diverged_step", "divergence", "seconds", "thin"):
        assert key in d, key
    assert d["config"]["step_size"] == 0.3 and d["target"] == "gaussian"
    assert d["target_cov"] == [[2.0, 1.0], [1.0, 2.0]] and d["target_mean"] == [0.0, 0.0]
    assert abs(d["log_z"] - LOG_Z_REF) < d["log_z_err"] + 1e-8
    a = torch.tensor([[2.0, -1.0], [-1.0, 2.0]], dtype=torch.float64) / 3.0
    torch.testing.assert_close(torch.tensor(d["sgld_cov"], dtype=torch.float64),
                               torch.linalg.inv(a - 0.15 * a @ a))
    # 200 iid chains at stationarity (0.9^200 of the init offset left): the mean's standard
    # error is sqrt(2.167 / 200) = 0.104, 4 sigma = 0.42; a variance's is
    # sqrt(2 * 2.167^2 / 200) = 0.217, 4 sigma = 0.87.
    assert all(abs(m) < 0.42 for m in d["mean"])
    assert all(abs(d["cov"][i][i] - d["sgld_cov"][i][i]) < 0.87 for i in range(2))
    assert d["acceptance"] is None and d["diverged"] == 0 and d["divergence"] is None
    assert d["discrepancy_floor"] > 0 and 0 <= d["discrepancy"] <= 1
    assert all(e > 0 for e in d["ess"]) and all(r > 0.9 for r in d["rhat"])
    assert d["seconds"] > 0 and d["thin"] >= 1


def test_sample_table_mala_and_formula(capsys):
    code, out, _ = run(capsys, "sample", *SMALL, "--sampler", "mala")
    assert code == 0 and "acceptance" in out and "log Z" in out
    code, out, _ = run(capsys, "sample", "--target", "formula", "--param", "expr=(x**2+y**2)/s",
                       "--param", "s=2", "--box", "-8,8,-8,8", "--chains", "50", "--steps",
                       "20", "--step-size", "0.1", "--json")
    d = json.loads(out)
    assert code == 0 and d["target"] == "formula" and d["params"]["s"] == 2.0
    # E = |x|^2 / 2 is N(0, I): log Z = log 2 pi; the +-8 box misses 2.5e-15 of the mass.
    assert abs(d["log_z"] - math.log(2 * math.pi)) < d["log_z_err"] + 1e-12
    assert d["sgld_cov"] is None


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_out_final_positions_and_trace(capsys, tmp_path, ext):
    path = tmp_path / f"run.{ext}"
    read = pd.read_csv if ext == "csv" else pd.read_parquet
    code, _, _ = run(capsys, "sample", "--chains", "30", "--steps", "40", "--dtype", "float64",
                     "--out", str(path))
    df = read(path)
    assert code == 0 and list(df.columns) == ["chain", "x", "y", "energy", "alive"]
    assert len(df) == 30 and df["alive"].all()
    pts = torch.tensor(df[["x", "y"]].to_numpy())
    prec = torch.tensor([[2.0, -1.0], [-1.0, 2.0]], dtype=torch.float64) / 3.0
    energy = 0.5 * ((pts @ prec) * pts).sum(1)
    torch.testing.assert_close(torch.tensor(df["energy"].to_numpy()), energy)
    code, out, _ = run(capsys, "sample", "--chains", "30", "--steps", "40", "--out", str(path),
                       "--trace", "--json")
    df = read(path)
    assert code == 0 and list(df.columns) == ["chain", "step", "x", "y"]
    thin = json.loads(out)["thin"]
    assert len(df) == 30 * (40 // thin + 1) and df["step"].max() == 40


def test_divergence_exits_zero_but_says_so(capsys):
    # eps 2.5 > 2 / max eig(A) = 2 on the reference Gaussian: offsets grow 1.5x per step.
    code, out, err = run(capsys, "sample", "--chains", "20", "--steps", "300", "--step-size",
                         "2.5", "--json")
    d = json.loads(out)
    assert code == 0 and d["diverged"] == 20 and d["first_diverged_step"] > 0
    assert err.count("\n") == 1 and err.startswith("warning:") and "diverged" in err
    assert d["divergence"] and "lower the step size" in d["divergence"]


BAD = [
    ["sample", "--target", "nope"],
    ["sample", "--param", "foo=1"],
    ["sample", "--param", "mean"],
    ["sample", "--param", "mean=1"],
    ["sample", "--param", "mean=nan,0"],
    ["sample", "--param", "mean=0,0", "--param", "mean=1,1"],
    ["sample", "--param", "cov=1,2,2,1"],
    ["sample", "--step-size", "0"],
    ["sample", "--step-size", "-1"],
    ["sample", "--step-size", "nan"],
    ["sample", "--step-size", "inf"],
    ["sample", "--temperature", "0"],
    ["sample", "--temperature", "nan"],
    ["sample", "--chains", "0"],
    ["sample", "--chains", "2000001"],
    ["sample", "--chains", "ten"],
    ["sample", "--steps", "0"],
    ["sample", "--steps", "1000001"],
    ["sample", "--burn-in", "1000"],
    ["sample", "--leapfrog", "0"],
    ["sample", "--seed", "-1"],
    ["sample", "--init-point", "1"],
    ["sample", "--sampler", "nope"],
    ["sample", "--no-noise", "--sampler", "mala"],
    ["sample", "--out", "run.txt"],
    ["sample", "--out", "no/such/dir/run.csv"],
    ["sample", "--trace"],
    ["sample", "--box", "0,1,0,1"],
    ["sample", "--target", "formula"],
    ["sample", "--target", "formula", "--param", "expr=z"],
    ["sample", "--target", "formula", "--param", "expr=__import__('os')"],
    ["sample", "--target", "formula", "--param", "expr=x", "--box", "1,0,0,1"],
    ["sample", "--target", "formula", "--param", "expr=x*s", "--param", "s=inf"],
    ["sample", "--bogus"],
    ["targets", "--bogus"],
    ["bench", "--bogus"],
    ["train", "--bogus"],
    ["bogus"],
    [],
]
if not torch.cuda.is_available():
    BAD.append(["sample", "--device", "cuda"])


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a) or "(none)")
def test_bad_arguments_exit_2_with_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [[], ["targets"], ["sample"], ["bench"], ["train"]])
def test_help_everywhere(capsys, argv):
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0 and "usage:" in out


def test_module_entry_point():
    # The real `python -m ebmcore` process: exit codes and stderr as a user sees them.
    bad = subprocess.run([sys.executable, "-m", "ebmcore", "sample", "--step-size", "0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: step size") and bad.stderr.count("\n") == 1
