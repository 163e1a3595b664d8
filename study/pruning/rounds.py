"""One pruning round of a ticket, for either granularity: `(plan, trained net, mask) -> mask`.

Iterative rounds prune `rate` of the survivors of the previous round; one-shot rounds prune the
dense net straight to round r's sparsity 1-(1-rate)^r. Either way the mask is derived from the
trained weights of the net it prunes, as in open_lth's pure pruning functions.

A plan is a `study.specs.PruneSpec`, named here for the type checker only: the specs validate
plans against the criterion registry (`study.pruning.registry`), so the arrow runs from the
specs to pruning, never back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from study.models.base import PrunableNet
from study.pruning.hessian import Batches
from study.pruning.masks import Masks, full_masks, prune_lowest
from study.pruning.registry import CRITERIA, SUPERMASK, Criterion, Scoring
from study.pruning.structured import expand

if TYPE_CHECKING:
    from study.specs import PruneSpec


def round_fraction(plan: PruneSpec, kind: str, round_: int) -> float:
    """The fraction of survivors this round removes from a layer of `kind`."""
    rate = plan.rate_for(kind)
    return rate if plan.schedule == "iterative" else 1.0 - (1.0 - rate) ** round_


def initial_mask(plan: PruneSpec, big: PrunableNet) -> Masks:
    """Round 0: nothing pruned (weight masks, or unit masks for structured granularity)."""
    if plan.granularity == "structured":
        return full_masks({g.name: torch.Size([g.size]) for g in big.unit_groups()})
    params = dict(big.named_parameters())
    return full_masks({n: params[n].shape for n in big.prunable()})


def _need_batches(rule: Criterion, name: str, batches: Batches | None) -> None:
    if rule.data and not batches:
        raise ValueError(f"prune.criterion {name!r} scores the net on training batches; "
                         "pass batches= (TrialContext.prune_round draws them)")


def prune_weights(plan: PruneSpec, round_: int, trained: PrunableNet, init: PrunableNet,
                  mask: Masks, gen: torch.Generator, criterion: Criterion | None = None,
                  batches: Batches | None = None) -> Masks:
    """Unstructured: rank weights by `criterion` (default the plan's) and drop the lowest."""
    rule = criterion or CRITERIA[plan.criterion]
    _need_batches(rule, plan.criterion, batches)
    scores = rule.weights(Scoring(trained, gen, init, batches, plan.hessian))
    kinds = trained.prunable()
    fractions = {n: round_fraction(plan, k, round_) for n, k in kinds.items()}
    return prune_lowest(scores, mask, fractions, _pools(plan, kinds))


def prune_units(plan: PruneSpec, round_: int, trained: PrunableNet, mask: Masks,
                gen: torch.Generator, batches: Batches | None = None) -> Masks:
    """Structured: rank the units of `trained` (a net shrunk to `mask`) and drop the lowest."""
    rule = CRITERIA[plan.criterion]
    _need_batches(rule, plan.criterion, batches)
    raw = rule.units(Scoring(trained, gen, batches=batches))
    scores = expand(raw, mask)
    modules = dict(trained.named_modules())
    kinds = {g.name: "conv" if isinstance(modules[g.layer], nn.Conv2d) else "linear"
             for g in trained.unit_groups()}
    fractions = {n: round_fraction(plan, k, round_) for n, k in kinds.items()}
    return prune_lowest(scores, mask, fractions, _pools(plan, kinds), min_keep=1)


def mask_step(plan: PruneSpec, round_: int, source: PrunableNet, previous: Masks,
              theta0: PrunableNet | None, rewound: PrunableNet | None, batches: Batches | None,
              gen: torch.Generator) -> tuple[Masks, Masks | None]:
    """A chain round's pruning step: round `round_`'s mask of the trained `source` net (which
    already has the mask `previous`) and, unstructured, Zhou et al.'s supermask beside it.

    Unstructured criteria read each weight's initial value from `theta0` (θ0); the supermask
    keeps large final weights whose sign is `rewound`'s (θk's). `batches` feed data-dependent
    criteria, `gen` draws random scores and Hutchinson's probes (`study.seeds` says from which
    streams). Nothing is fetched, trained or written: the caller has the artifacts.
    """
    if plan.granularity == "structured":
        return prune_units(plan, round_, source, previous, gen, batches), None
    mask = prune_weights(plan, round_, source, theta0, previous, gen, batches=batches)
    supermask = prune_weights(plan, round_, source, rewound, previous, gen, criterion=SUPERMASK)
    return mask, supermask


def _pools(plan: PruneSpec, kinds: dict[str, str]) -> dict[str, str] | None:
    """Global scope: one pool per rate field of the plan (`PruneSpec.rate_field`); layerwise:
    none, every layer alone."""
    if plan.scope != "global":
        return None
    return {name: plan.rate_field(kind) for name, kind in kinds.items()}
