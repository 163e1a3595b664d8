"""Digits scaling: prune a big MLP or train a small one, at four widths, offline (~10 min, 2 cores).

scikit-learn's 8x8 digits (1,437 train / 360 test, 10% of train held out for validation), the
LeNet-style MLP (300, 100 hidden at width 1) at widths 0.25, 0.5, 1 and 2, Adam 1.2e-3 as in LTH.
Each width is pruned by IMP (unstructured, layerwise magnitude, 50% of hidden weights and 25% of
the output layer per round: 50, 25, 12.5% remaining) and by whole neurons (structured, L1 norm,
40% per round: 60, 36, 22% of the units left). Every round's mask is trained by the "prune big"
arms (lottery, finetune) and the "train small" arms (reinit = Scratch-E, scratch_b,
small_dense: a narrower dense net with as many weights), 3 seeds. Not a paper protocol: a small
real-data version of the scaling question, to see the curves before spending a GPU cluster.
"""

# What docs/science.md leads us to expect (LTH, Rethinking; no paper number on digits):
# - unstructured: lottery >= reinit at 12.5% remaining, the gap largest at the narrowest width;
# - structured: reinit / scratch_b / small_dense match or beat finetune (Rethinking's finding);
# - at equal nonzero weights, a pruned wide net vs small_dense of the same size is the scaling
#   comparison: the curves over width show where pruning big stops paying.

from study.space import Space

space = Space(
    name="digits_scaling",
    data={"name": "digits"},
    model={"name": "mlp"},
    train={"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "steps": 600, "eval_every": 50},
    grid={
        "model.width": [0.25, 0.5, 1.0, 2.0],
        "prune": [
            {"granularity": "unstructured", "criterion": "magnitude", "rate": 0.5,
             "output_rate": 0.25},
            {"granularity": "structured", "criterion": "l1_filter", "rate": 0.4},
        ],
    },
    prune={"rounds": 3},
    # Rethinking fine-tunes at the schedule's last lr: a constant-lr Adam run ends at 1.2e-3,
    # which is also the default (`TrainSpec.final_lr`); kept explicit so the trial ids stay.
    options={"finetune_lr": 1.2e-3},
    arms=["finetune", "reinit", "scratch_b", "small_dense"],
    seeds=[0, 1, 2],
)
