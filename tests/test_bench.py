"""``bench``: the table's shape and content, never its timings."""

from __future__ import annotations

import json
import math

from ebmcore.bench.core import BENCHES, load_benches, register_bench, run_benches
from ebmcore.cli.main import main


def test_quick_sampler_bench_json_rows(capsys):
    assert main(["bench", "--quick", "--json", "--only", "sampler"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["bench"] for r in rows} == {"sampler"}
    impls = {r["impl"] for r in rows}
    assert {"sgld fast (closed-form, in place)", "sgld_step (autograd)",
            "mala_step (closed-form grad)", "numpy sgld (vectorised)",
            "reference loop (numpy, 1 chain)"} == impls
    assert {r["target"] for r in rows} == {"gaussian", "banana"}
    for r in rows:
        assert r["rate"] > 0 and r["seconds"] > 0 and r["steps"] >= 1
        assert r["unit"] == "chain-steps/s" and r["vs_reference"] > 0
        if r["chains"] > 1:
            assert r["vs_numpy"] > 0
    numpy_rows = [r for r in rows if r["impl"].startswith("numpy")]
    assert all(math.isclose(r["vs_numpy"], 1.0) for r in numpy_rows)


def test_other_modules_register_their_benches():
    # Importing the listed modules registers them; running them is their owners' tests' job.
    assert {"sampler", "sample", "training", "dashboard", "formula"} <= set(load_benches())


def test_registered_benches_join_the_table(capsys):
    @register_bench("dummy")
    def dummy(quick: bool) -> list[dict]:
        return [{"bench": "dummy", "impl": "figure build", "seconds": 0.1, "quick": quick}]

    try:
        df = run_benches(quick=True, only=["dummy"])
        assert main(["bench", "--quick", "--only", "dummy"]) == 0
    finally:
        BENCHES.pop("dummy")
    assert df.to_dict("records") == [
        {"bench": "dummy", "impl": "figure build", "seconds": 0.1, "quick": True}]
    assert "figure build" in capsys.readouterr().out


def test_unknown_bench_is_a_one_line_error(capsys):
    assert main(["bench", "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown bench 'nope'") and err.count("\n") == 1


def test_quick_sample_bench_times_sample_end_to_end(capsys):
    assert main(["bench", "--quick", "--json", "--only", "sample"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["bench"] for r in rows} == {"sample"}
    assert {r["target"] for r in rows} == {"banana", "mixture", "gaussian"}
    for r in rows:
        assert r["impl"] == "sample() + summarize() (as the CLI runs)"
        assert r["rate"] > 0 and r["seconds"] > 0 and r["unit"] == "chain-steps/s"
        assert math.isclose(r["rate"], r["chains"] * r["steps"] / r["seconds"])
        assert r["numpy_rate"] > 0 and r["vs_numpy"] > 0 and r["vs_randn"] > 0
        assert r["cpu_seconds"] > 0


def test_quick_formula_bench_pairs_compiled_gradient_with_autograd(capsys):
    from ebmcore.bench.formula import FORMULAS

    assert main(["bench", "--quick", "--json", "--only", "formula"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["bench"] for r in rows} == {"formula loop", "formula run"}
    assert {r["target"] for r in rows} == set(FORMULAS)
    keys = {(r["bench"], r["impl"], r["target"], r["chains"]) for r in rows}
    assert len(keys) == len(rows) == 2 * 2 * len(FORMULAS)  # both kinds, both impls, per formula
    for r in rows:
        assert r["rate"] > 0 and r["seconds"] > 0 and r["unit"] == "chain-steps/s"
        assert r["vs_autograd"] > 0
        if r["impl"] == "autograd":
            assert math.isclose(r["vs_autograd"], 1.0)
