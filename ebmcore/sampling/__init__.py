"""Langevin-family samplers: pure kernels over a cached state, fused fast paths, ``run()``."""

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

__all__ = ["SAMPLERS", "Progress", "SampleConfig", "SamplerState", "StepInfo", "Trace",
           "hmc_step", "init_state", "mala_step", "run", "sample", "sgld_step"]
