"""Ranking rules that read weights only: a higher score means more worth keeping.

Unstructured rules score each weight from its trained value w_T and its initial value w_0;
structured rules score each unit (neuron or filter) of every `UnitGroup` of a net. The rules
that also read training data (obd, fisher, taylor, apoz) are in `saliency.py`; the registry
that names them all, and says what each reads, is `registry.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from study.models.base import PrunableNet

WeightRule = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
"""(w_T, w_0, generator) of one tensor -> one score per weight."""


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


def l1_filter(model: PrunableNet, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Li et al. 2017: the L1 norm of each filter's (row's) weights."""
    modules = dict(model.named_modules())
    return {g.name: modules[g.layer].weight.detach().abs().flatten(1).sum(1)
            for g in model.unit_groups()}


def bn_scale(model: PrunableNet, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Network Slimming (Liu et al. 2017): |gamma| of each unit's BatchNorm."""
    modules = dict(model.named_modules())
    return {g.name: modules[g.batchnorm].weight.detach().abs() for g in model.unit_groups()}


def random_units(model: PrunableNet, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {g.name: torch.rand(g.size, generator=gen) for g in model.unit_groups()}
