"""Quickstart: the offline MNIST-1D study, about 15 minutes on 2 cores with `study sweep`.

An MLP (40 -> 100 -> 100 -> 10) trained with SGD + momentum at two learning rates 10x apart,
pruned by IMP to under 10% of its weights (unstructured, 36% of hidden weights per round, half
that for the output layer as LTH does) and by whole neurons (structured, L1 norm, 25% per
round), 3 seeds. Every control arm trains on the very same masks.

What the papers would predict (SCIENCE.md): LTH: the lottery arm stays near dense accuracy down
to ~10-20% remaining while reinit degrades with sparsity; Rethinking: at the larger learning
rate the gap between lottery and reinit shrinks, and for structured pruning training the small
net from scratch (reinit = Scratch-E, scratch_b) matches fine-tuning.
"""

from study.space import Space

space = Space(
    name="quickstart",
    data={"name": "mnist1d"},
    model={"name": "mlp", "hidden": [100, 100]},
    train={"optimizer": "sgd", "momentum": 0.9, "batch_size": 100, "steps": 1500,
           "eval_every": 150},
    grid={
        "train.lr": [0.01, 0.1],
        "prune": [
            {"granularity": "unstructured", "criterion": "magnitude", "rate": 0.36,
             "output_rate": 0.18, "rounds": 6},
            {"granularity": "structured", "criterion": "l1_filter", "rate": 0.25, "rounds": 4},
        ],
    },
    arms=["reinit", "scratch_b", "finetune", "sign_constant", "random_prune", "small_dense"],
    seeds=[0, 1, 2],
)
