"""When does the lottery effect appear? Learning rate x warmup x rewind point x granularity.

Frankle & Carbin (ICLR 2019, Section 4) found winning tickets in deep CIFAR-10 nets only at a
small learning rate or with learning-rate warmup; Liu et al. (ICLR 2019, Section 6) found none
at the standard lr 0.1 and none for structured pruning; Frankle et al. ("Stabilizing the LTH" /
"Linear Mode Connectivity and the LTH", 2019-2020) restored them at lr 0.1 by rewinding to an
early iteration k instead of 0. This space crosses all four factors on ResNet-20 and VGG-16:

- training (LTH / open_lth CIFAR protocol): SGD momentum 0.9, weight decay 1e-4, 160 epochs,
  lr x0.1 at 50% and 75%, crop + flip augmentation, 45K train / 5K validation; batch 128 for
  ResNet-20 (open_lth) and 64 for VGG-16 (LTH's VGG-19), linked to the model;
- lr 0.01 or 0.1; warmup 0 or linear over the first 10K iterations (LTH's VGG-19 value; its
  ResNet used 20K of 30K: 10K is a similar share of ResNet-20's 56K iterations here);
- rewind to θ0 or to θk with k = 2000 iterations (the stable point Frankle et al. report:
  ~1000-2000 iterations, 2-4% of training);
- unstructured: global magnitude pruning of 20% of the conv weights per round, output layer not
  pruned (LTH Table 1: "FC 0%"), 12 rounds (6.9% of conv weights left); structured: L1-norm
  filter pruning, 20% of each conv layer's filters per round, 5 rounds (33% of filters left).

Arm: reinit (same mask, fresh init) against lottery, the comparison that defines the effect.
5 seeds. Needs CIFAR-10's python batches in $STUDY_DATA_DIR; GPU workers.
"""

# Numbers to reproduce (docs/science.md): at lr 0.1 from θ0, no tickets (lottery ≈ reinit), in both
# granularities; at lr 0.01 or with warmup, unstructured lottery > reinit down to ~10-20% of the
# weights (but both below the lr 0.1 accuracy, per Liu et al.); with rewinding to k ≈ 2000 at
# lr 0.1, unstructured lottery > reinit without warmup; structured: no effect anywhere.

from study.space import Space

# The library has no "leave this layer unpruned"; a vanishing output rate prunes round(1e-9 x n)
# = 0 of its weights (an output_rate is its own pool, so the global threshold ranks conv weights
# only).
UNPRUNED_OUTPUT = 1e-9

space = Space(
    name="lr_regimes",
    description="Lottery effect vs lr, warmup, rewind point and granularity (ResNet-20, VGG-16)",
    data={"name": "cifar10", "augment": True, "val_fraction": 0.1},
    train={"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "schedule": "step",
           "milestones": [0.5, 0.75], "gamma": 0.1, "epochs": 160, "eval_every": 1000},
    grid={
        "train.lr": [0.01, 0.1],
        "train.warmup_steps": [0, 10_000],
        "prune": [
            {"granularity": "unstructured", "scope": "global", "criterion": "magnitude",
             "rate": 0.2, "output_rate": UNPRUNED_OUTPUT, "rounds": 12},
            {"granularity": "structured", "scope": "layerwise", "criterion": "l1_filter",
             "rate": 0.2, "rounds": 5},
        ],
        "prune.rewind_step": [0, 2000],
    },
    linked=[
        {"model": {"name": "resnet20"}, "train": {"batch_size": 128}},
        {"model": {"name": "vgg16"}, "train": {"batch_size": 64}},
    ],
    arms=["reinit"],
    seeds=[0, 1, 2, 3, 4],
    resources={"cpu": 4, "gpu": 0.5},
)
