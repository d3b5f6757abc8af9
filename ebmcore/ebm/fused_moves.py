"""Compiled row loops for the training chains' per-point arithmetic (numba).

A Langevin step on the MLP is four matrix products (torch) and then a few operations on
``(N, 2)`` points: the move, the wall rule, and for MALA the Metropolis test.  As torch
operations those are some twenty dispatches per step on tiny tensors, as costly as the
matrix products; here each is one compiled loop over the rows.  The arithmetic is that of
:func:`ebmcore.sampling.kernels.sgld_update`, :meth:`ebmcore.box.Box.reflect` /
:meth:`~ebmcore.box.Box.clamp` and :func:`ebmcore.sampling.kernels.mala_step`, in float64
whatever the storage dtype; ``tests/test_input_grad.py`` checks the chains against those
reference kernels.  The loops release the GIL, so a training worker thread and the page
drawing beside it run in parallel.

Arrays are NumPy views of CPU tensors (``Tensor.numpy()``); ``lo`` and ``hi`` are the box's
corners as two floats each.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["mala_accept", "mala_propose", "outside_to_inf", "sgld_move"]

_JIT = {"nogil": True, "cache": True}


@numba.njit(**_JIT)
def _fold(v: float, lo: float, hi: float, reflect: bool) -> float:
    # Box.reflect: lo + w - |((v - lo) mod 2w) - w|, periodic; Box.clamp: onto the wall
    if reflect:
        w = hi - lo
        t = (v - lo) % (2.0 * w)
        return lo + w - abs(t - w)
    return min(max(v, lo), hi)


@numba.njit(**_JIT)
def sgld_move(x: np.ndarray, g: np.ndarray, xi: np.ndarray, eps: float, sigma: float,
              lo0: float, lo1: float, hi0: float, hi1: float, reflect: bool) -> None:
    """In place: ``x <- wall(x - eps g + sigma xi)`` for every row of ``x (N, 2)``."""
    for i in range(x.shape[0]):
        x[i, 0] = _fold(x[i, 0] - eps * g[i, 0] + sigma * xi[i, 0], lo0, hi0, reflect)
        x[i, 1] = _fold(x[i, 1] - eps * g[i, 1] + sigma * xi[i, 1], lo1, hi1, reflect)


@numba.njit(**_JIT)
def outside_to_inf(x: np.ndarray, e: np.ndarray, lo0: float, lo1: float, hi0: float,
                   hi1: float) -> None:
    """In place: ``e = inf`` on the rows of ``x`` outside the box (walls are inside)."""
    for i in range(x.shape[0]):
        if not (lo0 <= x[i, 0] <= hi0 and lo1 <= x[i, 1] <= hi1):
            e[i] = math.inf


@numba.njit(**_JIT)
def mala_propose(x: np.ndarray, g: np.ndarray, xi: np.ndarray, eps: float, sigma: float,
                 y: np.ndarray) -> None:
    """``y <- x - eps g + sigma xi`` (the proposal; no wall rule: outside is rejected)."""
    for i in range(x.shape[0]):
        y[i, 0] = x[i, 0] - eps * g[i, 0] + sigma * xi[i, 0]
        y[i, 1] = x[i, 1] - eps * g[i, 1] + sigma * xi[i, 1]


@numba.njit(**_JIT)
def mala_accept(x: np.ndarray, e: np.ndarray, g: np.ndarray, y: np.ndarray, e_y: np.ndarray,
                g_y: np.ndarray, xi: np.ndarray, u: np.ndarray, eps: float,
                temperature: float, lo0: float, lo1: float, hi0: float, hi1: float,
                xi_next: np.ndarray, propose: bool) -> int:
    """The Metropolis test of each row; accepted rows of ``(x, e, g)`` become ``(y, e_y, g_y)``.

    ``log alpha = (e - e_y) / T - (|x - y + eps g_y|^2 - |sigma xi|^2) / (2 s2)`` with
    ``s2 = 2 eps T`` (the forward term is ``|xi|^2 / 2``); ``E = inf`` outside the box
    and a NaN ratio rejects.  With ``propose``, ``y`` then becomes the next proposal
    from noise ``xi_next`` (one pass for the end of a step and the start of the next).
    Returns how many rows moved.
    """
    s2 = 2.0 * eps * temperature
    sigma = math.sqrt(s2)
    taken = 0
    for i in range(x.shape[0]):
        inside = lo0 <= y[i, 0] <= hi0 and lo1 <= y[i, 1] <= hi1
        ey = e_y[i] if inside else math.inf
        d0 = x[i, 0] - y[i, 0] + eps * g_y[i, 0]
        d1 = x[i, 1] - y[i, 1] + eps * g_y[i, 1]
        fwd = 0.5 * (xi[i, 0] * xi[i, 0] + xi[i, 1] * xi[i, 1])
        log_alpha = (e[i] - ey) / temperature - (d0 * d0 + d1 * d1) / (2.0 * s2) + fwd
        if math.log(u[i]) < log_alpha:  # False for a NaN ratio
            x[i, 0], x[i, 1] = y[i, 0], y[i, 1]
            e[i] = ey
            g[i, 0], g[i, 1] = g_y[i, 0], g_y[i, 1]
            taken += 1
        if propose:
            y[i, 0] = x[i, 0] - eps * g[i, 0] + sigma * xi_next[i, 0]
            y[i, 1] = x[i, 1] - eps * g[i, 1] + sigma * xi_next[i, 1]
    return taken
