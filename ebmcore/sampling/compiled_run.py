"""The fused run on the compiled kernels: SGLD, MALA, HMC and underdamped Langevin.

Between two checks (:func:`ebmcore.sampling.config.CHECK_EVERY` steps at most) a kernel of
:mod:`ebmcore.sampling.compiled_loops` advances every chain through the chunk, drawing its
random numbers from the run's :class:`~ebmcore.sampling.noise.NoiseStream` as the reference
kernels draw them step by step, one ``normal(N, 2)`` (and for MALA/HMC one ``uniform(N)``)
per step: that is the random stream contract, so a seed gives the same numbers as
``fused=False`` (to rounding), on every path.  It writes recorded frames, paths and frame
energy sums; the check between chunks freezes chains that left the finite world, as on
the torch paths.

Chosen by measurement over a ``torch.compile``'d chunk: a block of chains kept in cache
through a chunk costs one pass over memory per chunk, not one per operation per step, and
numba's on-disk cache compiles once per machine (about 25 s for every kernel) rather than
once per process (a cache load: about 1.6 s).  :func:`warm_up` loads (or compiles) every
kernel in the background, so that a server's first request does not wait for them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ebmcore.energies import Target
from ebmcore.sampling.compiled import compiled_target
from ebmcore.sampling.compiled_loops import (
    BLOCK,
    baoab_chunk,
    energy_grad_all,
    hmc_chunk,
    mala_chunk,
    sgld_chunk,
    step_outputs,
)
from ebmcore.sampling.config import CHUNK_CHAIN_STEPS, Progress, SampleConfig
from ebmcore.sampling.kernels import SamplerState
from ebmcore.sampling.noise import NoiseStream

__all__ = ["COMPILED_SAMPLERS", "compiled_spec", "initial_state", "run_compiled", "warm_up"]

COMPILED_SAMPLERS = ("sgld", "mala", "hmc", "underdamped")
# Compiled at every size.  The in-place torch loops used to win from ~5,000 chains, when the
# kernels read a stored chunk of noise and returned to Python at every check; drawing the
# noise in the kernel and running many checks per call, measured in one run (CPU time, one
# thread, eps 0.002): banana SGLD 1e4 x 1000 0.10 s against the torch loop's 0.35, 1e6 x 201
# 2.3 s against 2.9; float64 banana 3.1 against 5.4 s at 1e6, rings 14.6 against 28.6 s.


def compiled_spec(target: Target, cfg: SampleConfig) -> tuple[int, np.ndarray] | None:
    """The compiled kernels' packing of ``target`` when this run can use them, else None."""
    if not cfg.fused or cfg.sampler not in COMPILED_SAMPLERS or cfg.device != "cpu":
        return None
    return compiled_target(target, cfg.torch_dtype)


def initial_state(spec: tuple[int, np.ndarray], x: torch.Tensor) -> SamplerState:
    """The energies and gradients at ``x`` (``(N, 2)``, CPU) by the compiled target: the
    values the kernels themselves compute from there on (torch's agree to rounding)."""
    x = x.contiguous()
    e, g = torch.empty(x.shape[0], dtype=x.dtype), torch.empty_like(x)
    energy_grad_all(spec[0], spec[1], x.numpy(), e.numpy(), g.numpy())
    return SamplerState(x, e, g)


def _slots(step: int, stop: int, period: int) -> np.ndarray:
    """Per step ``step+1..stop``: its record slot (``global step // period``) or -1."""
    s = np.arange(step + 1, stop + 1)
    return np.where(s % period == 0, s // period, -1).astype(np.int64)


def run_compiled(target: Target, cfg: SampleConfig, rec, state: SamplerState,
                 spec: tuple[int, np.ndarray], gen: NoiseStream, temperature: float,
                 clock, stops: list[int]) -> Iterator[Progress]:
    """Run ``cfg`` from the checked ``state`` through ``stops`` (the steps after which the
    run checks), yielding an event where ``clock.due``; ``rec`` is the run's recorder."""
    kind, p = spec
    n, sampler = cfg.chains, cfg.sampler
    x, en, g = (t.contiguous().clone() for t in (state.x, state.energy, state.grad))
    v = state.v.contiguous().clone().numpy() if sampler == "underdamped" else None
    esum = torch.zeros(rec.mean_energy.numel(), dtype=torch.float64)
    rec.frame_steps.copy_(torch.arange(rec.frame_steps.numel()) * rec.thin)
    xa, ea, ga = x.numpy(), en.numpy(), g.numpy()
    frames, paths, esa = rec.positions.numpy(), rec.paths.numpy(), esum.numpy()
    eps = cfg.step_size
    c = math.exp(-cfg.friction * eps)
    sd_ou = math.sqrt(max(temperature, 0.0) * (1.0 - c * c))
    draw = {"sgld": temperature > 0, "underdamped": sd_ou > 0}.get(sampler, True)
    stride = step_outputs(n, x.dtype == torch.float32, sampler in ("mala", "hmc"))
    seed = np.uint64(gen.seed)

    def advance(step: int, stop: int, checks: list[int]) -> int:
        """Steps ``step+1..stop``, checked after ``checks``: the first that failed, or -1."""
        pos = np.uint64(gen.position)
        gen.position += (stop - step) * stride if draw else 0
        check_of = np.zeros(stop - step, np.bool_)
        check_of[np.asarray(checks) - step - 1] = True
        acc_from = max(0, cfg.burn_in - step)  # steps s >= acc_from have global > burn_in
        common = (rec.alive.numpy(), frames, _slots(step, stop, rec.thin), paths,
                  _slots(step, stop, rec.path_thin))

        def part(lo: int, hi: int, sums: np.ndarray) -> tuple[float, int]:
            out = (*common, sums, check_of, rec.far, lo, hi)
            if sampler == "sgld":
                return 0.0, sgld_chunk(kind, p, xa, seed, pos, draw, eps,
                                       math.sqrt(2.0 * eps * temperature), *out)
            if sampler == "underdamped":
                return 0.0, baoab_chunk(kind, p, xa, v, ga, seed, pos, draw, 0.5 * eps, c,
                                        sd_ou, *out)
            if sampler == "mala":
                return mala_chunk(kind, p, xa, ea, ga, seed, pos, eps, temperature, acc_from,
                                  *out)
            return hmc_chunk(kind, p, xa, ea, ga, seed, pos, eps, cfg.n_leapfrog, temperature,
                             acc_from, *out)

        acc, first = _split(part, n, cfg.threads, (stop - step) * cfg.grads_per_step, esa)
        if sampler in ("mala", "hmc"):
            rec.acc_sum += acc
            rec.acc_count += rec.n_live * max(0, stop - step - acc_from)
        return -1 if first < 0 else step + 1 + first

    def keep(stop: int, f0: int, verified: bool = True) -> None:
        """The steps up to ``stop`` stand: check them (freezing chains that failed), unless
        ``verified``: the kernel found every check passed."""
        rec.frames = stop // rec.thin + 1
        # Non-finite energy sums: finish_frames evaluates the frames and freezes those chains.
        sums = esum if bool(torch.isfinite(esum[f0:rec.frames]).all()) else None
        rec.check_fused(target, x, stop, f0, sums, verified and sums is not None)

    # What the kernel writes in place, and copies of it from before a span, to put back; the
    # positions' copy is the recorder's last checked one (each check leaves it equal to x).
    moved = {"sgld": (), "underdamped": (v, ga)}.get(sampler, (ea, ga))
    kept = tuple(np.empty_like(a) for a in moved)
    frozen = rec.frozen.numpy()
    step = 0
    for span in _spans(stops, clock.every, max(1, CHUNK_CHAIN_STEPS // (n * cfg.grads_per_step))):
        # Optimistic: the span's steps in one call, kept if every check passed.  Else the
        # state is put back and the span replayed (the stream is counter-based: the same
        # numbers): in one call up to the check before the one that failed, then that
        # check's steps alone, then the rest of the span as a new one.  So the result is
        # the check-by-check run's, bit for bit.
        todo = list(span)
        while todo:
            for keep_, arr in zip(kept, moved, strict=True):
                np.copyto(keep_, arr)
            saved = (gen.position, rec.acc_sum, rec.acc_count, rec.frames)
            f_end = todo[-1] // rec.thin + 1
            failed = _first_failed(advance(step, todo[-1], todo), esa, saved[3], f_end,
                                   rec.thin, todo)
            if failed < 0:
                keep(todo[-1], saved[3])
                step, todo = todo[-1], []
                break
            np.copyto(xa, frozen)
            for keep_, arr in zip(kept, moved, strict=True):
                np.copyto(arr, keep_)
            gen.position, rec.acc_sum, rec.acc_count, f0 = saved
            esa[f0:f_end] = 0.0
            k = todo.index(failed)
            if k > 0:  # the checks before the failed one pass
                advance(step, todo[k - 1], todo[:k])
                keep(todo[k - 1], f0)
                step, f0 = todo[k - 1], rec.frames
            advance(step, todo[k], [todo[k]])
            keep(todo[k], f0, verified=False)
            step, todo = todo[k], todo[k + 1:]
            if rec.n_live == 0:  # every chain diverged: nothing left to run
                yield Progress(step, cfg.steps, rec.trace(step))
                return
        if clock.due(step):
            yield Progress(step, cfg.steps, rec.trace(step))


# A call is split over threads only when each part has at least this many chain-steps
# (x gradient evaluations): about 2 ms of a core, well above what handing a part to a
# thread and joining it costs (not measured separately).
MIN_PART_WORK = 200_000
_POOLS: dict[int, ThreadPoolExecutor] = {}  # helper threads -> the pool, made on first use
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="ebmcore-kernel")
        return _POOLS[workers]


def _split(part, n: int, threads: int, steps: int, esum: np.ndarray) -> tuple[float, int]:
    """``part(lo, hi, sums)`` over the chains ``0..n`` in up to ``threads`` ranges of whole
    blocks run at once (the kernels release the interpreter lock), this thread running the
    first; returns the summed acceptance and the first failed step (-1: none).  Each other
    range sums its energies into a buffer of its own, added to ``esum`` afterwards."""
    blocks = -(-n // BLOCK)
    k = max(1, min(threads, blocks, (n * steps) // MIN_PART_WORK))
    if k == 1:
        return part(0, n, esum)
    cuts = [min(n, (blocks * i // k) * BLOCK) for i in range(k + 1)]
    sums = [np.zeros_like(esum) for _ in range(k - 1)]
    futures = [_pool(k - 1).submit(part, lo, hi, buf)
               for lo, hi, buf in zip(cuts[1:-1], cuts[2:], sums, strict=True)]
    results = [part(cuts[0], cuts[1], esum)] + [f.result() for f in futures]
    for buf in sums:
        esum += buf
    failed = [first for _, first in results if first >= 0]
    return sum(acc for acc, _ in results), min(failed) if failed else -1


def _first_failed(failed: int, esum: np.ndarray, f0: int, f_end: int, thin: int,
                  checks: list[int]) -> int:
    """The first of ``checks`` that fails: a chain left the finite world (``failed``, -1 for
    none), or it closes a recorded frame whose energy sum is not finite; -1: none."""
    bad = np.flatnonzero(~np.isfinite(esum[f0:f_end]))
    if bad.size:
        at = (f0 + int(bad[0])) * thin  # the frame's step; the check that closes it:
        closing = next(c for c in checks if c >= at)
        failed = closing if failed < 0 else min(failed, closing)
    return failed


def _spans(stops: list[int], every: int, longest: int) -> list[list[int]]:
    """``stops`` in runs, each ending at an event step (a multiple of ``every``, or the last)
    or before it would exceed ``longest`` steps."""
    spans, cur, start = [], [], 0
    for stop in stops:
        if cur and stop - start > longest:
            spans.append(cur)
            start, cur = cur[-1], []
        cur.append(stop)
        if stop % every == 0 or stop == stops[-1]:
            spans.append(cur)
            start, cur = stop, []
    return spans


_WARM = threading.Event()  # set once a warm-up was started in this process


def warm_up(background: bool = True) -> threading.Thread | None:
    """Load every compiled kernel (both dtypes) once per process, in a daemon thread.

    Compiling takes seconds the first time on a machine; afterwards this is a cache load.
    Later calls do nothing.  Returns the thread (or None when run inline or already done).
    """
    if _WARM.is_set():
        return None
    _WARM.set()

    def load() -> None:
        from ebmcore.sampling.runner import sample  # the runner imports this module
        from ebmcore.targets.registry import make_target

        target = make_target("gaussian")
        for dtype in ("float32", "float64"):
            for sampler in COMPILED_SAMPLERS:
                sample(target, SampleConfig(sampler=sampler, dtype=dtype, chains=4, steps=2,
                                            n_leapfrog=1))

    if not background:
        load()
        return None
    thread = threading.Thread(target=load, name="compile-kernels", daemon=True)
    thread.start()
    return thread
