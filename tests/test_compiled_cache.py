"""The compiled kernels' on-disk cache is stamped with the source of every module they are
built from, so an edit to a helper in any of them recompiles every kernel."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

numba = pytest.importorskip("numba")

import ebmcore  # noqa: E402
from ebmcore.sampling import compiled_jit  # noqa: E402
from ebmcore.sampling.compiled_jit import KERNEL_MODULES, KernelCache, kernel_stamp  # noqa: E402


def _numba_objects():
    """``(module name, attribute, object)`` for every numba-compiled thing defined in ebmcore."""
    from numba.core.dispatcher import Dispatcher
    from numba.core.extending import _Intrinsic

    for info in pkgutil.walk_packages(ebmcore.__path__, "ebmcore."):
        if info.name.startswith("ebmcore.cli"):
            continue
        try:
            mod = importlib.import_module(info.name)
        except ImportError:  # an optional extra (interop) that is not installed
            continue
        for attr, obj in vars(mod).items():
            if isinstance(obj, (Dispatcher, _Intrinsic)) and _home(obj) == info.name:
                yield info.name, attr, obj


def _home(obj) -> str | None:
    return getattr(getattr(obj, "py_func", None) or getattr(obj, "_defn", None), "__module__",
                   None)


def test_compiled_code_calls_compiled_code_only_under_one_stamp():
    # A kernel's machine code holds what it calls: numba's own cache (keyed on one file) is
    # right only for code that calls nothing compiled elsewhere; the rest must be stamped
    # with every module it is built from.
    from numba.core.dispatcher import Dispatcher
    from numba.core.extending import _Intrinsic

    found = list(_numba_objects())
    assert any(attr == "sgld_chunk" for _, attr, _ in found)
    for mod, attr, obj in found:
        if not isinstance(obj, Dispatcher):
            continue
        calls = {_home(g) for g in obj.py_func.__globals__.values()
                 if isinstance(g, (Dispatcher, _Intrinsic))} - {None}
        if isinstance(obj._cache, KernelCache):
            assert mod in KERNEL_MODULES and calls <= set(KERNEL_MODULES), (mod, attr, calls)
            assert obj._cache._cache_file._source_stamp == kernel_stamp()
        else:
            assert calls <= {mod}, f"{mod}.{attr} calls compiled code of {calls}: use compiled_jit"


def test_the_stamp_changes_with_an_edit_to_any_kernel_module(monkeypatch, tmp_path):
    real = kernel_stamp()
    sources = {}
    for name in KERNEL_MODULES:
        path = importlib.util.find_spec(name).origin
        with open(path, "rb") as f:
            sources[name] = f.read()
    for name in KERNEL_MODULES:
        edited = tmp_path / f"{name}.py"
        edited.write_bytes(sources[name] + b"\n# an edit\n")
        real_find = importlib.util.find_spec

        def find(n, *a, edited=edited, target=name, real_find=real_find):
            spec = real_find(n, *a)
            return type("S", (), {"origin": str(edited)})() if n == target else spec

        monkeypatch.setattr(compiled_jit.importlib.util, "find_spec", find)
        monkeypatch.setattr(compiled_jit, "_STAMP", [])
        assert kernel_stamp() != real, f"an edit to {name} leaves the stamp unchanged"
        monkeypatch.undo()
    assert kernel_stamp() == real
