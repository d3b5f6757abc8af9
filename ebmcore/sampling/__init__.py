"""Langevin-family samplers: pure kernels over a cached state, fused fast paths, ``run()``."""

from ebmcore.sampling.annealed import AnnealedState, annealed_init, annealed_step
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
from ebmcore.sampling.underdamped import KineticState, underdamped_init, underdamped_step

__all__ = ["SAMPLERS", "AnnealedState", "KineticState", "Progress", "SampleConfig",
           "SamplerState", "StepInfo", "Trace", "annealed_init", "annealed_step", "hmc_step",
           "init_state", "mala_step", "run", "sample", "sgld_step", "underdamped_init",
           "underdamped_step"]
