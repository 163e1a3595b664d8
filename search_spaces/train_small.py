"""Train small without the big net: masks at initialisation and sparse training beside IMP.

The quickstart's grid (its widths, learning rates, seeds, training budget and unstructured IMP
plan, read from `search_spaces/quickstart.py`, so this space follows it), with every arm that
trains a small net without training the big one first, each at the nonzero count of every IMP
round, on the same seeds and data order as the lottery ticket of that round:

- masks chosen at θ0 and trained from θ0: snip (Lee et al. 2019), grasp (Wang et al. 2020),
  synflow (Tanaka et al. 2020, data-free) and random_erk (a random mask with Erdős–Rényi-Kernel
  layer densities), each also with its mask shuffled within every layer (`options.mask_shuffle`,
  Frankle et al. 2021's ablation: same layer densities, the chosen weights forgotten);
- sparse training from scratch, the mask moving every 100 steps until 75% of training: set
  (Mocanu et al. 2018, random regrowth) and rigl (Evci et al. 2020, gradient regrowth), and
  set_b, rigl_b with Scratch-B's budget (up to 2x the steps);
- the controls reinit (Scratch-E: IMP's mask, fresh init) and random_prune (θ0 on a random mask
  with IMP's layer densities).

Structured plans are left out: these methods mask single weights. `study analyze train_small`
reports where each reaches IMP's accuracy (lottery − X, paired by seed, Holm), whether any
at-init criterion beats random with the same layer densities, the effect maps of the strongest
arm of each family, accuracy against nonzero weights and each arm's joint scaling law.

What the papers predict: at-init criteria no better than random_erk or their own shuffled mask
(Frankle et al. 2021), all below IMP at high sparsity; synflow ahead of snip at extreme
sparsity (layer collapse, Tanaka et al.); rigl at or above IMP only with a longer budget (Evci
et al.: 5x), rigl ≥ set.
"""

from search_spaces.quickstart import space as quickstart
from study.space import Space
from study.specs import TRAIN_SMALL_ARMS

space = Space(**{
    **quickstart.model_dump(),
    "name": "train_small",
    "grid": {**quickstart.grid,
             "prune": [p for p in quickstart.grid["prune"]
                       if p.get("granularity", "unstructured") == "unstructured"],
             "options.mask_shuffle": [False, True]},
    "arms": ["reinit", "random_prune", *TRAIN_SMALL_ARMS],
})
