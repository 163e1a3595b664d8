"""Smoke: the trained arms on both granularities, 2 rounds, 1 seed, MNIST-1D. Under 2 minutes on
2 cores.

Not a science run (far too short): it checks that every stage, arm and record works end to end.
The untrained arms (supermask, weight_agnostic) are left out: supermask is weight-level only
(refused for structured plans), and both are covered by the LTH and criteria spaces.
"""

from study.space import Space

space = Space(
    name="smoke",
    data={"name": "mnist1d"},
    model={"name": "mlp", "hidden": [64, 64]},
    train={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 100, "steps": 300,
           "eval_every": 100},
    grid={"prune": [
        {"granularity": "unstructured", "criterion": "magnitude", "rate": 0.5, "output_rate": 0.25},
        {"granularity": "structured", "criterion": "l1_filter", "rate": 0.3},
    ]},
    prune={"rounds": 2},
    arms=["reinit", "scratch_b", "finetune", "sign_constant", "random_prune", "small_dense",
          "small_dense_b"],
    seeds=[0],
)
