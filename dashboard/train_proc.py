"""Training in a worker process, so that a live page never shares the interpreter lock with it.

A trainer's many small torch operations each give the interpreter lock up and take it back;
in the server's process every page drawn, every websocket message and every other session's
work competes for that lock, and training there ran at 43-67% of its speed alone. Here a
*segment* of a run goes to a process of its own:

- :func:`start` hands the trainer's exact state (what a checkpoint holds) to a new process,
  forked from a server that has already imported torch and the trainers and run each once
  (``forkserver`` with :mod:`dashboard.train_warm`, started with the dashboard by
  :func:`warm_up`), which trains on from there;
- while it trains it sends :class:`Update` messages (at most every :data:`SEND_S`, and at
  each evaluation) that the server mirrors for the page;
- :meth:`Segment.end` asks it to stop between two iterations and loads its final state back
  into the server's trainer, bit for bit: the run is the same as one trained in place;
- :meth:`Segment.hold` pauses it between iterations (a lighter session's page goes first).

The process trains one thread; it exits when asked, when the run ends, or when the server's
end of the pipe closes (the server stopped).
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["SEND_S", "Segment", "Update", "restore", "start", "transfer", "warm_up"]

SEND_S = 0.05  # the worker sends what changed at most this often (and at each evaluation)
# what the fork server imports once, for every worker: the trainers, warmed (see train_warm)
_PRELOAD = ["dashboard.train_warm", "dashboard.train_proc"]
_ctx_lock = threading.Lock()
_ctx: Any = None


def _context() -> Any:
    """The forkserver context, its server preloaded with torch and the trainers."""
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(_PRELOAD)
            _ctx = ctx
        return _ctx


def warm_up() -> None:
    """Start the fork server in the background (it imports torch once, a few seconds), so
    that the first training's process starts in milliseconds."""
    def go() -> None:
        try:
            from multiprocessing import forkserver

            _context()
            forkserver.ensure_running()
        except Exception:  # no fork server: the first segment starts it
            pass

    threading.Thread(target=go, daemon=True, name="langevin-lab-forkserver").start()


# -- the state a segment carries ----------------------------------------------------------

def transfer(trainer: Any) -> dict:
    """Everything a process needs to continue ``trainer`` exactly: how to build it, and
    its state (the same fields a checkpoint holds), as picklable values."""
    ema = trainer.ema_model is not None
    return {"cls": type(trainer), "dataset": _plain_data(trainer.dataset),
            "config": trainer.config,
            "model": trainer.model.config, "state": trainer.state(),
            "average": trainer.eval_model.state_dict() if ema else None,
            "history": list(trainer.history), "metrics": trainer.last_metrics}


def restore(t: dict, trainer: Any | None = None) -> Any:
    """The trainer of a :func:`transfer` (built anew, or loaded into ``trainer``)."""
    if trainer is None:
        trainer = t["cls"](_data(t["dataset"]), t["config"], t["model"])
    trainer.load_state(t["state"])
    if t["average"] is not None:
        trainer.eval_model.load_state_dict(t["average"])
    trainer.history = list(t["history"])
    trainer.last_metrics = t["metrics"]
    return trainer


def _plain_data(ds: Any) -> dict:
    """A data set as plain values (its exact target is rebuilt from its name and values,
    as a checkpoint's is: targets hold closures, which do not pickle)."""
    return {"name": ds.name, "train": ds.train, "test": ds.test, "box": tuple(ds.box),
            "params": dict(ds.params), "target": ds.target is not None}


def _data(d: dict) -> Any:
    from ebmcore.ebm.data import Dataset
    from ebmcore.targets.registry import make_target

    target = make_target(d["name"], **d["params"]) if d["target"] else None
    return Dataset(d["name"], d["train"], d["test"], d["box"], target, d["params"])


@dataclass(frozen=True)
class Update:
    """What a worker did since its last message."""

    events: list  # the TrainEvents of the iterations since (the last with its negatives)
    rows: list  # new exact-metric rows
    metrics: Any  # the last evaluation's ExactMetrics when a new one came, else None
    buffer: Any  # the replay buffer and its ages (copies), or None
    compute_s: float  # seconds spent in these iterations


# -- the worker process -------------------------------------------------------------------

def _buffer(trainer: Any) -> Any:
    s = getattr(trainer, "sampler", None)
    buf = getattr(s, "buffer", None)
    return None if buf is None else (buf.clone(), s.age.clone())


def _send(conn: Any, msg: Any) -> None:
    """Send ``msg`` pickled plainly: tensors travel inside the bytes (multiprocessing's own
    pickler would hand them over as shared memory owned by the sender, which is gone once
    a worker that sent its final state has exited)."""
    conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))


def _main(conn: Any, blob: bytes) -> None:
    """The worker: train until told to stop (or the run ends), then send the final state."""
    import torch

    torch.set_num_threads(1)
    trainer = restore(pickle.loads(blob))
    held, sent = False, time.perf_counter()
    events, rows_sent, compute = [], len(trainer.history), 0.0
    metrics_seen = trainer.last_metrics
    try:
        stop = False
        while not stop:
            while conn.poll(0.05 if held else 0):
                cmd = conn.recv()
                stop = cmd == "stop"
                held = cmd == "hold"
                if stop:
                    break
            if stop or held:
                continue
            if not trainer.finished:
                t0 = time.perf_counter()
                events.append(trainer.step())
                compute += time.perf_counter() - t0
            new_eval = trainer.last_metrics is not metrics_seen
            if events and (new_eval or trainer.finished or time.perf_counter() - sent >= SEND_S):
                # only the last event keeps its negatives (the page draws the newest), and
                # each evaluation's (the scrubber's frames)
                events[:-1] = [_light(e) for e in events[:-1]]
                _send(conn, Update(events, trainer.history[rows_sent:],
                                   trainer.last_metrics if new_eval else None,
                                   _buffer(trainer), compute))
                events, rows_sent, compute = [], len(trainer.history), 0.0
                metrics_seen, sent = trainer.last_metrics, time.perf_counter()
            stop = trainer.finished
        _send(conn, ("final", transfer(trainer)))
    except (EOFError, BrokenPipeError, OSError):  # the server went away: nothing to report
        return
    except Exception as exc:  # reported to the page; the server's trainer stays as it was
        try:
            _send(conn, ("error", f"{type(exc).__name__}: {exc}"))
        except (BrokenPipeError, OSError):
            pass


def _light(ev: Any) -> Any:
    """``ev`` without its negatives (a copy per iteration would only be dropped)."""
    from dataclasses import replace

    return replace(ev, negatives=None) if ev.metrics is None else ev


# -- the server's side --------------------------------------------------------------------

class Segment:
    """A worker process training a copy of a trainer; ``updates()`` yields its messages."""

    def __init__(self, trainer: Any) -> None:
        ctx = _context()
        self._conn, child = ctx.Pipe()
        blob = pickle.dumps(transfer(trainer), protocol=pickle.HIGHEST_PROTOCOL)
        self.process = ctx.Process(target=_main, args=(child, blob), daemon=True,
                                   name="langevin-lab-training")
        self.process.start()
        child.close()
        self.final: dict | None = None  # the worker's last state, once it ended
        self.error: str | None = None  # why it failed, if it did
        self._held = False
        self._lock = threading.Lock()  # one sender at a time

    def _send(self, cmd: str) -> None:
        with self._lock:
            try:
                self._conn.send(cmd)
            except (BrokenPipeError, OSError):  # it already ended
                pass

    def hold(self, on: bool) -> None:
        """Pause (``on``) or continue the worker between two iterations."""
        if on != self._held:
            self._held = on
            self._send("hold" if on else "go")

    def stop(self) -> None:
        """Ask the worker to stop after the iteration in flight (see :meth:`updates`)."""
        self._send("stop")

    def updates(self, timeout_s: float) -> list[Update]:
        """The messages that came within ``timeout_s`` (the first one waited for); the
        final state or an error ends the segment (``final`` / ``error`` set)."""
        out: list[Update] = []
        wait = timeout_s
        while self.final is None and self.error is None:
            try:
                if not self._conn.poll(wait):
                    break
                msg = pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                self.error = "the training process ended unexpectedly"
                break
            if isinstance(msg, Update):
                out.append(msg)
            elif msg[0] == "final":
                self.final = msg[1]
            else:
                self.error = msg[1]
            wait = 0.0
        if self.final is not None or self.error is not None:
            self.close()
        return out

    @property
    def done(self) -> bool:
        return self.final is not None or self.error is not None

    def close(self) -> None:
        """End the worker (if it still runs) and free the pipe."""
        try:
            self._conn.close()
        except OSError:
            pass
        self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)


def start(trainer: Any) -> Segment:
    """A worker process training on from ``trainer``'s current state."""
    return Segment(trainer)
