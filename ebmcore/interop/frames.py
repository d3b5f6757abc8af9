"""Runs as pandas DataFrames, for notebooks and files: traces, final positions, training metrics.

``trace_frame`` and ``final_frame`` are what ``python -m ebmcore sample --out`` writes
as CSV/Parquet; ``metrics_frame`` is a trainer's history, one row per exact evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import torch

from ebmcore.energies import Target
from ebmcore.sampling.runner import Trace

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["final_frame", "metrics_frame", "trace_frame"]


def trace_frame(trace: Trace, target: Target | None = None) -> pd.DataFrame:
    """The thinned trace in long form: ``chain, step, x, y`` (+ ``energy`` given the target).

    One row per chain and recorded frame (every ``trace.thin`` steps, burn-in included:
    filter on ``step >= trace.config.burn_in``), float64.
    """
    import pandas as pd

    pos = trace.positions.to(torch.float64)
    s, n = pos.shape[:2]
    cols = {"chain": torch.arange(n).repeat(s).numpy(),
            "step": trace.steps.repeat_interleave(n).numpy(),
            "x": pos[..., 0].reshape(-1).numpy(), "y": pos[..., 1].reshape(-1).numpy()}
    if target is not None:
        with torch.no_grad():
            cols["energy"] = target.energy(pos.reshape(-1, 2)).detach().to(torch.float64).numpy()
    return pd.DataFrame(cols)


def final_frame(trace: Trace, target: Target) -> pd.DataFrame:
    """Final positions: ``chain, x, y, energy, alive`` (diverged chains frozen, alive False)."""
    import pandas as pd

    x = trace.x.to(torch.float64)
    with torch.no_grad():
        energy = target.energy(x).detach().to(torch.float64)
    return pd.DataFrame({"chain": torch.arange(x.shape[0]).numpy(), "x": x[:, 0].numpy(),
                         "y": x[:, 1].numpy(), "energy": energy.numpy(),
                         "alive": trace.alive.numpy()})


def metrics_frame(history: object) -> pd.DataFrame:
    """A trainer's exact metrics, one row per evaluation, indexed by ``iteration``.

    Args:
        history: a ``Trainer`` / ``AdversarialTrainer`` (its ``history``), or its rows
            (dicts, as in ``trainer.history`` or a checkpoint's metrics).
    """
    import pandas as pd

    rows = getattr(history, "history", history)
    if not isinstance(rows, Iterable) or isinstance(rows, (str, bytes, Mapping)):
        from ebmcore.energies import ValidationError

        raise ValidationError("metrics_frame expects a trainer or a list of metric rows")
    df = pd.DataFrame(list(rows))
    return df.set_index("iteration") if "iteration" in df else df
