"""Exact metrics of a 2D energy model on its box, shared by every trainer.

The model's density ``p_theta(x) = exp(-E(x)) / Z`` lives on a bounded box
(zero outside), so ``Z`` is an integral over the box that the grid quadrature
of :mod:`ebmcore.exact.density` computes to high accuracy.  From it follow, exactly:

- ``log Z``;
- the train / test negative log-likelihood ``mean(E(x) + log Z)`` in nats per
  point (data outside the box are clamped onto its edge first: the box is
  padded around the data, so this touches at most a few far test points);
- ``KL(p_data || p_theta)`` on the grid, when the data come from a known
  density (a registry target): both densities are tabulated on the same cells;
- the entropy of the data density (the best NLL any model can reach on
  average: ``nll_test`` estimates ``entropy + KL``);
- how far a set of negatives is from ``p_theta`` (``density.discrepancy``: total
  variation between their histogram and ``p_theta``'s bin masses, with its
  floor for exact iid samples).  Chains that mix score near the floor.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from torch import Tensor

from ebmcore.box import Box
from ebmcore.ebm.data import Dataset
from ebmcore.energies import Energy, ValidationError
from ebmcore.exact.density import GridDensity, discrepancy, kl_divergence, quadrature

__all__ = ["ExactEvaluator", "ExactMetrics", "exact_metrics"]


@dataclass(frozen=True, eq=False)
class ExactMetrics:
    """Exact quality of a model at one iteration (all in nats)."""

    iteration: int  # training iterations done when measured
    log_z: float  # log of the integral of exp(-E) over the box
    log_z_err: float  # quadrature error estimate of log_z
    nll_train: float  # mean E(x) + log Z over the training points
    nll_test: float  # same over the held-out points
    kl: float | None  # KL(p_data || p_theta) on the grid; None when p_data is unknown
    entropy: float | None  # entropy of p_data on the box; None when unknown
    neg_discrepancy: float | None  # TV(negatives, p_theta) on 32x32 bins; None without negatives
    neg_floor: float | None  # E[TV] for as many exact iid samples: the best possible value
    seconds: float  # wall time this evaluation took
    density: GridDensity | None = field(default=None, repr=False)  # p_theta on the grid

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly values (the density is left out)."""
        return {k: getattr(self, k) for k in (
            "iteration", "log_z", "log_z_err", "nll_train", "nll_test", "kl", "entropy",
            "neg_discrepancy", "neg_floor", "seconds")}


class ExactEvaluator:
    """Caches what does not change during training: the clamped data and p_data's grid.

    Args:
        dataset: train / test points, and ``target`` when the density is known.
        box: the model's box (the quadrature domain).
        n: grid cells per side; a multiple of 32 (the discrepancy's bins).
    """

    BINS = 32  # bins per side of the negatives' histogram

    def __init__(self, dataset: Dataset, box: Box, n: int = 128) -> None:
        if n % self.BINS or not self.BINS <= n <= 1024:
            raise ValidationError(
                f"evaluation grid must be a multiple of 32 in [32, 1024], got {n}")
        self.box, self.n = Box.of(box), n
        self.train = self.box.clamp(dataset.train.float())
        self.test = self.box.clamp(dataset.test.float())
        self.target: GridDensity | None = None
        if dataset.target is not None:
            self.target = quadrature(dataset.target.energy, self.box, n)

    @property
    def entropy(self) -> float | None:
        return None if self.target is None else -self.target.neg_entropy

    def __call__(self, model: Energy, iteration: int = 0, negatives: Tensor | None = None,
                 chain_model: Energy | None = None) -> ExactMetrics:
        """Measure ``model`` (raises ``ValidationError`` if its ``exp(-E)`` is not normalisable).

        Args:
            model: the energy to measure.
            iteration: recorded in the result.
            negatives: ``(M, 2)`` samples to compare with the density they were
                drawn for: ``chain_model``'s if given (e.g. the live weights when
                ``model`` is their running average; tabulated on a grid half as
                fine), else ``model``'s.
        """
        start = time.perf_counter()
        gd = quadrature(model, self.box, self.n)
        nll_train = float(gd.nll(model, self.train).mean())
        nll_test = float(gd.nll(model, self.test).mean())
        kl = None if self.target is None else kl_divergence(self.target, gd)
        tv = floor = None
        if negatives is not None and negatives.numel():
            chain_gd = gd
            if chain_model is not None:  # half the grid is plenty for 32 x 32 bins
                half = self.n // 2 if (self.n // 2) % self.BINS == 0 else self.n
                chain_gd = quadrature(chain_model, self.box, half)
            d = discrepancy(negatives, chain_gd, bins=self.BINS)
            tv, floor = d.tv, d.floor
        return ExactMetrics(iteration, gd.log_z, gd.log_z_err, nll_train, nll_test, kl,
                            self.entropy, tv, floor, time.perf_counter() - start, gd)


def exact_metrics(model: Energy, dataset: Dataset, grid: int = 128, box: Box | None = None,
                  negatives: Tensor | None = None, iteration: int = 0) -> ExactMetrics:
    """One-off exact metrics of ``model`` (see :class:`ExactEvaluator`).

    Args:
        model: an energy ``(N, 2) -> (N,)``; its ``box`` attribute is the domain
            unless ``box`` is given.
        dataset: the data it was trained on.
        grid: grid cells per side (a multiple of 32).
        negatives: optional ``(M, 2)`` samples to compare with ``p_theta``.
    """
    box = box if box is not None else getattr(model, "box", None)
    if box is None:
        raise ValidationError("the model has no box: pass the quadrature box explicitly")
    if not all(math.isfinite(float(v)) for v in box):
        raise ValidationError(f"invalid box {box}")
    return ExactEvaluator(dataset, box, grid)(model, iteration, negatives)
