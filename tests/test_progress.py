"""Progress on long CLI runs: a bar on a terminal, none on a pipe or with --json; soft Ctrl-C.

The child runs on a pseudo-terminal; the tests read it until the state they need
shows up (the bar, the stop notice), never sleeping a fixed time.  The deadline
below only turns a hang into a failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pandas as pd
import pytest

from ebmcore.cli.progress import EventProgress, progress_wanted

DEADLINE = 300.0  # seconds: a failure guard on a loaded 2-core machine, not a wait
# tqdm's line once it has a rate: " 2%|▏     | 20000/1000000 [00:01<01:30, 10800.00step/s]"
BAR = re.compile(rb"\d+%\|[^|]*\| *\d+/\d+ \[[\d:]+<[\d:]+, +[\d.]+ *\w+/s")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
CMD = [sys.executable, "-m", "ebmcore"]


class Pty:
    """A child whose stderr (and stdin) is a pseudo-terminal; stdout is a pipe."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, cols
        self.proc = subprocess.Popen(argv, stdin=slave, stderr=slave, stdout=subprocess.PIPE,
                                     cwd=cwd, env=ENV, close_fds=True)
        os.close(slave)
        self.seen = b""

    def read_until(self, pattern: re.Pattern[bytes]) -> bytes:
        end = time.monotonic() + DEADLINE
        while not pattern.search(self.seen):
            left = end - time.monotonic()
            assert left > 0, f"never saw {pattern.pattern!r}; got {self.seen[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                assert chunk, f"child ended before {pattern.pattern!r}: {self.seen[-2000:]!r}"
                self.seen += chunk
        return self.seen

    def finish(self) -> tuple[int, str]:
        """Drain the terminal until the child exits; its exit code and stdout."""
        out = self.proc.stdout.read().decode()  # EOF once the child exits
        while True:
            ready, _, _ = select.select([self.master], [], [], 5)
            if not ready:
                break
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        os.close(self.master)
        return self.proc.wait(timeout=DEADLINE), out


@pytest.fixture
def repo() -> Path:
    return Path(__file__).resolve().parents[1]


def test_bar_on_a_terminal_then_ctrl_c_writes_what_finished(repo, tmp_path):
    out = tmp_path / "final.csv"
    child = Pty([*CMD, "sample", "--chains", "100", "--steps", "50000", "--out", str(out)],
                repo)
    child.read_until(BAR)  # the bar with rate and ETA has been drawn: the run is under way
    child.proc.send_signal(signal.SIGINT)
    child.read_until(re.compile(rb"stopping after the current step"))
    code, stdout = child.finish()
    err = child.seen.decode(errors="replace")
    assert code == 130, err[-2000:]
    m = re.search(r"interrupted: (\d+) of 50000 steps finished; wrote them to (\S+)", err)
    assert m and 0 < int(m.group(1)) < 50_000 and m.group(2) == str(out)
    df = pd.read_csv(out)
    assert len(df) == 100 and df["alive"].all()  # the final positions of every chain
    assert "100 chains x 50000 steps" in stdout  # the table of what finished still printed


def test_no_bar_with_json_on_a_terminal(repo):
    child = Pty([*CMD, "sample", "--chains", "100", "--steps", "300", "--json"], repo)
    code, stdout = child.finish()
    assert code == 0 and json.loads(stdout)["steps_done"] == 300
    assert child.seen == b""  # nothing at all on the terminal


def test_no_bar_on_a_pipe(repo):
    done = subprocess.run([*CMD, "sample", "--chains", "100", "--steps", "300"], cwd=repo,
                          env=ENV, capture_output=True, timeout=DEADLINE, check=True)
    assert done.stderr == b"" and b"ESS" in done.stdout


def test_train_bar_and_ctrl_c_keeps_a_resumable_checkpoint(repo, tmp_path):
    out = tmp_path / "run"
    # a run long enough to interrupt: over the default work budget, raised deliberately
    child = Pty([*CMD, "train", "--data", "mixture", "--method", "exact", "--iters", "100000",
                 "--grid", "32", "--eval-grid", "32", "--eval-every", "20", "--n-train", "500",
                 "--n-test", "200", "--out", str(out), "--budget", "1e13"], repo)
    child.read_until(BAR)
    child.read_until(re.compile(rb"\[ +\d+/100000\]"))  # an evaluation line, above the bar
    child.proc.send_signal(signal.SIGINT)
    code, _ = child.finish()
    err = child.seen.decode(errors="replace")
    assert code == 130, err[-2000:]
    m = re.search(r"interrupted: (\d+) of 100000 iterations finished; wrote them to", err)
    assert m and 0 < int(m.group(1)) < 100_000
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) >= 1 and (out / "model.pt").exists()
    from ebmcore.budget import Budget
    from ebmcore.ebm.training import Trainer

    resumed = Trainer.resume(str(out / "model.pt"), budget=Budget(work=1e13))
    assert resumed.iteration == int(m.group(1))


def test_train_quiet_and_json_draw_no_bar(repo):
    for flag in ("--quiet", "--json"):
        child = Pty([*CMD, "train", "--data", "mixture", "--method", "exact", "--iters", "30",
                     "--grid", "32", "--eval-grid", "32", "--n-train", "500", "--n-test", "200",
                     flag], repo)
        code, _ = child.finish()
        assert code == 0 and b"%|" not in child.seen, flag


def test_progress_wanted_and_passthrough(capsys):
    import io

    assert not progress_wanted(io.StringIO())  # not a terminal
    assert not progress_wanted(sys.stderr, json=True) and not progress_wanted(sys.stderr,
                                                                              quiet=True)
    bar = EventProgress(3, enabled=False, stream=sys.stderr)
    assert list(bar.track(iter([1, 2, 3]), lambda e: e)) == [1, 2, 3] and not bar.interrupted
    bar.write("line")
    assert capsys.readouterr().err == "line\n"
