"""Settings of an adversarial run (:mod:`ebmcore.ebm.adversarial`), validated and serialisable."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ebmcore.budget import DEFAULT_BUDGET, Budget, check, training_cost
from ebmcore.defaults import ANY, DEFAULT_FLOW, FLOW_DEFAULTS, flow_defaults
from ebmcore.ebm.config import (
    MAX_LR,
    LoopConfig,
    check_choice,
    check_ints,
    check_loop,
    check_positive,
    check_ranges,
)
from ebmcore.ebm.flows import FLOWS
from ebmcore.ebm.models import ModelConfig
from ebmcore.energies import ValidationError

__all__ = ["FLOW_DEFAULTS", "METHOD", "THETA_WEIGHTS", "AdversarialConfig"]

METHOD = "adversarial"
THETA_WEIGHTS = ("uniform", "importance")


@dataclass(frozen=True)
class AdversarialConfig(LoopConfig):
    """Everything that defines an adversarial run; ``None`` means "the flow's default"."""

    flow: str = DEFAULT_FLOW  # the sampler q_phi: hmc (leapfrog) or langevin
    flow_steps: int | None = None  # T, dynamics steps of q_phi
    flow_step_size: float | None = None  # initial eps of every step (in z units, box ~ [-1, 1])
    flow_components: int = 16  # Gaussian components of q0, started at a k-means of the data
    flow_layers: int = 0  # affine coupling layers in q0 (0 = none)
    flow_lr: float = 3e-3  # Adam learning rate of phi (same cosine decay as theta's)
    phi_steps: int = 1  # phi updates per theta update
    theta_weights: str = "uniform"  # draws of q in theta's step: uniform, or importance p/q
    iters: int | None = None  # theta updates
    lr: float | None = None  # Adam learning rate of theta (cosine-decayed to lr * lr_final)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas (theta and phi)
    batch_size: int = 256  # data points and draws of q per iteration
    init_gain: float = 6.0  # first layer's initial weights x this (as the MLE trainer)
    ema: float = 0.99  # decay of the weights' running average used by metrics and saves (0 off)
    bound_samples: int = 4096  # fresh draws for the bound at each logged iteration
    diverge_nats: float = 30.0  # train NLL this far above uniform-on-box = diverged

    def validate(self, budget: Budget = DEFAULT_BUDGET, *, model: ModelConfig | None = None,
                 flag: str = "", dataset: str = ANY) -> AdversarialConfig:
        """Return a copy with the flow's defaults on ``dataset`` filled in, or raise
        ValidationError.

        Priced as a training run whose negatives take ``flow_steps`` steps, run again for
        each of the ``phi_steps`` updates of q (refused above ``budget``).
        """
        check_choice("flow", self.flow, tuple(FLOWS))
        c = replace(self, **self.missing(flow_defaults(self.flow, dataset)))
        check_positive(c, ("lr", "flow_lr", "flow_step_size"))
        check_ranges(c, (("flow_lr", "(0", MAX_LR, c.flow_lr <= MAX_LR),
                         ("flow_step_size", "(0", "1e6]", c.flow_step_size <= 1e6)))
        check_ints(c, (("iters", 1, 10_000_000), ("batch_size", 2, 100_000),
                       ("flow_steps", 0, 1000), ("flow_layers", 0, 16),
                       ("flow_components", 1, 256), ("phi_steps", 0, 100),
                       ("bound_samples", 2, 1_000_000), ("eval_every", 0, 10_000_000),
                       ("seed", 0, 2**63 - 1)))
        if c.theta_weights not in THETA_WEIGHTS:
            raise ValidationError(f"theta_weights must be one of {', '.join(THETA_WEIGHTS)}, "
                                  f"got {c.theta_weights!r}")
        check_loop(c)
        m = model or ModelConfig()
        check(training_cost(iters=c.iters, points=c.batch_size,
                            steps=max(1, c.flow_steps) * (1 + c.phi_steps),
                            params=m.num_parameters, width=m.width, depth=m.depth), budget,
              flag=flag)
        return c

    def to_dict(self) -> dict[str, object]:
        return {"method": METHOD, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> AdversarialConfig:
        """Inverse of :meth:`to_dict` (lists back to tuples)."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        kw["betas"] = tuple(kw.get("betas", cls.betas))  # type: ignore[arg-type]
        return cls(**kw)  # type: ignore[arg-type]
