"""Rethinking the Value of Network Pruning (Liu et al., ICLR 2019): structured pruning, CIFAR-10.

Protocol (Liu et al., Section 4 and Appendix): VGG-16 (with BatchNorm) and ResNet-56, SGD with
momentum 0.9, batch 64, 160 epochs, lr 0.1 multiplied by 0.1 at 50% and 75% of training, weight
decay 1e-4, standard crop + flip augmentation; 5 seeds. Two structured methods, each one-shot
from the trained dense net:

- L1-norm filter pruning (Li et al. 2017): the filters of each conv layer with the smallest
  L1 norms, 30% per level (70%, 49%, 34% of the filters left), dense net trained normally;
- Network Slimming (Liu et al. 2017): channels ranked by |BatchNorm scale| on one global
  threshold, dense net trained with an L1 penalty of 1e-4 on the scales (without it the scales
  carry no sparsity and the ranking means little), 45% per level (55%, then 30% of the channels
  left: the paper's 70% pruned for VGG).

Arms on each pruned architecture: finetune (the trained weights, 40 epochs at lr 1e-3), reinit
(= Scratch-E: same epochs as the dense net) and scratch_b (Scratch-B: epochs x FLOPs ratio,
at most 2x); lottery runs as always (θ0 on the pruned architecture: their Section 6 re-test).

Fine-tuning starts from the trained dense net (one-shot), at 1e-3, the dense schedule's final
lr; Network Slimming's BN-L1 penalty trains the dense net only, as `-sr` does in their code.

Deviations: Li et al. and Liu et al. prune hand-picked layers at hand-picked rates (VGG-16-A,
ResNet-56-A/B); here every prunable layer loses the same fraction. The ResNet is open_lth's
(1x1 projection shortcuts and its init), not the Rethinking code's zero-padded shortcuts. 2% of
the training images (1,000) are held out for validation (the paper trains on all 50K),
because the trial summary needs a validation split to report its metrics.
Method and its dense-training penalty change together (train.bn_l1 with prune.criterion), so
they are `linked` points. Needs CIFAR-10's python batches in $STUDY_DATA_DIR.
"""

# Numbers to reproduce (docs/science.md, Liu et al. Table 1, mean of 5 runs): VGG-16 L1-norm (A):
# unpruned 93.63, fine-tuned 93.41, Scratch-E 93.62, Scratch-B 93.78; the finding is
# Scratch-B >= fine-tuned (and Scratch-E close) for structured pruning, on both methods and
# both nets; lottery ≈ reinit at lr 0.1 (no winning-ticket effect for structured pruning).

from study.space import Space

L1_NORM = {"prune": {"criterion": "l1_filter", "scope": "layerwise", "rate": 0.3, "rounds": 3},
           "train": {"bn_l1": 0.0}}
SLIMMING = {"prune": {"criterion": "bn_scale", "scope": "global", "rate": 0.45, "rounds": 2},
            "train": {"bn_l1": 1e-4}}

space = Space(
    name="rethinking_cifar",
    description="Liu et al. 2019, Rethinking the Value of Network Pruning: structured, CIFAR-10",
    data={"name": "cifar10", "augment": True, "val_fraction": 0.02},
    train={"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
           "schedule": "step", "milestones": [0.5, 0.75], "gamma": 0.1, "batch_size": 64,
           "epochs": 160, "eval_every": 1000},
    prune={"granularity": "structured", "schedule": "oneshot", "rewind_step": 0},
    grid={"model.name": ["vgg16", "resnet56"]},
    linked=[L1_NORM, SLIMMING],
    options={"finetune_fraction": 0.25, "finetune_lr": 1e-3, "scratch_b_cap": 2.0},
    arms=["finetune", "reinit", "scratch_b"],
    seeds=[0, 1, 2, 3, 4],
    resources={"cpu": 4, "gpu": 0.5},
)
