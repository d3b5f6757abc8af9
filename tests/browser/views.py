"""What the tests look for on the dashboard's pages: waits and readers by visible labels.

Selectors are the labels and roles a user sees (button and widget labels, trace
names in the legend, metric labels), not CSS classes of the implementation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .harness import figures, metrics, wait_for

__all__ = [
    "find_figure",
    "playground_done",
    "progress_text",
    "settle_playground",
    "settle_versus",
    "sidebar_slider",
    "trace",
    "xy",
]

# The playground has finished a run and drawn everything: the metric tiles, the chains over
# the density (with trajectories), the marginals and the likelihood curves; the chains
# figure's title contains `want` (it names the target, mode, eps and number of chains).
playground_done = """
(c, want) => {
  if (!('discrepancy (TV)' in c.metrics())) return false;
  const f = c.figs();
  const chains = f.find((x) => x.traces.some((t) => t.name === 'trajectories'));
  const marg = f.find((x) => x.traces.some((t) => t.type === 'bar'));
  const curves = f.find((x) => x.traces.some((t) => (t.name || '').startsWith('exact (exp')));
  return Boolean(chains && marg && curves && chains.title.includes(want));
}
"""

# SGLD vs MAP has finished both runs: four metric tiles and the twin figure (two density
# panels, an SGLD and a MAP scatter).
versus_done = """
(c, want) => {
  if (!('MAP discrepancy' in c.metrics())) return false;
  const twin = c.figs().find((x) => x.traces.some((t) => (t.name || '').startsWith('MAP')));
  if (!twin) return false;
  const sgld = twin.traces.find((t) => (t.name || '').startsWith('SGLD'));
  return Boolean(sgld && sgld.name.includes(want));
}
"""


def settle_playground(page: Any, want: str = "", timeout_s: float = 120.0
                      ) -> tuple[list[dict], dict]:
    """Wait for a finished playground run whose title contains ``want``; figures, metrics."""
    wait_for(page, playground_done, want, timeout_s=timeout_s)
    return figures(page), metrics(page)


def settle_versus(page: Any, want: str = "", timeout_s: float = 120.0
                  ) -> tuple[list[dict], dict]:
    """Wait for finished SGLD and MAP runs (SGLD panel title containing ``want``)."""
    wait_for(page, versus_done, want, timeout_s=timeout_s)
    return figures(page), metrics(page)


def find_figure(figs: list[dict], *names: str) -> dict:
    """The first figure that has a trace whose name starts with each of ``names``."""
    for f in figs:
        have = [t["name"] or "" for t in f["traces"]]
        if all(any(h.startswith(n) for h in have) for n in names):
            return f
    raise AssertionError(f"no figure with traces {names}; figures: "
                         f"{[[t['name'] for t in f['traces']] for f in figs]}")


def trace(fig: dict, name: str, index: int = 0) -> dict:
    """The ``index``-th trace of ``fig`` whose name starts with ``name``."""
    found = [t for t in fig["traces"] if (t["name"] or "").startswith(name)]
    assert len(found) > index, f"no trace {name!r} #{index} in {fig['title']!r}"
    return found[index]


def xy(tr: dict) -> np.ndarray:
    """A scatter trace's points as an ``(n, 2)`` float64 array."""
    return np.column_stack([np.asarray(tr["x"], dtype=np.float64),
                            np.asarray(tr["y"], dtype=np.float64)])


def sidebar_slider(page: Any, label: str) -> str:
    """The value shown by a sidebar slider (its ``aria-valuetext``)."""
    return page.get_by_test_id("stSidebar").get_by_role("slider", name=label) \
        .get_attribute("aria-valuetext")


def progress_text(page: Any) -> str:
    """The text of the (first) progress bar, '' when there is none."""
    bars = page.get_by_test_id("stProgress")
    return bars.first.inner_text() if bars.count() else ""
