"""Checkpoints of trained energy models: save, and load safely.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings,
lists and dicts, so it loads with ``weights_only=True`` (no code runs on
load).  Layout (version 1)::

    format: "langevin-lab/ebm-checkpoint"   version: 1
    method: "exact" | "persistent" | ... | any later trainer's name
    model: {kind: "mlp", config: {width, depth, activation}, box: [4], state_dict}
    config: the trainer's settings as a dict
    data: {name, params, box, train (n, 2), test (m, 2)}   # the very points trained on
    metrics: [ {iteration, seconds, loss, nll_train, ...}, ... ]
    trainer_state: optimiser, generator, chains/buffer, iteration... or None

Every trainer writes this layout with its own ``method`` and ``trainer_state``;
readers that only need the model use ``load_checkpoint(path).model()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ebmcore.ebm.data import Dataset
from ebmcore.ebm.models import MLPEnergy, ModelConfig
from ebmcore.energies import Box, ValidationError

__all__ = ["FORMAT", "VERSION", "Checkpoint", "CheckpointError", "load_checkpoint",
           "save_checkpoint"]

FORMAT = "langevin-lab/ebm-checkpoint"
VERSION = 1


class CheckpointError(ValidationError):
    """A file that is missing, unreadable, or not one of our checkpoints."""


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so configs round-trip as plain data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_checkpoint(path: str | os.PathLike, *, method: str, model: MLPEnergy,
                    config: Mapping[str, Any], dataset: Dataset,
                    metrics: list[Mapping[str, Any]],
                    trainer_state: Mapping[str, Any] | None = None) -> None:
    """Write a checkpoint atomically (a partial file never replaces a good one)."""
    payload = {
        "format": FORMAT, "version": VERSION, "method": method,
        "model": {"kind": "mlp", "config": asdict(model.config), "box": list(model.box),
                  "state_dict": {k: v.detach().cpu().clone()
                                 for k, v in model.state_dict().items()}},
        "config": _plain(config),
        "data": {"name": dataset.name, "params": _plain(dict(dataset.params)),
                 "box": list(dataset.box), "train": dataset.train.detach().cpu().clone(),
                 "test": dataset.test.detach().cpu().clone()},
        "metrics": [_plain(m) for m in metrics],
        "trainer_state": trainer_state,
    }
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint (see the module docstring for the fields)."""

    path: str  # where it was read from
    method: str  # trainer that wrote it
    model_config: ModelConfig  # the MLP's architecture
    box: Box  # the model's box (its density is zero outside)
    state_dict: dict[str, torch.Tensor]  # the model's weights
    config: dict[str, Any]  # the trainer's settings
    data: dict[str, Any]  # name, params, box, train (n, 2), test (m, 2)
    metrics: list[dict[str, Any]]  # exact-metric rows, in order
    trainer_state: dict[str, Any] | None  # what the trainer needs to resume, if saved

    def model(self) -> MLPEnergy:
        """The trained model, weights loaded, in eval mode."""
        m = MLPEnergy(self.model_config, self.box)
        m.load_state_dict(self.state_dict)
        return m.eval()

    def dataset(self) -> Dataset:
        """The very points the model was trained on (with the exact target, if known)."""
        from ebmcore.targets.registry import TARGETS, make_target

        d = self.data
        target = None
        if d["name"] in TARGETS:
            try:
                target = make_target(d["name"], **d["params"])
            except ValidationError:
                target = None
        return Dataset(d["name"], d["train"], d["test"], tuple(d["box"]), target,
                       dict(d["params"]))


def _bad(path: str, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a usable Langevin Lab checkpoint: {why}")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: missing file, not a torch file, unsafe content, another
            format or version, or missing / mistyped fields.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise CheckpointError(f"no checkpoint file at {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises many kinds of errors on junk
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _bad(p, f"torch could not read it safely ({first})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise _bad(p, f"it does not have format {FORMAT!r}")
    if obj.get("version") != VERSION:
        raise _bad(p, f"version {obj.get('version')!r} is not supported (this code reads "
                      f"version {VERSION})")
    try:
        m, d = obj["model"], obj["data"]
        if m["kind"] != "mlp":
            raise _bad(p, f"unknown model kind {m['kind']!r}")
        cfg = ModelConfig(**m["config"])
        box = tuple(float(v) for v in m["box"])
        state = dict(m["state_dict"])
        if not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise _bad(p, "the weights are not all tensors")
        for key in ("train", "test"):
            if not isinstance(d[key], torch.Tensor) or d[key].dim() != 2 or d[key].shape[1] != 2:
                raise _bad(p, f"data.{key} is not an (n, 2) tensor")
        ck = Checkpoint(p, str(obj["method"]), cfg, box, state, dict(obj["config"]), dict(d),
                        [dict(r) for r in obj["metrics"]], obj.get("trainer_state"))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise _bad(p, f"missing or malformed field ({err})") from None
    try:
        ck.model()
    except RuntimeError as err:
        raise _bad(p, f"the weights do not fit the architecture ({str(err)[:200]})") from None
    return ck
