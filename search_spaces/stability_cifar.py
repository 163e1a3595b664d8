"""Frankle et al. 2020's instability analysis on ResNet-20 / CIFAR-10, for GPU clusters.

"Linear Mode Connectivity and the Lottery Ticket Hypothesis" (Frankle, Dziugaite, Roy &
Carbin, ICML 2020): two copies of θk trained under different SGD noise (data order and
augmentation), the error measured at evenly spaced points of the straight line between them;
the error barrier is the highest error on the path minus the mean of the endpoints' errors, and
a net is stable when it is below 2%.

Protocol (their ResNet-20 rows): 63K iterations of SGD with momentum 0.9, batch 128, weight
decay 1e-4, lr 0.1 (the "low" variant: 0.01) divided by 10 at iterations 32K and 48K, standard
crop + flip augmentation; IMP with global magnitude pruning of 20% per round, rewinding to θk,
8 rounds (16.8% of the weights left, their ResNet-20 sparsity); k ∈ {0, 100, 500, 2000}. The
dense net at θk (round 0) and the round-8 subnetwork get two copies each and the interpolation
between them (21 points, BatchNorm statistics recomputed at every point); reinit trains on
every mask for the lottery − reinit gap. 3 seeds. 45K train / 5K validation images (the paper
trains on all 50K). Needs CIFAR-10's python batches in $STUDY_DATA_DIR; GPU workers.

Numbers the paper reports: dense ResNet-20 reaches 91.7% test accuracy at lr 0.1 and 88.8% at
lr 0.01; at lr 0.1 it is unstable at k = 0 and becomes stable at k ≈ 2000 (3% of training).
Its IMP subnetworks at 16.8% are unstable when rewound to k = 0 and then fall short of the
dense accuracy (lottery ≈ reinit); rewound to k ≥ 2000 they are stable and match the dense
net. At lr 0.01 the subnetworks are stable at k = 0 and match (at the lower accuracy).
"""

from study.space import Space

space = Space(
    name="stability_cifar",
    description="Frankle et al. 2020 instability analysis: ResNet-20 on CIFAR-10, k and lr",
    data={"name": "cifar10", "augment": True, "val_fraction": 0.1},
    model={"name": "resnet20"},
    train={"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 128,
           "steps": 63_000, "schedule": "step", "milestones": [32_000 / 63_000,
                                                             48_000 / 63_000],
           "gamma": 0.1, "eval_every": 1000},
    prune={"granularity": "unstructured", "scope": "global", "criterion": "magnitude",
           "rate": 0.2, "rounds": 8},
    grid={"train.lr": [0.1, 0.01], "prune.rewind_step": [0, 100, 500, 2000]},
    arms=["reinit"],
    stability=[0, 8],
    seeds=[0, 1, 2],
    resources={"cpu": 4, "gpu": 0.5},
)
