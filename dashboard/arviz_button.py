"""The "download for ArviZ" button: a run as NetCDF InferenceData, built only when clicked."""

from __future__ import annotations

import streamlit as st

from ebmcore.energies import Target, ValidationError
from ebmcore.interop import require_arviz, to_netcdf_bytes
from ebmcore.sampling.runner import Trace

__all__ = ["arviz_download"]


def arviz_download(trace: Trace, target: Target, *, key: str) -> None:
    """A download of ``trace`` as ArviZ NetCDF, or the install hint when the extra is missing."""
    try:
        require_arviz()
    except ValidationError as exc:  # the optional extra is not installed: say what to do
        st.button("download for ArviZ", key=key, disabled=True, help=str(exc),
                  icon=":material/download:")
        st.caption(str(exc))
        return
    st.download_button("download for ArviZ", data=lambda: to_netcdf_bytes(trace, target),
                       file_name="langevin_lab_run.nc", mime="application/x-netcdf", key=key,
                       on_click="ignore", icon=":material/download:",
                       help="NetCDF InferenceData: posterior (chain, draw), sample_stats, "
                            "and the config, target and exact moments as attributes.")
