"""LTH on LeNet-300-100 / MNIST, exactly as Frankle & Carbin (ICLR 2019), with Zhou et al.'s arms.

Protocol (LTH, Table 1 and Section 2): LeNet-300-100 (784-300-100-10, Glorot init: the mlp's
default), Adam at 1.2e-3, batch 60, 50K iterations, 55K train / 5K validation (the 5K held out
of MNIST's 60K training images), evaluation every 100 iterations for early stopping. Iterative
layerwise magnitude pruning of 20% of each hidden layer and 10% of the output layer per round,
survivors rewound to θ0, 15 rounds: 3.6% of the 266,200 weights remain. Controls on every
round's mask: reinit and random_prune (LTH), sign_constant and supermask (Deconstructing
Lottery Tickets, Zhou et al. 2019). 5 seeds. Needs MNIST's four IDX files in $STUDY_DATA_DIR.
"""

# Numbers to reproduce (docs/science.md):
# - LTH: tickets at 51% remaining learn faster than dense; at 21% fastest and more accurate
#   (test accuracy above dense, earlier early-stop iteration); at 3.6% back to dense accuracy.
# - LTH: reinit degrades steadily with sparsity, its early-stop iteration grows with sparsity;
#   random_prune likewise.
# - Zhou et al.: sign_constant ≈ lottery; supermask (untrained) ~86% test accuracy on MNIST.
# Sparsity per round r: hidden layers keep 0.8^r, output 0.9^r; r = 3, 7, 15 -> 51%, 21%, 3.6%.

from study.space import Space

space = Space(
    name="lth_lenet_mnist",
    description="Frankle & Carbin 2019, LeNet-300-100 on MNIST; Zhou et al. 2019 controls",
    data={"name": "mnist", "val_fraction": 5000 / 60000},
    model={"name": "mlp"},  # hidden (300, 100) at width 1 = LeNet-300-100
    train={"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "steps": 50_000,
           "eval_every": 100},
    prune={"granularity": "unstructured", "scope": "layerwise", "criterion": "magnitude",
           "rate": 0.2, "output_rate": 0.1, "rounds": 15, "rewind_step": 0},
    arms=["reinit", "random_prune", "sign_constant", "supermask"],
    seeds=[0, 1, 2, 3, 4],
    resources={"cpu": 1, "gpu": 0},  # a 266K-weight MLP: CPU workers keep up
)
