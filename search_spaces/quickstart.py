"""Quickstart: the scaling study on offline MNIST-1D, prune a big MLP or train a small one.

An MLP 40 -> h -> h -> 10 at three widths, h = 25, 50 and 100 (model.width 0.25-1 of hidden
100-100: a 4x span, 1.9K to 15K weights), trained with SGD + momentum 0.9 at lr 0.3 and 0.5,
batch 100, 2,000 steps (56 epochs) with a cosine decay, evaluated every 200 steps. The budget
and lrs are the ones at which the answer holds when the budget doubles: at 1,000 steps, and at
lr 0.1 or 0.2 even at 2,000, the sparse reinit nets were still learning, so lottery − reinit
shrank by 3-5 points at twice the steps (a speed, not an end accuracy); at 0.3 and 0.5 the
budget check finds no gap that moves (stable at 11 of 14 cells; 3 unresolved by five seeds,
two at structured lr 0.5, where a lottery run collapsed to 15% at 4,000 steps), and 85-100%
of the dense, lottery and reinit runs of every (width, lr) converge. At that budget the lottery
effect is small: no single cell passes Holm; pooled over rounds, +3.6 points at lr 0.3,
width 1. Width 2 (h = 200, 60% of the training time) is left to the
`scaling` space: with it the quickstart would not fit in 10 minutes on 2 cores. Each dense
net is pruned by IMP, unstructured (layerwise magnitude, half of the hidden weights and a
quarter of the output layer per round, 4 rounds: 8-10% of all weights left) and structured
(whole neurons by L1 norm, 40% per round ranked over both hidden layers at once, 3 rounds:
10-25% of the weights left; ranked per layer the pruned net would be the uniformly narrower
net small_dense trains). Every round's mask is trained by the lottery arm (rewind to θ0) and
the controls reinit (Scratch-E), scratch_b, finetune, lr_rewind (Renda et al.'s
learning-rate rewinding), small_dense and small_dense_b (narrower dense nets with as many
weights, at Scratch-E's and Scratch-B's budgets), and, for the unstructured masks, synflow (a
mask chosen at θ0) and rigl_b (sparse training from scratch at Scratch-B's budget), the
strongest of each family in the `train_small` space's run. Width 1 trains again at 4,000
steps (the budget check: does a gap hold when the budget doubles?). 5 seeds; the trial count
and the time of the measured run are in README.md. `study analyze` then maps the lottery
effect over width x density, tests its trend with width, reports convergence and the budget
check, fits Rosenfeld et al.'s joint scaling law per arm, and compares prune-big with
train-small at equal nonzero weights and at equal training compute.

What the papers predict (LTH, Rethinking, Renda et al., Rosenfeld et al. 2021): unstructured
lottery > reinit at 5-20% remaining, most at the smaller lr (at a large lr LTH's tickets need
a late rewind); little or no effect for structured pruning, where reinit and scratch_b match
fine-tuning; lr rewinding at least as good as fine-tuning; a wider net keeps its accuracy down
to lower density (the invariant w^ψ·d).
"""

from study.space import Space

space = Space(
    name="quickstart",
    data={"name": "mnist1d"},
    model={"name": "mlp", "hidden": [100, 100]},
    train={"optimizer": "sgd", "momentum": 0.9, "batch_size": 100, "steps": 2000,
           "schedule": "cosine", "eval_every": 200},
    grid={
        "model.width": [0.25, 0.5, 1.0],
        "train.lr": [0.3, 0.5],
        "prune": [
            {"granularity": "unstructured", "criterion": "magnitude", "rate": 0.5,
             "output_rate": 0.25, "rounds": 4},
            {"granularity": "structured", "scope": "global", "criterion": "l1_filter",
             "rate": 0.4, "rounds": 3},
        ],
    },
    arms=["reinit", "scratch_b", "finetune", "lr_rewind", "small_dense", "small_dense_b",
          "synflow", "rigl_b"],
    budget_check={"factor": 2, "where": {"model.width": [1.0]}, "arms": ["reinit"]},
    seeds=[0, 1, 2, 3, 4],
)
