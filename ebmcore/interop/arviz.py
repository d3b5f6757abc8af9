"""A sampling run as ArviZ data: an ``InferenceData``-style ``xarray.DataTree``, and NetCDF.

Needs the optional extra ``arviz`` (``pip install -e ".[arviz]"``: arviz-base,
arviz-stats, h5netcdf).  The layout follows ArviZ's conventions, so
``arviz_stats.summary``, ``arviz_plots`` and ``arviz.from_netcdf`` read it as is:

- ``posterior``: ``x`` and ``y`` with dims ``(chain, draw)``, one draw per recorded
  frame at or after ``burn_in`` (the run keeps every ``thin``-th step); the
  non-index coordinate ``step`` gives each draw's sampler step.
- ``warmup_posterior``: the recorded frames before ``burn_in`` (when there are any).
- ``sample_stats`` (and ``warmup_sample_stats``):
  ``energy`` the potential ``E(x)`` of each draw, in the run's dtype (not HMC's Hamiltonian, so
  ArviZ's E-BFMI does not apply), ``lp`` the exact normalised ``log p(x) =
  -E(x) - log Z``, ``diverging`` True where a chain that left the finite world
  is frozen, and for MALA/HMC recorded at every step (``thin == 1``)
  ``accepted``: the chain moved since the previous frame (a continuous proposal
  never lands on the current point, so this is the accept indicator).
- root attributes: the target (name, parameters as JSON, box), the config
  (JSON, plus the main fields as plain attributes), ``thin``, the exact ``log_z``
  with its quadrature error, the exact moments ``exact_mean`` and ``exact_cov``
  (row-major, 4 numbers: NetCDF attributes are one-dimensional), the exact SGLD
  covariance where known, the run's mean acceptance probability, divergences.

Every chain is exported, diverged ones included (frozen at their last finite
point and flagged), so chain ``i`` is the run's chain ``i``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ebmcore.energies import Target, ValidationError
from ebmcore.exact.summary import RunSummary, summarize
from ebmcore.sampling.kernels import METROPOLIS
from ebmcore.sampling.runner import SampleConfig, Trace

if TYPE_CHECKING:
    import xarray

__all__ = ["INSTALL_HINT", "require_arviz", "to_inference_data", "to_netcdf_bytes",
           "write_netcdf"]

INSTALL_HINT = ('ArviZ export needs the optional extra: pip install -e ".[arviz]" '
                "(or: pip install arviz-base arviz-stats h5netcdf)")
ENERGY_CHUNK = 1 << 18  # positions per energy evaluation: bounded memory on 2e6-point traces


def require_arviz() -> None:
    """Raise :class:`ValidationError` with :data:`INSTALL_HINT` unless the extra is installed."""
    try:
        import arviz_base  # noqa: F401
        import h5netcdf  # noqa: F401
    except ImportError:
        raise ValidationError(INSTALL_HINT) from None


def _energies(target: Target, positions: torch.Tensor) -> np.ndarray:
    """``E`` at every recorded position ``(S, N, 2)`` -> ``(N, S)``, in the run's dtype.

    (float64 for a float32 run would only double the file with digits nobody computed.)
    """
    flat = positions.reshape(-1, 2)
    out = torch.empty(flat.shape[0], dtype=positions.dtype)
    with torch.no_grad():
        for i in range(0, flat.shape[0], ENERGY_CHUNK):
            out[i : i + ENERGY_CHUNK] = target.energy(flat[i : i + ENERGY_CHUNK]).detach()
    return out.reshape(positions.shape[:2]).T.numpy()


def _diverging(trace: Trace) -> np.ndarray:
    """``(N, S)``: True at the frames where a diverged chain sits frozen.

    The runner does not record when each chain froze, only that it did; a frozen
    chain repeats its last finite position to the end, so its frozen frames are
    the trailing run equal to the final position.
    """
    pos = trace.positions  # (S, N, 2)
    same = (pos == trace.x[None]).all(2)  # (S, N)
    trailing = same.flip(0).to(torch.int8).cumprod(0).flip(0).bool()
    return (trailing & ~trace.alive[None]).T.numpy()


def _accepted(trace: Trace) -> np.ndarray | None:
    """``(N, S)`` accept indicators for MALA/HMC recorded at every step, else None."""
    if trace.config.sampler not in METROPOLIS or trace.thin != 1:
        return None
    pos = trace.positions
    moved = torch.zeros(pos.shape[:2], dtype=torch.bool)
    moved[1:] = (pos[1:] != pos[:-1]).any(2)  # frame 0 is the initial point: no transition
    return moved.T.numpy()


def _attrs(trace: Trace, target: Target, s: RunSummary) -> dict[str, object]:
    cfg = trace.config
    attrs: dict[str, object] = {
        "inference_library": "ebmcore",
        "target": target.name,
        "target_params": json.dumps(_plain(dict(target.params))),
        "box": [float(v) for v in target.box],
        "sample_config": json.dumps(_plain(dataclasses.asdict(cfg))),
        "sampler": cfg.sampler, "step_size": cfg.step_size, "temperature": cfg.temperature,
        "noise": int(cfg.noise), "chains": cfg.chains, "steps": cfg.steps,
        "steps_done": trace.done, "burn_in": cfg.burn_in, "seed": cfg.seed, "thin": trace.thin,
        "log_z": s.log_z, "log_z_err": s.log_z_err,
        "exact_mean": s.target_mean.tolist(),
        "exact_cov": s.target_cov.reshape(-1).tolist(),
        "n_diverged": trace.n_diverged, "seconds": trace.seconds,
    }
    if s.sgld_cov is not None:
        attrs["exact_sgld_cov"] = s.sgld_cov.reshape(-1).tolist()
    if trace.acceptance is not None:
        attrs["acceptance_rate"] = trace.acceptance
    if trace.first_diverged_step is not None:
        attrs["first_diverged_step"] = trace.first_diverged_step
    return attrs


def _plain(v: object) -> object:
    """JSON-ready: tuples as lists, non-finite floats as None."""
    if isinstance(v, dict):
        return {str(k): _plain(e) for k, e in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(e) for e in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def to_inference_data(trace: Trace, target: Target, config: SampleConfig | None = None,
                      summary: RunSummary | None = None) -> xarray.DataTree:
    """The run as ArviZ data (the layout is described in the module docstring).

    Args:
        trace: a finished or stopped run (``Progress.trace`` works mid-run).
        target: the target it sampled: energies and the exact reference come from it.
        config: the run's config; optional, it must equal ``trace.config`` when given.
        summary: :func:`ebmcore.summarize` of this trace, when already computed (its
            exact log Z and moments are reused; otherwise computed here by quadrature).

    Returns:
        An ``xarray.DataTree`` with ArviZ's groups: ArviZ 1.x's ``InferenceData``.
        Legacy ``arviz`` (0.x) converts it with ``az.InferenceData.from_datatree``,
        or reads the NetCDF file with ``az.from_netcdf``.
    """
    require_arviz()
    from arviz_base import from_dict

    if config is not None and config != trace.config:
        raise ValidationError("config differs from the trace's own config (trace.config)")
    s = summary if summary is not None else summarize(trace, target)
    steps = trace.steps.numpy()
    post = steps >= trace.config.burn_in
    pos = trace.positions.numpy()  # (S, N, 2)
    stats = {"energy": _energies(target, trace.positions), "diverging": _diverging(trace)}
    stats["lp"] = (-stats["energy"].astype(np.float64) - s.log_z).astype(pos.dtype)
    accepted = _accepted(trace)
    if accepted is not None:
        stats["accepted"] = accepted
    data: dict[str, dict[str, np.ndarray]] = {}
    for prefix, keep in (("", post), ("warmup_", ~post)):
        if keep.any():
            data[f"{prefix}posterior"] = {"x": pos[keep, :, 0].T, "y": pos[keep, :, 1].T}
            data[f"{prefix}sample_stats"] = {k: v[:, keep] for k, v in stats.items()}
    if "posterior" not in data:
        raise ValidationError("the run stopped before burn-in ended: nothing to export")
    # check_conventions off: its only check warns when chains outnumber draws, which is how
    # this lab samples (thousands of short chains); the dims here are explicit anyway.
    tree = from_dict(data, save_warmup=True, check_conventions=False,
                     attrs={"/": _attrs(trace, target, s)})
    for group in data:  # the sampler step of each draw, beside ArviZ's 0-based draw index
        keep = post if not group.startswith("warmup_") else ~post
        tree[group] = tree[group].to_dataset().assign_coords(step=("draw", steps[keep]))
    return tree


def to_netcdf_bytes(trace: Trace, target: Target, config: SampleConfig | None = None,
                    summary: RunSummary | None = None) -> bytes:
    """The run as a NetCDF-4 file in memory (for a download button); see :func:`write_netcdf`."""
    buf = io.BytesIO()
    to_inference_data(trace, target, config, summary).to_netcdf(buf, engine="h5netcdf")
    return buf.getvalue()


def write_netcdf(path: str | Path, trace: Trace, target: Target,
                 config: SampleConfig | None = None, summary: RunSummary | None = None) -> Path:
    """Write the run to ``path`` as NetCDF-4 (groups as ArviZ writes them); returns the path.

    Read it back with ``xarray.open_datatree(path)`` or ``arviz.from_netcdf(path)``.
    """
    path = Path(path)
    to_inference_data(trace, target, config, summary).to_netcdf(path, engine="h5netcdf")
    return path
