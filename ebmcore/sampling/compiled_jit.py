"""numba's ``njit`` for the compiled kernels, with an on-disk cache keyed on all their sources.

numba keys a cached function on its own file alone, but a kernel's machine code also holds
every helper it calls or inlines from other files: an edit to a helper would leave the
cached kernels stale.  Every function compiled here is cached under one stamp, the hash of
all the files in :data:`KERNEL_MODULES`, so an edit to any of them recompiles them all.
Also here: the few compile-time helpers the kernels share (dtype tests, a bit cast).
"""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np

try:  # numba is a dependency, but the torch paths stay usable without it
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

__all__ = ["AVAILABLE", "KERNEL_MODULES", "bits_from_f32", "f32_from_bits", "fma32", "is_f32",
           "kernel_stamp", "njit", "round_like"]

AVAILABLE = numba is not None
KERNEL_MODULES = ("ebmcore.sampling.compiled_jit", "ebmcore.sampling.compiled_math32",
                  "ebmcore.sampling.compiled_vec", "ebmcore.sampling.compiled_targets32",
                  "ebmcore.sampling.compiled", "ebmcore.sampling.compiled_loops",
                  "ebmcore.sampling.noise")
"""Every module whose source the compiled kernels are built from (tests check the list)."""
_STAMP: list[str] = []


def kernel_stamp() -> str:
    """The hash of the sources of :data:`KERNEL_MODULES` (read once per process)."""
    if not _STAMP:
        h = hashlib.sha256()
        for name in KERNEL_MODULES:
            with open(importlib.util.find_spec(name).origin, "rb") as f:
                h.update(f.read())
        _STAMP.append(h.hexdigest())
    return _STAMP[0]


def njit(fn=None, *, inline: bool = False, contract: bool = False):
    """numba's ``njit``, cached on disk under :func:`kernel_stamp`; the plain function where
    numba is absent.

    ``inline``: inlined into its callers by numba itself (a helper called in an inner loop
    with many array arguments costs more to call than to run).  ``contract``: ``a * b + c``
    may be one fused multiply-add (rounded once, not twice: the only fast-math flag used,
    and only in float32 code, whose results are not compared bit for bit); an inlined
    helper takes its caller's flags.  ``contract`` code also takes numpy's error model: a
    float division by zero gives inf or NaN instead of raising, so that no branch keeps a
    division's loop from vectorising.
    """
    if fn is None:
        return lambda f: njit(f, inline=inline, contract=contract)
    if numba is None:
        return fn
    disp = numba.njit(cache=False, fastmath={"contract"} if contract else False, nogil=True,
                      inline="always" if inline else "never",
                      error_model="numpy" if contract else "python")(fn)
    disp._cache = KernelCache(disp.py_func)  # what cache=True does, with our stamp
    return disp


def round_like(value, arr):
    """``value`` rounded to ``arr``'s dtype, as the reference kernels store it (compiled)."""
    return arr.dtype.type(value)


def is_f32(arr):
    """Whether ``arr`` holds float32 (a constant in compiled code: the other branch is pruned)."""
    return arr.dtype == np.float32


def f32_from_bits(bits):
    """The float32 whose bit pattern is the int32 ``bits`` (in compiled code only, where numba
    is present: an overload wrapper would be a call that keeps loops from vectorising)."""
    return np.int32(bits).view(np.float32)


def bits_from_f32(x):
    """The int32 bit pattern of the float32 ``x`` (the inverse of :func:`f32_from_bits`)."""
    return np.float32(x).view(np.int32)


def fma32(a, b, c):
    """``a * b + c`` in float32 rounded once (LLVM's ``fma``: one instruction, vectorised)."""
    return np.float32(float(a) * float(b) + float(c))  # where numba is absent: near enough


def _prefer_512_bit_vectors() -> None:
    """Let LLVM vectorise with 512-bit registers where the CPU has AVX-512.

    LLVM's tuning for AVX-512 CPUs keeps vectors to 256 bits; the float32 loops here gain
    from the full width (the mixture's gradient 22% faster end to end, measured with
    ``bench --only sample``; MALA on banana unchanged).  numba reads the features when it
    first compiles in the process, so this applies if nothing was compiled before (numba's
    cache keys on the features, so kernels built either way are kept apart); a user's own
    ``NUMBA_CPU_FEATURES`` wins.  Vector width does not change any result here: no loop
    reassociates floating-point sums.
    """
    from numba.core.codegen import get_host_cpu_features

    if numba.config.CPU_FEATURES is None:
        features = get_host_cpu_features()
        if "+avx512f" in features.split(","):
            numba.config.CPU_FEATURES = features + ",-prefer-256-bit"


if numba is not None:
    from llvmlite import ir
    from numba.core import caching, types
    from numba.extending import intrinsic, overload

    _prefer_512_bit_vectors()

    def _stamped(base):
        return type("Kernel" + base.__name__, (base,), {"get_source_stamp":
                                                        lambda self: kernel_stamp()})

    class _KernelCacheImpl(caching.CompileResultCacheImpl):
        _locator_classes = tuple(_stamped(c) for c in (  # numba tries them in turn
            caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
            caching.UserWideCacheLocator))

    class KernelCache(caching.FunctionCache):
        """numba's per-function cache, its index stamped with :func:`kernel_stamp`."""

        _impl_class = _KernelCacheImpl

    @overload(round_like, jit_options={"cache": True})
    def _round_like(value, arr):
        if arr.dtype == types.float32:
            return lambda value, arr: np.float32(value)
        return lambda value, arr: np.float64(value)

    @overload(is_f32, jit_options={"cache": True})
    def _is_f32(arr):
        flag = arr.dtype == types.float32
        return lambda arr: flag

    @intrinsic
    def f32_from_bits(typingctx, bits):  # compiled code's own: a bit cast, inlined
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen

    @intrinsic
    def bits_from_f32(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.int32(types.float32), codegen

    @intrinsic
    def fma32(typingctx, a, b, c):
        def codegen(context, builder, signature, args):
            f32 = ir.FloatType()
            fn = builder.module.declare_intrinsic("llvm.fma", [f32],
                                                  ir.FunctionType(f32, [f32, f32, f32]))
            return builder.call(fn, args)

        return types.float32(types.float32, types.float32, types.float32), codegen
