"""Default settings, in one place: sampling per target and sampler, training per method.

The CLI, the configs and the dashboard read their defaults from here.  The sampling
table itself, measured per registry target, is :data:`ebmcore.targets.settings.SETTINGS`;
:func:`sampling_defaults` is the one way to read it.  Training lookups go from the most
general entry to the most specific, :data:`ANY` standing for "every data set not
listed", so a per-data-set entry only needs the values that differ.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ANY",
    "DEFAULT_DATASET",
    "DEFAULT_FLOW",
    "DEFAULT_METHOD",
    "DEFAULT_SAMPLER",
    "DEFAULT_TARGET",
    "FLOW_DEFAULTS",
    "METHOD_DEFAULTS",
    "TRAINING",
    "flow_defaults",
    "sampling_defaults",
    "training_defaults",
]

ANY = "*"  # the fallback key of every table below

# -- sampling: the reference example is SGLD on the Gaussian, eps 0.3, 1000 steps, noise on
DEFAULT_TARGET = "gaussian"
DEFAULT_SAMPLER = "sgld"

# -- training: method -> data set -> settings (fields of TrainConfig) ----------
DEFAULT_DATASET = "mixture"
DEFAULT_METHOD = "persistent"
# chosen on mixture, MLP 2-128-128-1
_MCMC = {"step_size": 0.01, "lr": 2e-3, "batch_size": 256, "betas": (0.0, 0.999),
         "init_gain": 6.0, "ema": 0.99, "kernel": "mala", "l2": 0.0}
# Chains from noise must cross the box in K steps: on a box much larger than mixture's
# (half-width 3.5) eps grows as the square of its geometric-mean half-width, and an L2
# penalty on the energies keeps p_theta from running away where the chains are sparse.
# banana (12 x 42): at eps 0.01 it diverged at iteration 50; at eps 0.1 alone the energies
# still ran away (E = -700 by iteration 450); eps 0.1 with L2 0.1 trains (replay KL 0.18
# at 1000 iterations).  gaussian and funnel follow the same rule (checked over 100 iterations).
_FROM_NOISE = {
    "banana": {"step_size": 0.1, "l2": 0.1},
    "gaussian": {"step_size": 0.06, "l2": 0.1},
    "funnel": {"step_size": 0.12, "l2": 0.1},
}
# Short-run alone (every iteration from noise) on the toy sets of half-width ~4.5-5.5: at
# eps 0.01 the test NLL at iteration 100 was still worse than uniform (circles 4.43 vs 4.39,
# swissroll 4.91 vs 4.31, checkerboard 4.65 vs 4.52, u4 5.06 vs 4.71).  Over the whole 2000
# iterations eps 0.04 with L2 0.1 converged on all four and beat eps 0.02 with L2 0.1 (test
# NLL 2.71 / 2.85 / 3.79 / 3.13 vs 2.84 / 2.89 / 3.79 / 3.16; u4 KL 0.218 vs 0.240).
_SHORT_RUN_WIDE = {"step_size": 0.04, "l2": 0.1}
TRAINING: dict[str, dict[str, dict[str, object]]] = {
    "short-run": {ANY: {"iters": 2000, "steps": 60, **_MCMC}, **_FROM_NOISE,
                  **dict.fromkeys(("circles", "swissroll", "checkerboard", "u4"),
                                  _SHORT_RUN_WIDE)},
    "persistent": {ANY: {"iters": 3000, "steps": 20, **_MCMC},
                   # rings (KL at 3000 iterations): eps 0.01 0.33, 0.02 0.28, 0.04 0.25, 0.08
                   # blew up (KL 2.9); 6000 at eps 0.01 0.28, at 0.04 0.150 (its ending
                   # swings: 0.074 on an earlier build); lr 3e-3 0.137 (seed 1: 0.058); 4e-3
                   # 0.088 but seed 1 diverged; a longer weight average (0.999) 0.155.  6000
                   # iterations cost 1.7e12 operations, within the dashboard's 2e12
                   "rings": {"step_size": 0.04, "iters": 6000, "lr": 3e-3}},
    # buffer_size: small enough that every entry moves every ~8 iterations; restart: the
    # fraction of each batch restarted from uniform noise
    "replay": {ANY: {"iters": 4000, "steps": 20, **_MCMC, "buffer_size": 2048, "restart": 0.05},
               **_FROM_NOISE,
               # mixture (KL over the last four evaluations): eps 0.01 swung 0.06-0.09 as the
               # restarted chains came and went; eps 0.02 with the average over ~1000
               # iterations 0.030-0.036
               "mixture": {"step_size": 0.02, "ema": 0.999},
               # banana's 12 x 42 box is nearly all empty: restarts from noise there sit on a
               # flat plateau.  With 1% restarts (eps 0.03, L2 0.03, buffer 512) 45% of the
               # buffer stayed in cells where p_data < 1e-6 (E 5 +- 11 against the data's -5),
               # pushing E up round the thin arms: KL 0.076 (0.095 at eps 0.1, L2 0.1, 5%).
               # Without restarts the buffer drains into the data (0.4% left by iteration
               # 4000): KL 0.019 (seed 1: 0.016).  No restarts at eps 0.1, L2 0.1: 0.19; no L2
               # at eps 0.01-0.02 diverged (iterations 50, 600)
               "banana": {"step_size": 0.03, "l2": 0.03, "restart": 0.0},
               # 8gaussians' modes are 2.1 apart (7 std): a mode's share of the buffer follows
               # p_theta's weight only through entries that hop between modes.  At eps 0.01 an
               # entry moves 2.5 steps an iteration and hops about once in 1000 iterations,
               # while 5% restarts renew it every 160: nothing held the mode weights (KL
               # 0.04-0.72 during the run, 0.63 at the end).  eps 0.05 hops 5x as often (0.18,
               # still 0.04-0.32); a 512 buffer moves each entry 10 steps an iteration and 1%
               # restarts renew it every 200: 0.066 (0.025-0.11 late); the average over ~1000
               # iterations smooths what is left: 0.038 (0.029-0.040 over the last four; seed 1:
               # 0.030)
               "8gaussians": {"step_size": 0.05, "buffer_size": 512, "restart": 0.01,
                              "ema": 0.999},
               # rings, 6000 iterations (KL at the end): eps 0.01 0.24, 0.02 0.173, 0.03 and
               # 0.04 blew up (iterations 4050, 2150); eps 0.02 with lr 3e-3 0.061 (0.043-0.061
               # over the last four evaluations).  1.7e12 operations
               "rings": {"step_size": 0.02, "iters": 6000, "lr": 3e-3}},
    "exact": {ANY: {"iters": 1500, "steps": 0, **_MCMC, "lr": 3e-3, "batch_size": 1024,
                    "betas": (0.9, 0.999), "kernel": "sgld"},
              "rings": {"iters": 3000}},  # the rings come into focus slowly: KL 0.160 -> 0.083
}

# -- adversarial training: flow -> data set -> settings (fields of AdversarialConfig)
DEFAULT_FLOW = "hmc"  # the leapfrog flow: its bound stays tight
FLOWS_TABLE: dict[str, dict[str, dict[str, object]]] = {
    "langevin": {ANY: {"iters": 3000, "flow_steps": 5, "flow_step_size": 0.01, "lr": 1e-3}},
    "hmc": {ANY: {"iters": 1000, "flow_steps": 10, "flow_step_size": 0.05, "lr": 3e-3}},
}


def _lookup(table: Mapping[str, Mapping[str, Mapping[str, object]]], outer: str,
            inner: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for a in (ANY, outer):
        row = table.get(a, {})
        for b in (ANY, inner):
            out.update(row.get(b, {}))
    return out


def sampling_defaults(target: str = DEFAULT_TARGET,
                      sampler: str = DEFAULT_SAMPLER) -> dict[str, object]:
    """The settings of ``sampler`` on ``target`` as SampleConfig fields.

    ``step_size`` is None where it is chosen automatically (targets outside the registry,
    such as typed formulas: :func:`ebmcore.sampling.adapt.run_auto`).
    """
    from ebmcore.targets.settings import settings_for  # it builds SampleConfigs: import late

    s = settings_for(target, sampler)
    return {"sampler": sampler, "step_size": s.step_size, "steps": s.steps, "chains": s.chains,
            "burn_in": s.burn_in, "n_leapfrog": s.n_leapfrog, "init": s.init,
            "init_point": s.init_point, "init_std": s.init_std, "noise": True}


def training_defaults(method: str, dataset: str = ANY) -> dict[str, object]:
    """The training settings of ``method`` (a key of :data:`TRAINING`) on ``dataset``."""
    return _lookup(TRAINING, method, dataset)


def flow_defaults(flow: str, dataset: str = ANY) -> dict[str, object]:
    """The adversarial settings of ``flow`` (a key of :data:`FLOWS_TABLE`) on ``dataset``."""
    return _lookup(FLOWS_TABLE, flow, dataset)


METHOD_DEFAULTS = {m: training_defaults(m) for m in TRAINING}  # method -> settings
FLOW_DEFAULTS = {f: flow_defaults(f) for f in FLOWS_TABLE}  # flow -> settings
