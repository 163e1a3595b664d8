"""Masks, criteria (weight-only and data-dependent), pruning rounds and structured surgery."""

from study.pruning.masks import Masks, prune_lowest, random_like
from study.pruning.rounds import (
    initial_mask,
    mask_step,
    prune_units,
    prune_weights,
    round_fraction,
)
from study.pruning.saliency import draw_batches
from study.pruning.structured import restrict, shrink, zero_units

__all__ = ["Masks", "draw_batches", "initial_mask", "mask_step", "prune_lowest", "prune_units",
           "prune_weights", "random_like", "restrict", "round_fraction", "shrink", "zero_units"]
