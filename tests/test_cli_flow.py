"""``python -m ebmcore flow``: JSON that parses, closed-form agreement, one-line errors."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from ebmcore.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_flow_json_has_every_frame_and_matches_the_ou_closed_form(capsys):
    code, out, err = run(capsys, "flow", "--time", "2", "--frames", "4", "--init", "gaussian",
                         "--init-point", "2,-1", "--init-std", "0.5", "--grid", "64", "--json")
    assert code == 0 and err == ""
    rec = json.loads(out)
    frames = rec["frames"]
    assert [f["t"] for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert all(set(f) == {"t", "mass", "mean", "cov", "kl"} for f in frames)
    assert all(abs(f["mass"] - 1) < 1e-10 for f in frames)
    kls = [f["kl"] for f in frames]
    assert all(b <= a for a, b in itertools.pairwise(kls))
    ou = rec["ornstein_uhlenbeck"]
    assert ou["decay_rate"] == pytest.approx(1 / 3)
    # Grid 64 and dt 0.01: the OU test in test_fokker_planck measures ~5e-3 at t = 1
    # (O(h^2) + O(dt)); the error decays with the flow afterwards.
    for f, e in zip(frames, ou["frames"], strict=True):
        assert max(abs(a - b) for a, b in zip(f["mean"], e["mean"], strict=True)) < 1e-2
        assert max(abs(a - b) for ra, rb in zip(f["cov"], e["cov"], strict=True)
                   for a, b in zip(ra, rb, strict=True)) < 1e-2
    assert rec["config"]["grid"] == 64 and rec["steps"] > 0


def test_flow_table_and_formula_target(capsys):
    code, out, err = run(capsys, "flow", "--target", "formula", "--param", "expr=(x**2+y**2-4)**2",
                         "--box", "-3,3,-3,3", "--time", "1", "--frames", "2", "--grid", "32")
    assert code == 0 and err == ""
    assert "formula" in out and len(out.strip().splitlines()) == 5
    code, out, _ = run(capsys, "flow", "--target", "double_well", "--param", "barrier=5",
                       "--temperature", "0.5", "--time", "1", "--frames", "1", "--grid", "32",
                       "--json")
    rec = json.loads(out)
    assert code == 0 and rec["ornstein_uhlenbeck"] is None
    assert all(math.isfinite(f["kl"]) for f in rec["frames"])


@pytest.mark.parametrize("argv", [
    ["flow"],  # --time is required
    ["flow", "--time", "-1"],
    ["flow", "--time", "nan"],
    ["flow", "--time", "1", "--target", "nope"],
    ["flow", "--time", "1", "--param", "k=3"],
    ["flow", "--time", "1", "--grid", "7"],
    ["flow", "--time", "1", "--dt", "0"],
    ["flow", "--time", "1", "--temperature", "0"],
    ["flow", "--time", "1", "--init", "point", "--init-point", "100,0"],
    ["flow", "--time", "1e9"],
    ["flow", "--time", "1", "--frames", "0"],
    ["flow", "--time", "1", "--box", "-1,1,-1,1"],
    ["flow", "--time", "1", "--target", "formula", "--param", "expr=x**"],
])
def test_flow_bad_input_exits_2_with_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error:") and err.count("\n") == 1, err


def test_quick_flow_bench_rows(capsys):
    assert main(["bench", "--quick", "--json", "--only", "flow"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["bench"] for r in rows} == {"flow"}
    solver = [r for r in rows if r["unit"] == "frames/s"]
    assert len(solver) == 1 and solver[0]["grid"] == 32 and solver[0]["steps"] > 0
    assert all(r["seconds"] > 0 and r["rate"] > 0 and r["vs_sgld"] > 0 for r in rows)


def test_flow_help(capsys):
    code, out, _ = run(capsys, "flow", "--help")
    assert code == 0 and "usage:" in out and "--time" in out
