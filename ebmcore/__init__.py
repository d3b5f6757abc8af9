"""Langevin Lab's numerical core: 2D energies, Langevin-family samplers, exact ground truth.

The public surface, in the order one meets it::

    from ebmcore import make_target, SampleConfig, sample, quadrature, summarize
    target = make_target("gaussian")                 # p(x) = exp(-E(x)) / Z, cov [[2,1],[1,2]]
    trace = sample(target, SampleConfig(step_size=0.3, steps=1000))
    print(summarize(trace, target).to_dict())        # statistics beside exact values

For notebooks and other tools, :mod:`ebmcore.interop` turns runs into pandas
DataFrames (``trace_frame``, ``final_frame``, ``metrics_frame``) and ArviZ data
(``to_inference_data``, ``to_netcdf_bytes``; the optional extra ``arviz``).

Training runs one loop (:mod:`ebmcore.ebm.loop`) with a maximum-likelihood
(:mod:`ebmcore.ebm.training`) or an adversarial (:mod:`ebmcore.ebm.adversarial`)
objective; defaults live in :mod:`ebmcore.defaults`; the command line is
``python -m ebmcore``.  This package never imports Streamlit or Plotly.
"""

from __future__ import annotations

from ebmcore.box import Box
from ebmcore.energies import (
    Energy,
    Param,
    Target,
    TargetSpec,
    ValidationError,
    energy_and_grad,
)
from ebmcore.exact.density import (
    Discrepancy,
    GridDensity,
    discrepancy,
    kl_divergence,
    quadrature,
    sgld_stationary_cov,
)
from ebmcore.exact.diagnostics import autocorrelation, ess_bulk, split_rhat
from ebmcore.exact.summary import RunSummary, summarize
from ebmcore.interop import (
    final_frame,
    metrics_frame,
    to_inference_data,
    to_netcdf_bytes,
    trace_frame,
)
from ebmcore.sampling.kernels import (
    SAMPLERS,
    SamplerState,
    StepInfo,
    hmc_step,
    init_state,
    mala_step,
    sgld_step,
)
from ebmcore.sampling.runner import Progress, SampleConfig, Trace, run, sample
from ebmcore.targets.formula import FormulaError, compile_formula, formula_target
from ebmcore.targets.registry import TARGETS, make_target

__all__ = [
    "SAMPLERS",
    "TARGETS",
    "Box",
    "Discrepancy",
    "Energy",
    "FormulaError",
    "GridDensity",
    "Param",
    "Progress",
    "RunSummary",
    "SampleConfig",
    "SamplerState",
    "StepInfo",
    "Target",
    "TargetSpec",
    "Trace",
    "ValidationError",
    "autocorrelation",
    "compile_formula",
    "discrepancy",
    "energy_and_grad",
    "ess_bulk",
    "final_frame",
    "formula_target",
    "hmc_step",
    "init_state",
    "kl_divergence",
    "make_target",
    "mala_step",
    "metrics_frame",
    "quadrature",
    "run",
    "sample",
    "sgld_stationary_cov",
    "sgld_step",
    "split_rhat",
    "summarize",
    "to_inference_data",
    "to_netcdf_bytes",
    "trace_frame",
]

__version__ = "0.1.0"
