"""The schema of a checkpoint: every key and type, checked before anything uses the file.

A checkpoint comes from outside (an upload, a file someone sent), so nothing in it is
trusted: :func:`check_payload` checks the layout of :mod:`ebmcore.ebm.checkpoint` key by
key (no key missing, none unknown, each of the right type and shape, its tensors within
the memory budget), and :func:`check_config` the trainer's settings against the fields
of its config class. Each refusal names the offending key, as a dotted path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import torch

from ebmcore.budget import DEFAULT_BUDGET, Budget

__all__ = ["MAX_POINTS", "SchemaError", "check_config", "check_payload", "check_trainer_state",
           "tensor_bytes"]

MAX_POINTS = 10_000_000  # data points per split: far more than any data set makes
TOP_KEYS = ("format", "version", "method", "model", "config", "data", "metrics",
            "trainer_state")
MODEL_KEYS = ("kind", "config", "box", "state_dict")
MODEL_CONFIG_KEYS = ("width", "depth", "activation")
DATA_KEYS = ("name", "params", "box", "train", "test")
STATE_KEYS = ("iteration", "seconds", "model", "optimizer", "generator", "negatives",
              "diverged")
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class SchemaError(ValueError):
    """One thing wrong with a checkpoint, in words."""


def _keys(obj: Any, where: str, required: tuple[str, ...], extra: tuple[str, ...] = ()) -> None:
    if not isinstance(obj, Mapping):
        raise SchemaError(f"{where} is not a mapping")
    for k in required:
        if k not in obj:
            raise SchemaError(f"{where} lacks the key {k!r}")
    unknown = [k for k in obj if k not in required and k not in extra]
    if unknown:
        raise SchemaError(f"{where} has an unknown key {str(unknown[0])[:40]!r}")


def _number(v: Any, where: str, *, integer: bool = False) -> None:
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not math.isfinite(v):
        raise SchemaError(f"{where} is not a finite {'whole ' if integer else ''}number")


def _box(v: Any, where: str) -> None:
    if not isinstance(v, (list, tuple)) or len(v) != 4:
        raise SchemaError(f"{where} is not four numbers")
    for i, x in enumerate(v):
        _number(x, f"{where}[{i}]")
    if not (v[0] < v[1] and v[2] < v[3]):
        raise SchemaError(f"{where} is not a box (xmin < xmax, ymin < ymax)")


def _points(v: Any, where: str) -> None:
    if not isinstance(v, torch.Tensor) or v.dim() != 2 or v.shape[1] != 2:
        raise SchemaError(f"{where} is not an (n, 2) tensor")
    if not v.is_floating_point() or not 1 <= v.shape[0] <= MAX_POINTS:
        raise SchemaError(f"{where} must hold 1 to {MAX_POINTS:,} floating-point points")
    if not bool(torch.isfinite(v).all()):
        raise SchemaError(f"{where} holds non-finite numbers")


def _plain(v: Any, where: str, depth: int = 0) -> None:
    """Numbers, strings, None, and lists / string-keyed dicts of them (a few levels)."""
    if depth > 8:
        raise SchemaError(f"{where} is nested too deeply")
    if v is None or isinstance(v, (bool, int, float, str)):
        if isinstance(v, str) and len(v) > 10_000:
            raise SchemaError(f"{where} is too long")
        return
    if isinstance(v, (list, tuple)):
        for i, x in enumerate(v[:10_000]):
            _plain(x, f"{where}[{i}]", depth + 1)
        return
    if isinstance(v, Mapping):
        for k, x in v.items():
            if not isinstance(k, str):
                raise SchemaError(f"{where} has a key that is not text")
            _plain(x, f"{where}.{k[:40]}", depth + 1)
        return
    raise SchemaError(f"{where} holds a {type(v).__name__}, not plain data")


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor inside ``obj`` (nested dicts and lists)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def check_payload(obj: Any, budget: Budget = DEFAULT_BUDGET) -> None:
    """Raise SchemaError naming the first thing wrong in a loaded checkpoint (format and
    version are checked by the caller, which words those messages itself)."""
    _keys(obj, "the checkpoint", TOP_KEYS)
    if not isinstance(obj["method"], str) or not _NAME.fullmatch(obj["method"]):
        raise SchemaError("method is not a short name")
    m = obj["model"]
    _keys(m, "model", MODEL_KEYS)
    if m["kind"] != "mlp":
        raise SchemaError(f"model.kind {str(m['kind'])[:40]!r} is not a known model kind")
    _keys(m["config"], "model.config", MODEL_CONFIG_KEYS)
    _box(m["box"], "model.box")
    sd = m["state_dict"]
    if not isinstance(sd, Mapping) or not sd:
        raise SchemaError("model.state_dict is not a mapping of tensors")
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise SchemaError("model.state_dict is not a mapping of tensors")
        if not v.is_floating_point() or not bool(torch.isfinite(v).all()):
            raise SchemaError(f"model.state_dict.{k[:40]} is not finite floating-point numbers")
    if not isinstance(obj["config"], Mapping):
        raise SchemaError("config is not a mapping")
    _plain(obj["config"], "config")
    d = obj["data"]
    _keys(d, "data", DATA_KEYS)
    if not isinstance(d["name"], str) or not _NAME.fullmatch(d["name"]):
        raise SchemaError("data.name is not a short name")
    if not isinstance(d["params"], Mapping):
        raise SchemaError("data.params is not a mapping")
    _plain(d["params"], "data.params")
    _box(d["box"], "data.box")
    _points(d["train"], "data.train")
    _points(d["test"], "data.test")
    if not isinstance(obj["metrics"], list) or not all(isinstance(r, Mapping)
                                                       for r in obj["metrics"]):
        raise SchemaError("metrics is not a list of rows")
    _plain(obj["metrics"], "metrics")
    if obj["trainer_state"] is not None and not isinstance(obj["trainer_state"], Mapping):
        raise SchemaError("trainer_state is neither empty nor a mapping")
    held = tensor_bytes(obj)
    if held > budget.memory:
        raise SchemaError(f"its tensors take {held / 2**20:.0f} MiB, over the memory budget "
                          f"of {budget.memory / 2**20:.0f} MiB")


def _accepts(annotation: str, v: Any) -> bool:
    """Whether ``v`` fits a config field annotated ``annotation`` (a string: the configs use
    postponed annotations); a ``tuple[...]`` takes a list of finite numbers only."""
    kinds = set(re.findall(r"[A-Za-z_]+", re.sub(r"tuple\[[^\]]*\]", "tuple", annotation)))
    if v is None:
        return "None" in kinds
    if isinstance(v, bool):
        return "bool" in kinds
    if isinstance(v, (int, float)):
        return (isinstance(v, int) and "int" in kinds) or ("float" in kinds and math.isfinite(v))
    if isinstance(v, str):
        return "str" in kinds
    if isinstance(v, (list, tuple)):
        return "tuple" in kinds and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                        and math.isfinite(x) for x in v)
    return False


def check_config(config_class: type, d: Mapping[str, Any], *, extra: tuple[str, ...] = ()
                 ) -> None:
    """``d`` has every field of ``config_class`` (and only those, plus ``extra``), each of
    its field's type; raise SchemaError naming the first key that does not."""
    names = tuple(f.name for f in fields(config_class))
    _keys(d, "config", names, extra)
    for f in fields(config_class):
        if not _accepts(str(f.type), d[f.name]):
            raise SchemaError(f"config.{f.name} has the wrong type "
                              f"({type(d[f.name]).__name__}, expected {f.type})")


def check_trainer_state(state: Any, extra: tuple[str, ...]) -> None:
    """The trainer state's own keys and types (what the loop reads before the method)."""
    _keys(state, "trainer_state", (*STATE_KEYS, *extra))
    _number(state["iteration"], "trainer_state.iteration", integer=True)
    if state["iteration"] < 0:
        raise SchemaError("trainer_state.iteration is negative")
    _number(state["seconds"], "trainer_state.seconds")
    for key in ("model", "optimizer"):
        if not isinstance(state[key], Mapping):
            raise SchemaError(f"trainer_state.{key} is not a mapping")
    g = state["generator"]
    if not isinstance(g, torch.Tensor) or g.dtype != torch.uint8 or g.dim() != 1:
        raise SchemaError("trainer_state.generator is not a generator state")
    n = state["negatives"]
    if not isinstance(n, torch.Tensor) or (n.numel() and (n.dim() != 2 or n.shape[1] != 2)):
        raise SchemaError("trainer_state.negatives is not an (n, 2) tensor")
    if state["diverged"] is not None and not isinstance(state["diverged"], str):
        raise SchemaError("trainer_state.diverged is neither empty nor a sentence")
