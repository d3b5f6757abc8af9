"""A progress bar around a run's events, and Ctrl-C that stops between two events.

``sample`` and ``train`` drain generators of events (``Progress``, ``TrainEvent``);
:class:`EventProgress` wraps such a generator: on a terminal it draws a tqdm bar
on stderr with the rate and the time left; on a pipe, or with ``--json`` /
``--quiet``, it draws nothing, so scripts read clean output.

The first Ctrl-C does not kill the run: the event being computed finishes, the
loop ends, and the command writes what finished and says so (``interrupted`` is
then True).  A second Ctrl-C raises ``KeyboardInterrupt`` as usual.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

__all__ = ["EventProgress", "progress_wanted"]

E = TypeVar("E")
STOP_NOTICE = b"\nstopping after the current step (Ctrl-C again to abort)\n"


def progress_wanted(stream: TextIO, *, json: bool = False, quiet: bool = False) -> bool:
    """True when a bar belongs on ``stream``: a terminal, and neither --json nor --quiet."""
    if json or quiet:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or no file behind it
        return False


class EventProgress:
    """Wraps an event iterator with an optional bar and a soft Ctrl-C.

    Args:
        total: the count the bar fills up to (steps, iterations).
        enabled: draw the bar (see :func:`progress_wanted`).
        desc: the bar's label.
        unit: what is counted ("step", "it").
        initial: the count already done (a resumed run).
        stream: where the bar and :meth:`write` go (default stderr).
    """

    def __init__(self, total: int, *, enabled: bool, desc: str = "", unit: str = "it",
                 initial: int = 0, stream: TextIO | None = None) -> None:
        self.total, self.enabled, self.desc, self.unit = total, enabled, desc, unit
        self.initial, self.stream = initial, stream if stream is not None else sys.stderr
        self.interrupted = False
        self._bar = None

    def write(self, line: str) -> None:
        """Write a line to the stream without tearing the bar."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _on_sigint(self, signum, frame) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        try:  # os.write: safe inside a signal handler, unlike a buffered stream
            os.write(self.stream.fileno(), STOP_NOTICE)
        except (AttributeError, OSError, ValueError):
            pass

    def _width(self) -> dict[str, object]:
        """Follow the terminal's size; one that reports no size (0 x 0) gets a fixed 80 x 24.

        (tqdm would take 0 rows as "no room" and hide the bar.)
        """
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            size = os.terminal_size((0, 0))
        if size.columns > 0 and size.lines > 0:
            return {"dynamic_ncols": True}
        return {"ncols": 80, "nrows": 24}

    def track(self, events: Iterable[E], count: Callable[[E], int],
              postfix: Callable[[E], str | None] | None = None) -> Iterator[E]:
        """Yield ``events`` until they end or Ctrl-C; ``count(event)`` is the bar's position.

        The event computing when Ctrl-C comes is still yielded (it finished); the
        loop ends right after the caller has handled it.
        """
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.initial, desc=self.desc,
                             unit=self.unit, file=self.stream, leave=True, **self._width())
        try:
            for ev in events:
                if self._bar is not None:
                    self._bar.update(count(ev) - self._bar.n)
                    text = postfix(ev) if postfix is not None else None
                    if text:
                        self._bar.set_postfix_str(text, refresh=False)
                yield ev
                if self.interrupted:
                    break
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
