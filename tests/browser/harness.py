"""Real-browser harness: start the dashboard server, drive Chromium, read what is on screen.

Shared by the browser tests (``conftest.py``) and the screenshot script
(``screenshots.py``).  Nothing here sleeps to synchronise: every wait is on a
condition (the server's health endpoint, the app's script state, the content
of the page), with a bounded timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # the tests import `expect` from here: without Playwright they skip (or fail in CI)
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - depends on the machine
    expect = None

__all__ = [
    "CHROMIUM",
    "LAUNCH_ARGS",
    "ROOT",
    "VIEWPORT",
    "Server",
    "assert_no_crash",
    "browser_problem",
    "describe",
    "expect",
    "figures",
    "launch",
    "memory_kib",
    "metrics",
    "start_server",
    "wait_for",
    "wait_idle",
]

ROOT = Path(__file__).resolve().parents[2]  # the repository
CHROMIUM = os.environ.get("LANGEVIN_LAB_CHROMIUM", "/usr/bin/chromium")  # Debian's package
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 900}
HEALTH_TIMEOUT_S = 120.0  # importing torch + streamlit on a busy 2-core machine takes a while


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if expect is None:
        return "the Python package playwright is not installed (pip install -e '.[test]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    return None


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless (``playwright install`` cannot download browsers here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


# -- the server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A ``streamlit run`` of the dashboard in a child process."""

    process: subprocess.Popen
    port: int
    log: Path  # the server's stdout + stderr

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate, then kill if it does not exit within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(log_dir: Path | None = None) -> Server:
    """Start the dashboard on a free port and wait until ``/_stcore/health`` answers."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="langevin-lab-"))
    last = ""
    for _ in range(2):  # a free port can be taken between the probe and the bind: retry once
        port = _free_port()
        log = log_dir / f"streamlit-{port}.log"
        # the product's launcher (its flags, its preload), as users start it
        cmd = [sys.executable, "-m", "dashboard",
               "--server.headless", "true", "--server.port", str(port),
               "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false",
               # the tests must not see a "source changed, rerun?" prompt while files are edited
               "--server.fileWatcherType", "none"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        server = Server(proc, port, log)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=5) as r:
                    if r.status == 200:
                        SERVERS[:] = [server]
                        return server
            except OSError:
                pass
            # polling a socket of another process: there is no event to wait on
            time.sleep(0.25)
        last = server.log_tail()
        server.stop()
    raise RuntimeError(f"the dashboard server did not become healthy; its log:\n{last}")


def memory_kib(pid: int) -> dict[str, int]:
    """Resident memory of a process from ``/proc``: VmRSS (now) and VmHWM (peak), in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(rest.split()[0])
    return out


# -- reading the page ----------------------------------------------------------------------

# Decodes every Plotly graph div's own `data` (Plotly sends numpy arrays as base64 typed
# arrays: {dtype, bdata}); only what the tests read: the title, the axis ranges, and the
# type, name, x, y of each trace.
_FIGURES_JS = r"""
() => {
  const T = {f4: Float32Array, f8: Float64Array, i1: Int8Array, u1: Uint8Array,
             i2: Int16Array, u2: Uint16Array, i4: Int32Array, u4: Uint32Array};
  const dec = (v) => {
    if (v === undefined || v === null) return null;
    if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v, Number);
    if (typeof v === 'object' && typeof v.bdata === 'string' && T[v.dtype]) {
      const bin = atob(v.bdata);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return Array.from(new T[v.dtype](bytes.buffer));
    }
    return null;
  };
  // charts in the page, and in the live charts' iframes (same origin), which update in place
  const graphs = [];
  for (const g of document.querySelectorAll('.js-plotly-plot')) graphs.push([g, g]);
  for (const f of document.querySelectorAll('iframe')) {
    let doc = null;
    try { doc = f.contentDocument; } catch (e) { doc = null; }
    if (doc) for (const g of doc.querySelectorAll('.js-plotly-plot')) graphs.push([g, f]);
  }
  return graphs
    .filter(([g, host]) => g._fullLayout && !host.closest('[data-stale="true"]'))
    .map(([g]) => g)
    .map((g) => {
      const t = g.layout && g.layout.title;
      const ranges = {};
      for (const [k, v] of Object.entries(g.layout || {})) {
        if (/^[xy]axis\d*$/.test(k) && v && Array.isArray(v.range)) ranges[k] = v.range;
      }
      return {
        title: (t && (t.text !== undefined ? t.text : t)) || '',
        ranges,
        traces: (g.data || []).map((tr) => ({
          type: tr.type || 'scatter', name: tr.name === undefined ? null : String(tr.name),
          x: dec(tr.x), y: dec(tr.y)})),
      };
    });
}
"""

_METRICS_JS = r"""
() => {
  const txt = (e, id) => { const c = e.querySelector(`[data-testid="${id}"]`);
                           return c ? c.innerText.trim() : null; };
  const out = {};
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    out[txt(m, 'stMetricLabel')] = [txt(m, 'stMetricValue'), txt(m, 'stMetricDelta')];
  }
  return out;
}
"""

# Connected, and with `idle`: settled, i.e. no script run or fragment tick in progress
# (script state `notRunning`), no lazily loaded element still drawn as a skeleton, and every
# Plotly chart element plotted.
_STATE_JS = r"""
(idle) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (!idle) return true;
  if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stAppSkeleton"], [data-testid="stSkeleton"], '
                             + '[data-testid="stSkeletonElement"]')) return false;
  for (const c of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    const g = c.querySelector('.js-plotly-plot');
    if (!g || !g._fullLayout) return false;
  }
  return true;
}
"""


def figures(page: Any) -> list[dict]:
    """The plotted Plotly figures: ``[{title, ranges, traces: [{type, name, x, y}]}]``.

    ``ranges`` maps axis names (``xaxis``, ``yaxis2``, ...) to their fixed ``[lo, hi]``.
    """
    return page.evaluate(_FIGURES_JS)


def metrics(page: Any) -> dict[str, tuple[str | None, str | None]]:
    """The ``st.metric`` tiles on screen: label -> (value, grey note)."""
    return {k: tuple(v) for k, v in page.evaluate(_METRICS_JS).items()}


def wait_for(page: Any, cond: str, arg: Any = None, *, idle: bool = True,
             timeout_s: float = 90.0) -> Any:
    """Wait until the app is connected (and idle, if ``idle``) and ``cond`` holds.

    Args:
        cond: a JavaScript function ``(ctx, arg) => truthy``; ``ctx.figs()`` returns the
            decoded figures (as :func:`figures`), ``ctx.metrics()`` the metric tiles,
            ``ctx.text`` the page's visible text.
        arg: a JSON-able value passed to ``cond``.
        idle: also require the script state ``notRunning`` (no run, no fragment tick).

    Returns:
        The truthy value ``cond`` returned (JSON-decoded).
    """
    js = f"""
    (p) => {{
      if (!({_STATE_JS})(p.idle)) return false;
      const ctx = {{ figs: {_FIGURES_JS}, metrics: {_METRICS_JS},
                     get text() {{ return document.body.innerText; }} }};
      return ({cond})(ctx, p.arg);
    }}
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        handle = page.wait_for_function(js, arg={"idle": idle, "arg": arg}, polling=250,
                                        timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        raise AssertionError(f"timed out after {timeout_s:g} s waiting for {cond.strip()!r} "
                             f"(arg {arg!r}) on {page.url}\n{describe(page)}") from None
    return handle.json_value()


SERVERS: list[Server] = []  # servers started by start_server: their log ends go in failures


def describe(page: Any) -> str:
    """What the page shows now, for failure messages: the app's state, the main area's
    visible text (blank lines dropped), whether the server still runs, and its log's end."""
    try:
        state = page.evaluate("""() => {
          const a = document.querySelector('[data-testid="stApp"]');
          return a ? [a.getAttribute('data-test-connection-state'),
                      a.getAttribute('data-test-script-state')] : null; }""")
        main = page.get_by_test_id("stMain")
        text = (main.inner_text(timeout=2000) if main.count() else
                page.locator("body").inner_text(timeout=2000))
        html = len(page.content())
    except Exception as exc:  # the page may be gone
        return f"(page unreadable: {exc})"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    out = [f"app state {state}; document {html:,} characters; main area text "
           f"({len(lines)} lines): " + " | ".join(lines)[:2500]]
    for srv in SERVERS:
        alive = "running" if srv.process.poll() is None else f"exited {srv.process.returncode}"
        out.append(f"server {alive}; log end:\n{srv.log_tail(15)}")
    return "\n".join(out)


def wait_idle(page: Any, timeout_s: float = 90.0) -> None:
    """Wait until the app is connected and no script run (nor fragment tick) is in progress."""
    page.wait_for_function(_STATE_JS, arg=True, polling=100, timeout=timeout_s * 1000)


def assert_no_crash(page: Any) -> None:
    """No Streamlit exception box, and no catch-all message from the dashboard's router."""
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback is shown"
    text = page.locator("body").inner_text()
    assert "hit an unexpected problem" not in text, text[:2000]
    assert "Traceback" not in text, text[:2000]
