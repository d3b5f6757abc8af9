"""Checkpoints: round trip, exact resume, and clear errors for bad files."""

from __future__ import annotations

import pickle

import pytest
import torch

from ebmcore.ebm.checkpoint import FORMAT, CheckpointError, load_checkpoint
from ebmcore.ebm.data import make_dataset
from ebmcore.ebm.models import ModelConfig
from ebmcore.ebm.training import TrainConfig, Trainer

TINY = ModelConfig(width=16, depth=2, activation="softplus")


def _cfg(method: str = "replay") -> TrainConfig:
    return TrainConfig(method=method, iters=10, batch_size=32, steps=4, eval_every=5,
                       eval_grid=32, grid=16, buffer_size=64, seed=7)


@pytest.fixture(scope="module")
def data():
    return make_dataset("mixture", 200, 100, seed=2)


def test_round_trip(tmp_path, data):
    tr = Trainer(data, _cfg(), TINY)
    for _ in tr.run(5):
        pass
    path = tmp_path / "model.pt"
    tr.save(str(path))
    ck = load_checkpoint(path)
    assert ck.method == "replay" and ck.model_config == TINY and ck.box == tr.box
    assert ck.config["iters"] == 10 and ck.config["betas"] == list(tr.config.betas)
    assert ck.metrics == tr.history and len(ck.metrics) == 1
    x = torch.randn(50, 2)
    assert torch.equal(ck.model()(x), tr.eval_model(x).detach())  # the weight average
    d = ck.dataset()
    assert d.name == "mixture" and torch.equal(d.train, data.train)
    assert d.target is not None  # the registry target is rebuilt from name and params


@pytest.mark.parametrize("method", ["persistent", "exact"])
def test_resume_from_a_checkpoint_is_bitwise_identical(tmp_path, data, method):
    whole = Trainer(data, _cfg(method), TINY)
    for _ in whole.run():
        pass
    first = Trainer(data, _cfg(method), TINY)
    for _ in first.run(6):
        pass
    first.save(str(tmp_path / "half.pt"))
    resumed = Trainer.resume(str(tmp_path / "half.pt"))
    assert resumed.iteration == 6
    for _ in resumed.run():
        pass
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(whole.negatives, resumed.negatives)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_garbage_file(tmp_path):
    p = tmp_path / "junk.pt"
    p.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a usable Langevin Lab checkpoint"):
        load_checkpoint(p)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran on load",))


def test_unsafe_pickle_is_refused(tmp_path, capsys):
    p = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": _Evil()}, p)
    with pytest.raises(CheckpointError, match="could not read it safely"):
        load_checkpoint(p)
    assert "code ran" not in capsys.readouterr().out
    q = tmp_path / "plain.pkl"
    q.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(q)


def test_other_torch_file_and_broken_fields(tmp_path, data):
    p = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, p)
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(p)
    tr = Trainer(data, _cfg(), TINY)
    tr.save(str(p))
    ck = torch.load(p, weights_only=True)
    ck["model"]["config"]["width"] = 32  # weights no longer fit
    torch.save(ck, p)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(p)
    del ck["model"]
    torch.save(ck, p)
    with pytest.raises(CheckpointError, match="the checkpoint lacks the key 'model'"):
        load_checkpoint(p)
    ck["version"] = 99
    torch.save(ck, p)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(p)
