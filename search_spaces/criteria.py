"""Criteria: which ranking finds the ticket, and does pruning gradually beat pruning at once?

The lecture's toolbox of pruning criteria on one MLP (in -> 100 -> 100 -> 10, SGD + momentum,
600 steps) on the two offline datasets, MNIST-1D and scikit-learn's digits, 3 seeds:

- unstructured (60% of hidden weights per round, 30% of the output layer, 3 rounds -> ~6% of
  the hidden weights left): magnitude (LTH's large_final), magnitude_increase (Zhou et al.),
  random, obd (LeCun et al. 1990, Gauss-Newton Hessian diagonal), fisher (empirical Fisher x w²)
  and taylor (|w·∂L/∂w|, Molchanov et al.);
- structured (40% of the neurons per round, 3 rounds -> ~22% of each hidden layer left):
  l1_filter (Li et al. 2017), apoz (Hu et al. 2016), taylor and random.

Every plan runs with both schedules, `iterative` (IMP: prune 60%, retrain, prune again) and
`oneshot` (prune the trained dense net straight to each round's sparsity), on the very same dense
nets: a seed's dense net is shared by every criterion and schedule, so the comparisons are paired
by seed. On every round's mask: `reinit` (the lottery control) and `weight_agnostic` (the mask
with one shared weight ±w·α per layer, evaluated untrained for a sweep of w: Gaier & Ha).

What the literature predicts: iterative >= oneshot at the same sparsity (Frankle & Carbin; Han et
al. 2015), the gap growing with sparsity; magnitude-type criteria close to the second-order ones
on small nets (Blalock et al. 2020), all far above random; the lottery effect (lottery > reinit)
mostly for unstructured masks, little or none for structured ones (Liu et al. 2019); masks from
magnitude criteria classify above chance with shared weights (Zhou et al.), random masks do not.
Analyse with `analysis.criteria` (accuracy vs remaining weights, lottery-effect table).
"""

from study.space import Space

UNSTRUCTURED = ("magnitude", "magnitude_increase", "random", "obd", "fisher", "taylor")
STRUCTURED = ("l1_filter", "apoz", "taylor", "random")

space = Space(
    name="criteria",
    model={"name": "mlp", "hidden": [100, 100]},
    train={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 100, "steps": 600,
           "eval_every": 100},
    grid={
        "data.name": ["mnist1d", "digits"],
        "prune": [
            *({"granularity": "unstructured", "criterion": c, "rate": 0.6, "output_rate": 0.3,
               "rounds": 3} for c in UNSTRUCTURED),
            *({"granularity": "structured", "criterion": c, "rate": 0.4, "rounds": 3}
              for c in STRUCTURED),
        ],
        "prune.schedule": ["iterative", "oneshot"],
    },
    arms=["reinit", "weight_agnostic"],
    seeds=[0, 1, 2],
)
