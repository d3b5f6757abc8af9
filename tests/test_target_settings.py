"""Every registry target x sampler at its own defaults, and typed formulas with auto eps.

Criteria (issue 11), all from fixed seeds: no chain diverges; the histogram discrepancy
of the chains' final positions (iid across chains) is within 1.3x its iid floor for the
exact MALA and HMC and 1.6x for SGLD, whose finite-eps bias is allowed for; split R-hat
<= 1.05 where the mass is connected (modes joined below 3.5 kT, see
``ebmcore.exact.view.SEPARATING_BARRIER``).  The floor is the exact expected
discrepancy of as many iid exact samples, so an unbiased, mixed run scores ~1.
"""

from __future__ import annotations

import json

import pytest

from ebmcore.bench.settings_table import FORMULAS, LIMITS, RHAT_LIMIT, measure, table
from ebmcore.cli.main import main
from ebmcore.exact.density import quadrature
from ebmcore.exact.summary import GRID
from ebmcore.targets.formula import formula_target
from ebmcore.targets.registry import TARGETS, make_target
from ebmcore.targets.settings import AUTO, SETTINGS, settings_for

SAMPLERS = ("sgld", "mala", "hmc")

# Rows measured to miss the criteria at every setting the selection rule tried (numbers in
# the README table); strict, so a row that starts passing is noticed.  None at present.
KNOWN_FAILING: set[tuple[str, str]] = set()


def _cases() -> list:
    out = []
    for name in TARGETS:
        for sampler in SAMPLERS:
            marks = ()
            if (name, sampler) in KNOWN_FAILING:
                marks = (pytest.mark.xfail(strict=True, reason="below the criteria as measured"),)
            out.append(pytest.param(name, sampler, marks=marks, id=f"{name}-{sampler}"))
    return out


def check(row: dict) -> None:
    assert row["diverged"] == 0, row
    assert row["excess"] <= LIMITS[row["sampler"]], row
    if row["connected"]:
        assert row["rhat"] <= RHAT_LIMIT, row


@pytest.mark.slow
@pytest.mark.parametrize(("name", "sampler"), _cases())
def test_every_target_and_sampler_works_at_its_defaults(name, sampler):
    s = settings_for(name, sampler)
    if s.auto:
        pytest.xfail("no measured settings for this target yet (the selection did not finish)")
    target = make_target(name)
    check(measure(target, sampler, s, quadrature(target.energy, target.box, GRID)))


def test_the_gaussian_keeps_the_reference_example():
    s = SETTINGS["gaussian"]["sgld"]
    assert (s.step_size, s.steps, s.chains, s.init) == (0.3, 1000, 500, "uniform")
    assert s.config("sgld").noise


def test_formulas_fall_back_to_auto():
    for sampler in SAMPLERS:
        assert settings_for("formula", sampler) is AUTO[sampler]
        assert AUTO[sampler].auto
    with pytest.raises(ValueError):
        settings_for("gaussian", "nope")


FORMULAS_FAILING: set[tuple[str, str]] = set()  # none at present (strict, as above)


def _formula_cases() -> list:
    out = []
    for kind in FORMULAS:
        for sampler in SAMPLERS:
            marks = ()
            if (kind, sampler) in FORMULAS_FAILING:
                marks = (pytest.mark.xfail(strict=True, reason="below the criteria as measured"),)
            out.append(pytest.param(kind, sampler, marks=marks, id=f"{kind}-{sampler}"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "sampler"), _formula_cases())
def test_typed_formulas_work_with_auto_step_size(kind, sampler):
    expr, box, connected = FORMULAS[kind]
    target = formula_target(expr, box)
    gd = quadrature(target.energy, target.box, GRID)
    row = measure(target, sampler, settings_for("formula", sampler), gd)  # as the CLI runs
    assert row["connected"] == connected  # the grid's barrier analysis agrees with the design
    check(row)


def test_cli_step_size_auto_reports_the_chosen_eps(capsys):
    code = main(["sample", "--target", "formula", "--param", "expr=(r - 2)**2 / 0.18",
                 "--sampler", "mala", "--step-size", "auto", "--burn-in", "200", "--steps",
                 "400", "--chains", "200", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and "dual averaging" in d["step_size_auto"]
    assert d["config"]["step_size"] != 1.0 and d["config"]["burn_in"] == 200
    # ring of width 0.3: dual averaging holds acceptance near its 0.574 target
    assert abs(d["acceptance"] - 0.574) < 0.05


def test_table_renders_rows():
    row = {"target": "t", "sampler": "mala", "eps": 0.1, "auto": True, "steps": 10,
           "chains": 5, "acceptance": 0.5, "excess": 1.0, "rhat": 1.01, "diverged": 0,
           "connected": False}
    assert "| t | mala | 0.1 (auto) | 10 | 0.50 | 1.00 | 1.010 (separate modes) | 0 |" in table(
        [row])
