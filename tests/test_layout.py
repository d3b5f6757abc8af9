"""Shared pieces: Box, the SGLD update, defaults in one place, the noise convention, KEY=VALUE."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import pytest
import torch

from ebmcore import defaults
from ebmcore.box import Box
from ebmcore.cli.args import key_values
from ebmcore.cli.main import main
from ebmcore.ebm.adversarial import AdversarialConfig
from ebmcore.ebm.data import make_dataset
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.negatives import langevin
from ebmcore.ebm.training import METHODS, TrainConfig, Trainer
from ebmcore.energies import ValidationError
from ebmcore.sampling import SAMPLERS
from ebmcore.sampling.kernels import init_state, noise_std, sgld_step, sgld_update
from ebmcore.sampling.runner import SampleConfig
from ebmcore.targets.registry import TARGETS, make_target

BOX = Box(-1.0, 3.0, 2.0, 4.0)


def test_box_geometry_is_exact():
    assert BOX.pad(0.25) == (-2.0, 4.0, 1.5, 4.5) and BOX.area == 8.0
    assert Box.of([-1, 3, 2, 4]) == BOX and Box.of(BOX) is BOX
    x = torch.tensor([[0.0, 3.0], [-1.0, 4.0], [3.5, 3.0], [0.0, 1.0]])
    assert BOX.contains(x).tolist() == [True, True, False, False]
    assert torch.equal(BOX.clamp(x), torch.tensor([[0.0, 3.0], [-1.0, 4.0], [3.0, 3.0],
                                                   [0.0, 2.0]]))
    # mirror images: 3.5 is 0.5 past xmax -> 2.5; 1.0 is 1 below ymin -> 3.0
    assert torch.equal(BOX.reflect(x), torch.tensor([[0.0, 3.0], [-1.0, 4.0], [2.5, 3.0],
                                                     [0.0, 3.0]]))


def test_box_uniform_is_uniform():
    n = 40_000
    x = BOX.uniform(n, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.shape == (n, 2) and bool(BOX.contains(x).all())
    # the mean of n uniforms on [a, b] has std (b - a) / sqrt(12 n): 5 of them is a 6e-7 event
    for k, (a, b) in enumerate(((BOX.xmin, BOX.xmax), (BOX.ymin, BOX.ymax))):
        assert abs(float(x[:, k].mean()) - (a + b) / 2) < 5 * (b - a) / math.sqrt(12 * n)


def test_sgld_update_is_the_one_langevin_line():
    g = torch.Generator().manual_seed(1)
    x, grad, xi = (torch.randn(5, 2, generator=g, dtype=torch.float64) for _ in range(3))
    assert torch.equal(sgld_update(x, grad, 0.1, 0.3, xi), x - 0.1 * grad + 0.3 * xi)
    assert torch.equal(sgld_update(x, grad, 0.1, 0.3, None), x - 0.1 * grad)
    assert noise_std(0.1, 2.0) == math.sqrt(0.4)
    # sgld_step is that update with one normal draw of the generator
    t = make_target("gaussian")
    state = init_state(t.energy, x, t.grad)
    new, _ = sgld_step(t.energy, state, torch.Generator().manual_seed(2), step_size=0.1,
                       temperature=0.5, grad=t.grad)
    xi = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    assert torch.equal(new.x, sgld_update(x, state.grad, 0.1, noise_std(0.1, 0.5), xi))


def test_sampler_defaults_are_the_reference_example():
    ref = defaults.sampling_defaults()
    assert {k: ref[k] for k in ("sampler", "step_size", "steps", "chains", "noise")} == {
        "sampler": "sgld", "step_size": 0.3, "steps": 1000, "chains": 500, "noise": True}
    d = SampleConfig()
    assert {k: getattr(d, k) for k in ref} == ref  # SampleConfig agrees with the table


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_registry_target_has_sampler_defaults_that_validate(sampler):
    for name in TARGETS:
        d = defaults.sampling_defaults(name, sampler)
        assert d["step_size"] is not None and d["sampler"] == sampler
        SampleConfig(**d).validate()
    assert defaults.sampling_defaults("formula", sampler)["step_size"] is None  # auto
    if sampler in ("underdamped", "annealed"):  # SGLD's measured row
        assert defaults.sampling_defaults("banana", sampler) == {
            **defaults.sampling_defaults("banana", "sgld"), "sampler": sampler}


@pytest.mark.parametrize("method", METHODS)
def test_train_config_takes_every_method_default(method):
    c = TrainConfig(method=method).resolved()
    assert {k: getattr(c, k) for k in defaults.METHOD_DEFAULTS[method]} == (
        defaults.METHOD_DEFAULTS[method])


@pytest.mark.parametrize("flow", defaults.FLOW_DEFAULTS)
def test_adversarial_config_takes_every_flow_default(flow):
    c = AdversarialConfig(flow=flow).validate()
    assert {k: getattr(c, k) for k in defaults.FLOW_DEFAULTS[flow]} == defaults.FLOW_DEFAULTS[flow]
    assert AdversarialConfig().flow == defaults.DEFAULT_FLOW == "hmc"
    assert "method" not in {f.name for f in fields(AdversarialConfig)}
    assert not hasattr(AdversarialConfig(), "temperature")


def test_one_noise_convention_temperature_and_an_on_off_switch():
    eps = 0.02
    c = TrainConfig(step_size=eps, temperature=0.5).validate()
    assert c.noise is True and c.noise_scale == math.sqrt(2 * eps * 0.5)
    legacy = TrainConfig(step_size=eps, noise=math.sqrt(2 * eps * 0.5)).validate()
    assert legacy.noise is True and legacy.temperature == pytest.approx(0.5, rel=1e-12)
    assert TrainConfig(noise=None).validate().temperature == 1.0  # older checkpoints
    off = TrainConfig(noise=False).validate()
    assert off.kernel == "sgld" and off.chain_temperature == 0.0 and off.noise_scale == 0.0
    with pytest.raises(ValidationError, match="temperature must be a finite number > 0"):
        TrainConfig(temperature=0.0).validate()
    with pytest.raises(ValidationError, match="noise must be >= 0"):
        TrainConfig(noise=-1.0).validate()


def test_chains_without_noise_descend_whatever_the_generator():
    t = make_target("gaussian")
    x0 = torch.tensor([[1.0, 0.5], [-0.5, 2.0]])
    kw = {"steps": 20, "step_size": 0.1, "temperature": 0.0, "box": t.box}
    a = langevin(t.energy, x0, torch.Generator().manual_seed(0), **kw)
    b = langevin(t.energy, x0, torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a, b) and bool((t.energy(a) < t.energy(x0)).all())


def test_trainer_reports_its_chains_temperature():
    data = make_dataset("mixture", 200, 100, seed=0)
    small = ModelConfig(width=8, depth=1)
    tr = Trainer(data, TrainConfig(iters=1, eval_every=0, temperature=0.5, eval_grid=32), small)
    assert tr.temperature == 0.5 and tr.method == "persistent"


def test_key_values_one_rule():
    assert key_values(["a=1", " b = x y ", "expr=x**2=y"]) == {"a": "1", "b": "x y",
                                                              "expr": "x**2=y"}
    for bad, msg in ((["a"], "expects KEY=VALUE"), (["=1"], "expects KEY=VALUE"),
                     (["a=1", "a=2"], "given twice")):
        with pytest.raises(ValidationError, match=msg):
            key_values(bad)


TRAIN = ["train", "--iters", "2", "--eval-every", "0", "--width", "8", "--depth", "1",
         "--n-train", "200", "--n-test", "100", "--eval-grid", "32", "--json", "--quiet"]


def test_cli_train_temperature_and_the_older_noise_flag(capsys):
    assert main([*TRAIN, "--temperature", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["temperature"] == 0.5
    assert main([*TRAIN, "--noise", "0.1", "--eps", "0.01"]) == 0  # T = 0.1^2 / 0.02
    assert json.loads(capsys.readouterr().out)["temperature"] == pytest.approx(0.5)
    assert main([*TRAIN, "--no-noise"]) == 0
    assert json.loads(capsys.readouterr().out)["temperature"] == 0.0
    assert main([*TRAIN, "--noise", "0.1", "--temperature", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not several" in err and len(err.splitlines()) == 1
    assert main([*TRAIN, "--param", "std=0.3", "--param", "std=0.4"]) == 2
    assert "given twice" in capsys.readouterr().err


def test_numerics_never_import_the_app_or_argparse():
    """Outside ebmcore/cli, ebmcore imports no front end (read from the sources, no import)."""
    import ast
    from pathlib import Path

    import ebmcore

    root = Path(ebmcore.__file__).parent
    banned = {"argparse", "dashboard", "streamlit", "plotly"}
    found = []
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [(path.name, n) for n in names if n.split(".")[0] in banned]
    assert not found, found
