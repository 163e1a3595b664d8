"""Scaling: the quickstart's question at a larger scale, about an hour on 2 cores (offline).

The quickstart's MNIST-1D MLP (40 -> h -> h -> 10, SGD + momentum 0.9, batch 100) at five
widths, h = 25 to 400 (model.width 0.25-4 of hidden 100-100: a 16x span, 1.9K to 180K
weights), three learning rates (0.01, 0.03, 0.1), the same two pruning plans (unstructured
layerwise magnitude to under 10% of the weights, structured neurons by L1 norm to under 20%),
5 seeds, and every control arm the scaling question needs: reinit (Scratch-E), scratch_b,
finetune, small_dense, and the Deconstructing / LTH controls sign_constant (±α with θ0's
signs) and random_prune (θ0 on a random mask), and on the unstructured plan the train-small
arms (`search_spaces/train_small.py`: snip, grasp, synflow, random_erk, set, rigl, set_b,
rigl_b), which never train the big net (3,600 of its 9,075 trials; the hour above was
measured without them). The analysis is the quickstart's: the effect map
over width x density, each arm's joint scaling law with its extrapolation check, the
prune-big / train-small crossing, each arm at its own learning rate, and the power of the tests.
"""

# What to expect beyond the quickstart (docs/science.md): sign_constant ≈ lottery (Zhou et al.: the
# sign is what matters); random_prune ≈ reinit or worse (the mask matters); a third lr between
# the two shows whether the effect fades gradually with the learning rate; width 4 tests the
# joint law's extrapolation from the four smaller widths.

from study.space import Space
from study.specs import TRAIN_SMALL_ARMS

space = Space(
    name="scaling",
    data={"name": "mnist1d"},
    model={"name": "mlp", "hidden": [100, 100]},
    train={"optimizer": "sgd", "momentum": 0.9, "batch_size": 100, "steps": 3000,
           "schedule": "cosine", "eval_every": 300},
    grid={
        "model.width": [0.25, 0.5, 1.0, 2.0, 4.0],
        "train.lr": [0.01, 0.03, 0.1],
        "prune": [
            {"granularity": "unstructured", "criterion": "magnitude", "rate": 0.4,
             "output_rate": 0.2, "rounds": 6},
            {"granularity": "structured", "criterion": "l1_filter", "rate": 0.25, "rounds": 5},
        ],
    },
    arms=["reinit", "scratch_b", "finetune", "small_dense", "sign_constant", "random_prune",
          *TRAIN_SMALL_ARMS],
    seeds=[0, 1, 2, 3, 4],
)
