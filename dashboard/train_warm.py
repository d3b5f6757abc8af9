"""Imported once by the training workers' fork server (:mod:`dashboard.train_proc`).

Importing it sets one torch thread (before any operation, so no thread pool exists to be
lost in a fork) and runs a few iterations of every training method on a tiny model: each
worker forked afterwards starts with torch's lazily imported parts and the compiled
(numba) chain kernels already loaded, instead of spending about 0.5 s on its first step.
"""

from __future__ import annotations

import torch

torch.set_num_threads(1)

import torch._dynamo  # noqa: E402  (the first optimiser of a process imports it: 1.5 s)

from ebmcore.ebm.adversarial import AdversarialConfig, AdversarialTrainer  # noqa: E402
from ebmcore.ebm.data import make_dataset  # noqa: E402
from ebmcore.ebm.models import ModelConfig  # noqa: E402
from ebmcore.ebm.training import METHODS, TrainConfig, Trainer  # noqa: E402

__all__: list[str] = []


def _warm() -> None:
    data = make_dataset("mixture", 64, 32, seed=0)
    tiny = ModelConfig(width=8, depth=1)
    for method in METHODS:
        for kernel in ("sgld", "mala"):
            try:
                cfg = TrainConfig(method=method, iters=2, steps=2, batch_size=16, chains=16,
                                  kernel=kernel)
                for _ in Trainer(data, cfg, tiny).run():
                    pass
            except Exception:  # a setting a method does not take: nothing to warm
                pass
    for flow in ("langevin", "hmc"):
        try:
            for _ in AdversarialTrainer(data, AdversarialConfig(flow=flow, iters=2),
                                        tiny).run():
                pass
        except Exception:
            pass


_warm()
