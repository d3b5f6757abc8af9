"""A hostile corpus for the command line: each case exits 2 with one short line, no traceback.

Overflowing numbers, requests over the work or memory budget, values of 100 kB, and
tampered checkpoints for ``train --resume``.  Nothing here may run for long: every case is
refused before any work starts.
"""

from __future__ import annotations

import re

import pytest
import torch

from ebmcore.cli.main import main
from ebmcore.ebm.data import make_dataset
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.training import TrainConfig, Trainer

LONG = "x" * 100_000  # a 100 kB value: messages must not repeat it
MAX_LINE = 500  # characters of the one error line

CASES = [
    # numbers whose products overflow the run's dtype
    ["sample", "--step-size", "1e308"],
    ["sample", "--temperature", "1e308"],
    ["sample", "--step-size", "1e200", "--dtype", "float64"],
    ["sample", "--step-size", "1e10", "--temperature", "1e10"],
    ["sample", "--sampler", "underdamped", "--friction", "1e308"],
    ["sample", "--sampler", "annealed", "--sigma-max", "1e308"],
    ["sample", "--init", "gaussian", "--init-std", "1e308"],
    ["train", "--lr", "1e308", "--iters", "2"],
    ["train", "--step-size", "1e308", "--iters", "2"],
    ["train", "--temperature", "1e308", "--iters", "2"],
    ["train", "--noise", "1e308", "--iters", "2"],
    ["train", "--l2", "1e308", "--iters", "2"],
    ["train", "--method", "adversarial", "--flow-lr", "1e308", "--iters", "2"],
    ["train", "--method", "adversarial", "--flow-step-size", "1e308", "--iters", "2"],
    ["flow", "--time", "1e308"],
    ["flow", "--time", "1", "--dt", "1e-308"],
    ["flow", "--time", "1", "--temperature", "1e308"],
    ["flow", "--time", "1", "--init", "gaussian", "--init-std", "1e308"],
    # requests over the work or memory budget
    ["sample", "--chains", "2000000", "--steps", "1000000"],
    ["sample", "--sampler", "hmc", "--leapfrog", "1000", "--chains", "1000000"],
    ["sample", "--memory", "1e-9"],
    ["sample", "--chains", "100", "--steps", "100", "--budget", "1e3"],
    ["train", "--steps", "10000", "--chains", "1000000", "--iters", "2"],
    ["train", "--method", "short-run", "--width", "1024", "--depth", "8", "--steps", "10000",
     "--iters", "10"],
    ["flow", "--grid", "1024", "--time", "100", "--dt", "0.001"],
    ["flow", "--grid", "1024", "--time", "1", "--frames", "10000"],
    # bad budgets
    ["sample", "--budget", "0"],
    ["sample", "--budget", "nan"],
    ["train", "--memory", "-1"],
    # long values
    ["sample", "--target", LONG],
    ["sample", "--target", "formula", "--param", "expr=" + LONG],
    ["sample", "--target", "formula", "--param", "expr=x*s", "--param", "s=" + LONG],
    ["sample", "--target", "gaussian", "--param", LONG + "=1"],
    ["sample", "--target", "gaussian", "--param", "cov=" + LONG],
    ["train", "--data", LONG],
    ["flow", "--target", LONG, "--time", "1"],
]


def _check_one_line(code: int, out: str, err: str) -> None:
    assert code == 2 and out == "", err[-300:]
    assert err.startswith("error: ") and err.count("\n") == 1, err[-300:]
    assert len(err) <= MAX_LINE + 100 and "Traceback" not in err and "\x1b" not in err


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(v[:20] for v in a)[:60])
def test_hostile_arguments_exit_2_with_one_line(capsys, argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    _check_one_line(code, out, err)
    assert "x" * 100 not in err  # a long value is quoted cut, never in full


def test_budget_refusals_name_the_limit_and_what_to_lower(capsys):
    main(["sample", "--chains", "2000000", "--steps", "1000000"])
    err = capsys.readouterr().err
    assert re.search(r"over the budget of 5\.0e12: lower chains, steps \(or raise it with "
                     r"--budget\)", err), err
    assert main(["sample", "--chains", "100", "--steps", "100", "--quiet", "--budget",
                 "1e6"]) == 0  # 100 x 100 x 20 = 2e5 operations fit a budget of 1e6


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real resumable checkpoint (2 of 4 iterations) as the dict torch saved."""
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    tr = Trainer(make_dataset("moons", 200, 100), TrainConfig(method="persistent", iters=4,
                 steps=2, batch_size=16, eval_grid=32, eval_every=0), ModelConfig(8, 1))
    for _ in tr.run(2):
        pass
    tr.save(str(path))
    return torch.load(path, weights_only=True)


def _drop(d, *keys):
    for k in keys[:-1]:
        d = d[k]
    del d[keys[-1]]


def _set(d, value, *keys):
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value


# each tampering, and a phrase the refusal must contain (naming what is wrong)
TAMPERED = {
    "config lacks a key": (lambda c: _drop(c, "config", "lr"), "config lacks the key 'lr'"),
    "config has an unknown key": (lambda c: _set(c, 1, "config", "bogus"),
                                  "config has an unknown key 'bogus'"),
    "config value of the wrong type": (lambda c: _set(c, "fast", "config", "lr"),
                                       "config.lr has the wrong type"),
    "betas not numbers": (lambda c: _set(c, 0.9, "config", "betas"), "config.betas"),
    "trainer state lacks a key": (lambda c: _drop(c, "trainer_state", "sampler"),
                                  "trainer_state lacks the key 'sampler'"),
    "trainer state iteration not a number": (
        lambda c: _set(c, "two", "trainer_state", "iteration"), "trainer_state.iteration"),
    "trainer state generator junk": (
        lambda c: _set(c, torch.zeros(3), "trainer_state", "generator"),
        "trainer_state.generator"),
    "chains of the wrong shape": (
        lambda c: _set(c, {"chains": torch.zeros(5, 3)}, "trainer_state", "sampler"),
        "trainer state does not fit"),
    "optimizer state junk": (lambda c: _set(c, {"state": 1}, "trainer_state", "optimizer"),
                             "trainer state does not fit"),
    "unknown top-level key": (lambda c: _set(c, 1, "extra"), "unknown key 'extra'"),
    "model lacks its weights": (lambda c: _drop(c, "model", "state_dict"),
                                "model lacks the key 'state_dict'"),
    "non-finite weights": (
        lambda c: c["model"]["state_dict"].__setitem__(
            next(iter(c["model"]["state_dict"])),
            torch.full_like(next(iter(c["model"]["state_dict"].values())), float("nan"))),
        "not finite"),
    "data not points": (lambda c: _set(c, torch.zeros(4), "data", "train"),
                        "data.train is not an (n, 2) tensor"),
    "data name of 100 kB": (lambda c: _set(c, LONG, "data", "name"), "data.name"),
    "box reversed": (lambda c: _set(c, [1.0, 0.0, 0.0, 1.0], "model", "box"), "model.box"),
    "version from the future": (lambda c: _set(c, 99, "version"), "version 99"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_checkpoints_are_refused_naming_what_is_wrong(capsys, tmp_path, checkpoint,
                                                               case):
    import copy

    ck = copy.deepcopy(checkpoint)
    tamper, phrase = TAMPERED[case]
    tamper(ck)
    path = tmp_path / "model.pt"
    torch.save(ck, path)
    code = main(["train", "--resume", str(path), "--quiet"])
    out, err = capsys.readouterr()
    _check_one_line(code, out, err)
    assert phrase in err, err
    assert "weights_only" not in err and "x" * 100 not in err


def test_upload_messages_name_no_server_path(checkpoint):
    import io

    from dashboard.train_live import load_checkpoint_bytes
    from ebmcore.ebm.checkpoint import CheckpointError

    for data in (b"junk", b"PK\x03\x04" + b"\x00" * 100):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint_bytes(data)
        msg = str(err.value)
        assert msg.startswith("the uploaded file is not a usable Langevin Lab checkpoint")
        assert "/tmp" not in msg and "weights_only" not in msg and "\x1b" not in msg

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    buf = io.BytesIO()
    torch.save({"format": "langevin-lab/ebm-checkpoint", "x": Evil()}, buf)
    with pytest.raises(CheckpointError, match="objects other than tensors") as err:
        load_checkpoint_bytes(buf.getvalue())
    assert "weights_only" not in str(err.value) and "\x1b" not in str(err.value)
    ok = io.BytesIO()
    torch.save(checkpoint, ok)
    assert load_checkpoint_bytes(ok.getvalue()).iteration == 2  # a good one still resumes
