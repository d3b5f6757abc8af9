"""Runs in the formats other tools read: pandas DataFrames and ArviZ data (NetCDF).

The ArviZ functions need the optional extra ``arviz``; without it they raise
:class:`~ebmcore.energies.ValidationError` saying what to install.
"""

from __future__ import annotations

from ebmcore.interop.arviz import (
    INSTALL_HINT,
    require_arviz,
    to_inference_data,
    to_netcdf_bytes,
    write_netcdf,
)
from ebmcore.interop.frames import final_frame, metrics_frame, trace_frame

__all__ = ["INSTALL_HINT", "final_frame", "metrics_frame", "require_arviz", "to_inference_data",
           "to_netcdf_bytes", "trace_frame", "write_netcdf"]
