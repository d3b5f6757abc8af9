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

import io
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ebmcore.budget import DEFAULT_BUDGET, Budget
from ebmcore.ebm.checkpoint_schema import SchemaError, check_payload
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

    path: str  # where it was read from (or what messages call an upload)
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


def _bad(name: str, why: str) -> CheckpointError:
    return CheckpointError(f"{name} is not a usable Langevin Lab checkpoint: {why}")


def _read(source: str | os.PathLike | bytes, name: str) -> Any:
    """``torch.load(weights_only=True)``; its own messages (which advise unsafe loading and
    carry terminal colour codes) are replaced by ours."""
    import pickle

    try:
        buf = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
        with warnings.catch_warnings():  # its warnings about pickle protocols are not ours
            warnings.simplefilter("ignore")
            return torch.load(buf, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # objects other than tensors and plain data: refused
        raise _bad(name, "torch could not read it safely (it holds objects other than "
                         "tensors, numbers and text, and loading them could run code)") from None
    except Exception:  # the reader raises many kinds of errors on junk
        raise _bad(name, "torch could not read it safely (not a torch file, or truncated)"
                   ) from None


def load_checkpoint(source: str | os.PathLike | bytes, *, name: str | None = None,
                    budget: Budget = DEFAULT_BUDGET) -> Checkpoint:
    """Read a checkpoint (a path, or the bytes of an upload) with ``weights_only=True``,
    and check it against the schema (:mod:`ebmcore.ebm.checkpoint_schema`) before use.

    ``name`` is what messages call the file (default: its path; ``"the uploaded file"``
    for bytes, so that no server path reaches a browser).

    Raises:
        CheckpointError: missing file, not a torch file, unsafe content, another
            format or version, a missing, unknown or mistyped key, tensors over the
            memory budget, or weights that do not fit the architecture.
    """
    if isinstance(source, bytes):
        label = name or "the uploaded file"
    else:
        label = name or os.fspath(source)
        if not os.path.isfile(os.fspath(source)):
            raise CheckpointError(f"no checkpoint file at {label}")
    obj = _read(source, label)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise _bad(label, f"it does not have format {FORMAT!r}")
    if obj.get("version") != VERSION:
        raise _bad(label, f"version {str(obj.get('version'))[:20]} is not supported (this "
                          f"code reads version {VERSION})")
    try:
        check_payload(obj, budget)
        m, d = obj["model"], obj["data"]
        cfg = ModelConfig(**m["config"])
    except (SchemaError, ValidationError) as err:
        raise _bad(label, str(err)) from None
    box = tuple(float(v) for v in m["box"])
    ck = Checkpoint(label, obj["method"], cfg, box, dict(m["state_dict"]), dict(obj["config"]),
                    dict(d), [dict(r) for r in obj["metrics"]], obj["trainer_state"])
    try:
        ck.model()
    except RuntimeError:
        raise _bad(label, "the weights do not fit the architecture in model.config") from None
    return ck
