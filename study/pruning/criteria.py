"""Ranking criteria that read weights only: a higher score means more worth keeping.

Unstructured criteria score each weight from its trained value w_T and its initial value w_0;
structured criteria score each unit (neuron or filter) of a `UnitGroup`. The criteria that also
read training data (obd, fisher, taylor, apoz) are in `saliency.py`; `rounds.py` dispatches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from study.models.base import PrunableNet, UnitGroup

WeightCriterion = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def magnitude(w_final: torch.Tensor, w_init: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """LTH's large_final: keep the weights that ended large."""
    return w_final.abs()


def magnitude_increase(w_final, w_init, gen) -> torch.Tensor:
    """Zhou et al.: |w_T| - |w_0|, keep the weights that grew most."""
    return w_final.abs() - w_init.abs()


def random_scores(w_final, w_init, gen) -> torch.Tensor:
    return torch.rand(w_final.shape, generator=gen).to(w_final.device)


def large_final_same_sign(w_final, w_init, gen) -> torch.Tensor:
    """Zhou et al.'s supermask criterion: large final magnitude, and the sign it started with."""
    same = torch.sign(w_final) == torch.sign(w_init)
    return torch.where(same, w_final.abs(), torch.full_like(w_final, -1.0))


WEIGHT_CRITERIA: dict[str, WeightCriterion] = {
    "magnitude": magnitude,
    "magnitude_increase": magnitude_increase,
    "random": random_scores,
    "large_final_same_sign": large_final_same_sign,
}


def unit_scores(model: PrunableNet, criterion: str,
                gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Score every unit of every group: {group name: (size,) scores}."""
    modules = dict(model.named_modules())
    return {g.name: _unit_score(modules, g, criterion, gen) for g in model.unit_groups()}


def _unit_score(modules: dict[str, nn.Module], group: UnitGroup, criterion: str,
                gen: torch.Generator) -> torch.Tensor:
    if criterion == "l1_filter":  # Li et al. 2017: L1 norm of each filter's (row's) weights
        return modules[group.layer].weight.detach().abs().flatten(1).sum(1)
    if criterion == "bn_scale":  # Network Slimming: |gamma| of the unit's BatchNorm
        return modules[group.batchnorm].weight.detach().abs()
    if criterion == "random":
        return torch.rand(group.size, generator=gen)
    raise ValueError(f"unknown structured criterion {criterion!r}; known: bn_scale, l1_filter, "
                     "random")
