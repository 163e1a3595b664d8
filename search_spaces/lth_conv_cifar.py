"""LTH on Conv-2 / Conv-4 / Conv-6 and CIFAR-10, as Frankle & Carbin (ICLR 2019), plus Zhou et al.

Protocol (LTH, Table 1 and Section 3): the VGG-like Conv-2/4/6 (64-64-M, +128-128-M, +256-256-M,
then fc 256-256-10; Glorot init, no BatchNorm), Adam, batch 60, 45K train / 5K validation,
no augmentation, evaluation every 100 iterations for early stopping:

    net     lr     iterations  conv rate  fc rate  output rate (per IMP round)
    Conv-2  2e-4   20K         10%        20%      10%
    Conv-4  3e-4   25K         10%        20%      10%
    Conv-6  3e-4   30K         15%        20%      10%

Layerwise magnitude pruning, survivors rewound to θ0, 15 rounds (fc layers keep 3.5%, conv
layers 21% (Conv-2/4) or 8.7% (Conv-6)). Controls on every round's mask: reinit, random_prune
(LTH), sign_constant and supermask (Zhou et al. 2019). 5 seeds (the papers' CIFAR standard).

Each net's lr, iterations and conv rate differ, so model, train and prune must change together:
`Space.grid` crosses its keys, hence the `linked` points. Needs CIFAR-10's
python batches in $STUDY_DATA_DIR; one GPU share per trial (`study sweep ... --device cuda`).
"""

# Numbers to reproduce (docs/science.md): winning tickets best near 9-15% remaining (LTH: Conv-2,
# Conv-4, Conv-6 peak at 8.8%, 9.2%, 15.1% of the weights), learning faster and reaching higher
# test accuracy than dense there; reinit and random_prune degrade with sparsity; sign_constant
# ≈ lottery; supermask (untrained) ~41% test accuracy on CIFAR-10 (Zhou et al.).

from study.space import Space


def conv(name: str, lr: float, steps: int, conv_rate: float) -> dict:
    """One net with the settings LTH's Table 1 gives it."""
    return {"model": {"name": name}, "train": {"lr": lr, "steps": steps},
            "prune": {"conv_rate": conv_rate}}


space = Space(
    name="lth_conv_cifar",
    description="Frankle & Carbin 2019, Conv-2/4/6 on CIFAR-10; Zhou et al. 2019 controls",
    data={"name": "cifar10", "val_fraction": 0.1},  # 5K of the 50K training images
    train={"optimizer": "adam", "batch_size": 60, "eval_every": 100},
    prune={"granularity": "unstructured", "scope": "layerwise", "criterion": "magnitude",
           "rate": 0.2, "output_rate": 0.1, "rounds": 15, "rewind_step": 0},
    linked=[
        conv("conv2", lr=2e-4, steps=20_000, conv_rate=0.10),
        conv("conv4", lr=3e-4, steps=25_000, conv_rate=0.10),
        conv("conv6", lr=3e-4, steps=30_000, conv_rate=0.15),
    ],
    arms=["reinit", "random_prune", "sign_constant", "supermask"],
    seeds=[0, 1, 2, 3, 4],
    resources={"cpu": 2, "gpu": 0.25},  # small convnets: four trials share a GPU
)
