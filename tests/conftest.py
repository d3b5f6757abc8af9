"""Shared fixtures: the reference Gaussian of the project's seed note."""

from __future__ import annotations

import math

import pytest
import torch

from ebmcore.energies import Target

# One intra-op thread: the tests' tensors are small, and torch's thread pool collapses (x10-x100)
# when other processes share the two cores of the CI machine.
torch.set_num_threads(1)

SIGMA = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
MEAN = torch.tensor([0.5, -0.25], dtype=torch.float64)


def gaussian_target(mean: torch.Tensor = MEAN, cov: torch.Tensor = SIGMA) -> Target:
    """A Gaussian energy written here, independently of the registry."""
    prec = torch.linalg.inv(cov)

    def energy(x: torch.Tensor) -> torch.Tensor:
        d = x - mean.to(x.dtype)
        return 0.5 * ((d @ prec.to(x.dtype)) * d).sum(1)

    def grad(x: torch.Tensor) -> torch.Tensor:
        return (x - mean.to(x.dtype)) @ prec.to(x.dtype)

    half = 7.0 * math.sqrt(float(cov.diagonal().max()))
    box = (mean[0] - half, mean[0] + half, mean[1] - half, mean[1] + half)
    return Target("test-gaussian", energy, tuple(float(v) for v in box), grad=grad)


@pytest.fixture
def gauss() -> Target:
    return gaussian_target()
