"""Lecture: prune a little, fine-tune, repeat — against one big cut and against training small.

The pruning loop as the course lecture teaches it (Han et al. 2015's iterative prune and
fine-tune, the pipeline Liu et al. 2019's Rethinking compares Scratch-E and Scratch-B against):
train a large net; score every weight or neuron (by magnitude, or by a data-driven importance);
remove the least important; fine-tune the survivors without rewinding; score again; repeat in
small steps. The lecture's claim: small steps (about 10-20% a round), because one large cut can
damage the net beyond what fine-tuning recovers.

Here, offline: an MLP 40 -> 64 -> 64 -> 10 on MNIST-1D, SGD + momentum 0.9 at lr 0.1, batch
100, 600 steps with the lr divided by 10 halfway; fine-tuning at that final lr (0.01) for 10% of
the dense budget (60 steps) per round. Fine-tune chains (`prune.retrain` 'finetune') at 20% a
round, for:

- weights, 8 rounds (17% of the hidden weights left; the output layer 10% a round): magnitude,
  and Fisher (the empirical Fisher information x w², a data-driven importance in the spirit of
  the lecture's lifelong-learning scores);
- neurons, 6 rounds (26% of each hidden layer's neurons left): L1 norm of a neuron's incoming
  weights, and APoZ (how often a neuron is zero).

Each chain twice: `iterative` (small steps: round r prunes round r-1's fine-tuned net) and
`oneshot` (one big cut: the dense net pruned straight to round r's sparsity, fine-tuned as long
as the r iterative rounds together, so the comparison is budget-matched and paired by seed).
Beside them, IMP (rewind to θ0 and retrain, the lottery arm) with unstructured magnitude pruning,
and on every round's mask Scratch-E (`reinit`), Scratch-B and `small_dense` (a narrower dense net
with as many weights; left out of the neuron chains, where the pruned net is that narrower net
and small_dense would repeat Scratch-E). 5 seeds: 1,165 trials (1,285 with those repeats, in
the run measured below) and 838K training steps; the sweep's plan puts
them at about 5 minutes on 2 idle cores (measured: 19.6 minutes on 2 cores that two other jobs
shared, load 9-14).

`study analyze lecture` draws the damage-and-recovery curve (accuracy right after each cut and
after its fine-tuning, iterative vs one-shot), gives the paired verdict on "small steps beat one
cut" at each sparsity, and plots the fine-tune chain beside IMP's lottery and Scratch-E/B. What
the lecture predicts: the one-shot cut damages far more at high sparsity and recovers less, so
small steps win there (most for neurons, whose removal is coarser); at low sparsity the two
tie. Rethinking predicts Scratch-B about level with fine-tuning for structured pruning.

Measured here (1,285 trials, 5 min 31 s for sweep and analysis on 2 idle cores of an AMD EPYC;
5 seeds, dense nets at 63%): right after the cut one cut is 0.6-28 points worse
than small steps, the gap growing with sparsity, but fine-tuning closes it: no difference after
fine-tuning at any sparsity down to 19% of the weights or 16% of the neurons (one cut 0.3-1.0
points ahead on average). IMP's lottery beats every fine-tune chain at high sparsity (the
lottery retrains the whole budget each round); Scratch-B beats the APoZ chains by 10-17 points.
"""

from study.space import Space

CHAIN = {"retrain": "finetune", "finetune_fraction": 0.1}
UNSTRUCTURED = {"granularity": "unstructured", "rate": 0.2, "output_rate": 0.1, "rounds": 8}
STRUCTURED = {"granularity": "structured", "rate": 0.2, "rounds": 6}

space = Space(
    name="lecture",
    description="the lecture's prune-a-little-and-fine-tune loop vs one big cut vs training small",
    data={"name": "mnist1d"},
    model={"name": "mlp", "hidden": [64, 64]},
    train={"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 100, "steps": 600,
           "schedule": "step", "milestones": [0.5], "gamma": 0.1, "eval_every": 150},
    grid={
        "prune": [
            *({**CHAIN, **UNSTRUCTURED, "criterion": c, "schedule": s}
              for c in ("magnitude", "fisher") for s in ("iterative", "oneshot")),
            *({**CHAIN, **STRUCTURED, "criterion": c, "schedule": s}
              for c in ("l1_filter", "apoz") for s in ("iterative", "oneshot")),
            {**UNSTRUCTURED, "criterion": "magnitude"},  # IMP, for the lottery beside them
        ],
    },
    arms=["reinit", "scratch_b", "small_dense"],
    seeds=[0, 1, 2, 3, 4],
)
