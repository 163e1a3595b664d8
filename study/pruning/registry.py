"""The criterion registry: every ranking rule a pruning plan can name, and what the rest of the
study reads of it.

An entry scores a trained net for one granularity or both (`weights` for unstructured,
`units` for structured: the granularities it supports are the scorers it has) and says what
else it reads: training batches (`prune.saliency_batches` of them), the Hessian estimator
(`prune.hessian`), BatchNorm scales. `PruneSpec` validates a plan against these entries and
`rounds` scores through them, so a new criterion is one function and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from study.models.base import PrunableNet
from study.pruning import criteria, saliency
from study.pruning.hessian import Batches

GRANULARITIES = ("unstructured", "structured")


@dataclass(frozen=True)
class Scoring:
    """What a criterion may read to score a trained net (a higher score: more worth keeping)."""

    trained: PrunableNet
    gen: torch.Generator
    """Random criteria draw from it, and Hutchinson's probes."""
    init: PrunableNet | None = None
    """Unstructured: the net holding each weight's initial value w_0."""
    batches: Batches | None = None
    hessian: str = "gauss_newton"


Scorer = Callable[[Scoring], dict[str, torch.Tensor]]
"""Scores of the trained net: {weight name: scores shaped like it} or {unit group: (size,)}."""


@dataclass(frozen=True)
class Criterion:
    weights: Scorer | None = None
    """Unstructured: a score per prunable weight."""
    units: Scorer | None = None
    """Structured: a score per unit (neuron or filter) of every unit group."""
    data: bool = False
    """Scores the net on training batches (`prune.saliency_batches`)."""
    reads_hessian: bool = False
    """Reads `prune.hessian`, the Hessian diagonal's estimator."""
    needs_batchnorm: bool = False
    """Ranks BatchNorm scales: the model must have BatchNorm."""

    @property
    def granularities(self) -> tuple[str, ...]:
        return tuple(g for g, scorer in zip(GRANULARITIES, (self.weights, self.units)) if scorer)


def elementwise(rule: criteria.WeightRule) -> Scorer:
    """A rule of (w_T, w_0) per tensor as a scorer of every prunable weight of the net."""
    def score(s: Scoring) -> dict[str, torch.Tensor]:
        final, start = dict(s.trained.named_parameters()), dict(s.init.named_parameters())
        return {n: rule(final[n].detach().cpu(), start[n].detach().cpu(), s.gen)
                for n in s.trained.prunable()}
    return score


def _names(s: Scoring) -> list[str]:
    return list(s.trained.prunable())


CRITERIA: dict[str, Criterion] = {
    "magnitude": Criterion(weights=elementwise(criteria.magnitude)),
    "magnitude_increase": Criterion(weights=elementwise(criteria.magnitude_increase)),
    "random": Criterion(weights=elementwise(criteria.random_scores),
                        units=lambda s: criteria.random_units(s.trained, s.gen)),
    "obd": Criterion(weights=lambda s: saliency.obd(s.trained, _names(s), s.batches, s.hessian,
                                                    s.gen),
                     data=True, reads_hessian=True),
    "fisher": Criterion(weights=lambda s: saliency.fisher(s.trained, _names(s), s.batches),
                        data=True),
    "taylor": Criterion(weights=lambda s: saliency.taylor_weights(s.trained, _names(s),
                                                                  s.batches),
                        units=lambda s: saliency.taylor_units(s.trained, s.batches), data=True),
    "l1_filter": Criterion(units=lambda s: criteria.l1_filter(s.trained, s.gen)),
    "bn_scale": Criterion(units=lambda s: criteria.bn_scale(s.trained, s.gen),
                          needs_batchnorm=True),
    "apoz": Criterion(units=lambda s: saliency.apoz(s.trained, s.batches), data=True),
}
"""Every criterion a plan (`prune.criterion`) can name."""

SUPERMASK = Criterion(weights=elementwise(criteria.large_final_same_sign))
"""Zhou et al.'s large_final_same_sign: the supermask arm's rule, computed beside every
unstructured round's mask; not a plan criterion."""


def names_for(granularity: str) -> list[str]:
    """The criteria that rank at `granularity`, in registry order."""
    return [n for n, c in CRITERIA.items() if granularity in c.granularities]


def names_where(flag: str) -> list[str]:
    """The criteria whose entry sets `flag` (data, reads_hessian, needs_batchnorm)."""
    return [n for n, c in CRITERIA.items() if getattr(c, flag)]
