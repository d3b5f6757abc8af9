"""The counter-based noise stream of the CPU runs: SplitMix64 turned into normals and uniforms.

Drawing the Gaussian noise was the floor of every Langevin run on the CPU: ``torch.randn``
makes about 9e7 float32 normals a second on this project's machine (13 us per step at 500
chains), while a compiled step of the registry targets takes a few nanoseconds per chain.
This stream computes them in branch-free code that LLVM vectorises (see ``bench``).

The contract.  A stream is a 64-bit ``seed`` and a ``position``.  Output ``k`` is SplitMix64's
``(k + 1)``-th output from ``seed`` (Steele, Lea & Flood 2014, the generator of Java's
``SplittableRandom``; it passes BigCrush): ``mix(seed + (k + 1) * 0x9E3779B97F4A7C15)``, so any
output is computed from its index alone.  :meth:`NoiseStream.normal_` fills ``m`` values from
the next ``ceil(m / 2)`` outputs: output ``j`` gives values ``2j`` and ``2j + 1`` by Box-Muller,
its high 32 bits the radius (``u = (hi + 1) / 2^32`` in ``(0, 1]``), its low 32 the angle.
:meth:`NoiseStream.uniform_` fills float32 values two per output (its high, then its low 24
bits, in ``[0, 1)``) and float64 values one per output (its top 53 bits).  Each call starts where
the last one ended, so a chunk of steps drawn at once equals its steps drawn one at a time,
and the numbers of chain ``i`` at a step do not depend on how many chains follow it.

The normals are computed in float32 for both dtypes (float64 chains get them widened):
Cephes' ``logf`` and ``sinf``/``cosf`` polynomials on ``[-pi/4, pi/4]`` (shared with the kernels,
:mod:`ebmcore.sampling.compiled_math32`), within a few float32 ulp,
so their law differs from N(0, 1) by about 1e-7 in any quantile, which no test of fewer than
1e14 draws could see; the largest is ``sqrt(64 ln 2) = 6.66`` (the law beyond it, 3e-11, is cut).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ebmcore.sampling.compiled_jit import is_f32, njit
from ebmcore.sampling.compiled_math32 import log32, sincos_pi4

__all__ = ["NoiseStream", "Rng", "block_normals", "block_uniforms", "fill_normal_", "normal",
           "splitmix64", "uniform", "uniform_outputs"]

_U = np.uint64
_GAMMA, _M1, _M2 = _U(0x9E3779B97F4A7C15), _U(0xBF58476D1CE4E5B9), _U(0x94D049BB133111EB)
_S30, _S27, _S31, _S32, _S40, _S11, _S8 = (_U(k) for k in (30, 27, 31, 32, 40, 11, 8))
_LOW32, _LOW22 = _U(0xFFFFFFFF), _U(0x3FFFFF)
_F = np.float32
_TWO_M32, _TWO_M22, _TWO_M24, _TWO_M53 = 2.0**-32, _F(2.0**-22), _F(2.0**-24), 2.0**-53
_QUARTER_PI, _HALF_PI = _F(math.pi / 4), _F(math.pi / 2)
_HALF, _ZERO, _MINUS_TWO, _RT_HALF = _F(0.5), _F(0.0), _F(-2.0), _F(math.sqrt(0.5))


@njit(inline=True)
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline=True)
def _pair(z):
    """The two float32 normals of output ``z`` (Box-Muller; see the module docstring)."""
    hi, lo = z >> _S32, z & _LOW32
    u = _F(np.int64(hi) + np.int64(1)) * _F(_TWO_M32)
    q2 = _MINUS_TWO * log32(u)
    h = math.sqrt(q2 if q2 > _ZERO else _ZERO) * _RT_HALF
    b = lo >> _S8  # 24 bits of angle: the quadrant, then 22 bits within it
    quad = np.int64(b >> _U(22))
    a = (_F(np.int64(b & _LOW22)) + _HALF) * _TWO_M22 * _HALF_PI - _QUARTER_PI
    s, c = sincos_pi4(a)  # inlined: this caller's flags (no contract), so the stream's bits
    # cos and sin of the quadrant's centre, over sqrt(1/2) (folded into h): +-1
    cq = _F(np.int64(1) - np.int64(2) * ((quad ^ (quad >> np.int64(1))) & np.int64(1)))
    sq = _F(np.int64(1) - np.int64(2) * (quad >> np.int64(1)))
    return h * (cq * c - sq * s), h * (sq * c + cq * s)


@njit
def _normals(seed, start, out):
    """``out[:] =`` the normals of outputs ``start, start + 1, ...`` (1-D float32/float64)."""
    m = out.shape[0]
    base = seed + (start + _U(1)) * _GAMMA
    for j in range(m // 2):
        a, b = _pair(_mix(base + _U(j) * _GAMMA))
        out[2 * j] = a
        out[2 * j + 1] = b
    if m % 2:
        out[m - 1] = _pair(_mix(base + _U(m // 2) * _GAMMA))[0]


@njit
def _uniforms(seed, start, out):
    """``out[:] =`` the uniforms of outputs ``start, ...`` in ``[0, 1)`` (see the docstring)."""
    m = out.shape[0]
    base = seed + (start + _U(1)) * _GAMMA
    if is_f32(out):
        for j in range(m // 2):
            z = _mix(base + _U(j) * _GAMMA)
            out[2 * j] = _F(np.int64(z >> _S40)) * _TWO_M24
            out[2 * j + 1] = _F(np.int64((z & _LOW32) >> _S8)) * _TWO_M24
        if m % 2:
            out[m - 1] = _F(np.int64(_mix(base + _U(m // 2) * _GAMMA) >> _S40)) * _TWO_M24
    else:
        for j in range(m):
            out[j] = np.int64(_mix(base + _U(j) * _GAMMA) >> _S11) * _TWO_M53


@njit
def block_normals(seed, start, m, z0, z1):
    """``z0[i], z1[i] =`` the two normals of output ``start + i`` for ``i < m``: the values
    ``2i, 2i + 1`` of a :meth:`NoiseStream.normal_` call that began at output ``start``, so
    chain ``n0 + i``'s row of an ``(N, 2)`` draw when ``start`` is the call's position plus
    ``n0``.  For kernels that draw a block of chains' noise where they use it."""
    base = seed + (start + _U(1)) * _GAMMA
    for i in range(m):
        z0[i], z1[i] = _pair(_mix(base + _U(i) * _GAMMA))


@njit
def block_uniforms(seed, start, m, out):
    """``out[:m] =`` the uniforms of a :meth:`NoiseStream.uniform_` call that began ``start``
    outputs earlier (for a block starting at chain ``n0``, even for float32, ``start`` is
    the call's position plus :func:`uniform_outputs` ``(n0)``)."""
    _uniforms(seed, start, out[:m])


def uniform_outputs(n: int, dtype) -> int:
    """How many outputs ``n`` uniforms of ``dtype`` take (two float32 values per output)."""
    return (n + 1) // 2 if np.dtype(dtype) == np.float32 else n


def splitmix64(seed: int, k: int) -> int:
    """Output ``k`` of the stream from ``seed``, in plain Python (the contract's reference)."""
    mask = (1 << 64) - 1
    z = (seed + (k + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def _flat(out: Tensor) -> np.ndarray:
    if out.device.type != "cpu" or not out.is_contiguous() or out.dtype not in (
            torch.float32, torch.float64):
        raise ValueError("the noise stream fills contiguous float32/float64 CPU tensors")
    return out.view(-1).numpy()


class NoiseStream:
    """Where a run's noise comes from on the CPU: ``seed`` and the next output's ``position``.

    Passed where the kernels take a ``torch.Generator`` (:func:`normal`, :func:`uniform`).
    """

    __slots__ = ("position", "seed")

    def __init__(self, seed: int, position: int = 0) -> None:
        self.seed, self.position = int(seed) & ((1 << 64) - 1), int(position)

    @classmethod
    def from_generator(cls, gen: torch.Generator) -> NoiseStream:
        """A stream keyed by one 63-bit draw from ``gen`` (so the run's seed sets it)."""
        return cls(int(torch.randint(0, 2**63 - 1, (), generator=gen)))

    def normal_(self, out: Tensor) -> Tensor:
        """Fill ``out`` with N(0, 1) values; returns it."""
        flat = _flat(out)
        _normals(_U(self.seed), _U(self.position), flat)
        self.position += (flat.shape[0] + 1) // 2
        return out

    def uniform_(self, out: Tensor) -> Tensor:
        """Fill ``out`` with U[0, 1) values; returns it."""
        flat = _flat(out)
        _uniforms(_U(self.seed), _U(self.position), flat)
        self.position += uniform_outputs(flat.shape[0], flat.dtype)
        return out


Rng = torch.Generator | NoiseStream
"""What the kernels draw their randomness from."""


def normal(shape, generator: Rng, *, dtype: torch.dtype, device) -> Tensor:
    """``randn(shape)`` from a torch generator or a :class:`NoiseStream`."""
    if isinstance(generator, NoiseStream):
        return generator.normal_(torch.empty(shape, dtype=dtype))
    return torch.randn(shape, generator=generator, dtype=dtype, device=device)


def uniform(shape, generator: Rng, *, dtype: torch.dtype, device) -> Tensor:
    """``rand(shape)`` from a torch generator or a :class:`NoiseStream`."""
    if isinstance(generator, NoiseStream):
        return generator.uniform_(torch.empty(shape, dtype=dtype))
    return torch.rand(shape, generator=generator, dtype=dtype, device=device)


def fill_normal_(out: Tensor, generator: Rng) -> Tensor:
    """``torch.randn(out.shape, out=out)`` from a torch generator or a :class:`NoiseStream`."""
    if isinstance(generator, NoiseStream):
        return generator.normal_(out)
    return torch.randn(out.shape, generator=generator, out=out)
