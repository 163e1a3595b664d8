"""Stability to SGD noise on MNIST-1D: when is the lottery effect linearly mode connected?

Frankle, Dziugaite, Roy & Carbin ("Linear Mode Connectivity and the Lottery Ticket
Hypothesis", ICML 2020) train two copies of a net from the same weights θk under different SGD
noise (data order, augmentation) and measure the error on the straight line between the two
results. The error barrier (highest error on the path minus the mean of the endpoints' errors)
is near zero when the net is stable; they call it stable below 2%. Their numbers: LeNet-300-100
on MNIST is stable at initialisation (k = 0), dense and as an IMP subnetwork (3.5% of its
weights left), and its IMP subnetworks match the dense accuracy from θ0; ResNet-20 and VGG-16 on
CIFAR-10 at lr 0.1 are unstable at k = 0 and become stable only after rewinding to an early
iteration (dense ResNet-20 at k ≈ 2000, 3% of training; IMP subnetworks of ResNet-20 at 16.8%
and of VGG-16 at 1.5% of the weights at k ≈ 2000 and ≈ 1000 iterations), which is also where
they start to match the dense accuracy; at a lower lr (0.01) or with warmup, ResNet-20's IMP
subnetworks are stable, and match, at k = 0.

This space asks the same question offline, beside the quickstart's lottery comparison: an MLP
(40 -> 64 -> 64 -> 10) at widths 0.5, 1 and 2, SGD with momentum 0.9 at lr 0.01 and 0.1 (the
quickstart's earlier grid, where the lottery effect was largest), 800 steps of batch 100 (22
epochs), rewinding to θk with k = 0, 10 and 50 steps (0, 1.25% and 6.25% of training). One IMP
round per plan: unstructured magnitude pruning to 20% of the hidden weights (the output layer to
60%), and structured L1-norm neuron pruning to half of each hidden layer's neurons. The dense
net at θk (round 0) and each round's subnetwork get two copies under two noise seeds and the
interpolation between them (21 points); reinit trains on every mask for the lottery − reinit
gap. 3 seeds; 720 trials and 438K training steps (the quickstart: 1,890 trials, 4.85M steps),
sized for about 10 minutes of `study sweep` on 2 idle cores.

What the paper would predict here: a small MLP is stable from θ0 like LeNet, so barriers near
0 at every k, and a lottery − reinit gap that does not depend on k.
"""

from study.space import Space

space = Space(
    name="stability",
    description="Frankle et al. 2020 instability analysis on MNIST-1D MLPs, beside lottery−reinit",
    data={"name": "mnist1d"},
    model={"name": "mlp", "hidden": [64, 64]},
    train={"optimizer": "sgd", "momentum": 0.9, "batch_size": 100, "steps": 800,
           "eval_every": 200},
    grid={
        "train.lr": [0.01, 0.1],
        "model.width": [0.5, 1.0, 2.0],
        "prune": [
            {"granularity": "unstructured", "criterion": "magnitude", "rate": 0.8,
             "output_rate": 0.4, "rounds": 1},
            {"granularity": "structured", "criterion": "l1_filter", "rate": 0.5, "rounds": 1},
        ],
        "prune.rewind_step": [0, 10, 50],
    },
    arms=["reinit"],
    stability=[0, 1],
    seeds=[0, 1, 2],
)
