"""Masks: {name: bool tensor}. Weight masks share their parameter's shape; unit masks are 1-D.

`prune_lowest` is the one pruning step every schedule uses: among the survivors of `mask`,
remove the `fraction` with the lowest scores, per tensor (layerwise) or per pool (global).
"""

from __future__ import annotations

import torch

Masks = dict[str, torch.Tensor]


def full_masks(shapes: dict[str, torch.Size]) -> Masks:
    return {n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()}


def prune_lowest(scores: dict[str, torch.Tensor], mask: Masks, fractions: dict[str, float],
                 pools: dict[str, str] | None = None, min_keep: int = 0) -> Masks:
    """Remove round(fraction x survivors) of the lowest-scoring survivors of each tensor.

    `pools` ({tensor: pool name}, global scope) ranks the tensors of one pool on one threshold
    at the pool's fraction; a tensor alone in its pool, or every tensor without `pools`
    (layerwise), is pruned by itself. `min_keep` survivors per tensor are always kept (a
    structured layer must keep a unit).
    """
    scores = {n: s.detach().float().cpu() for n, s in scores.items()}
    new = {n: m.clone() for n, m in mask.items()}
    groups: dict[str, list[str]] = {}
    for name in fractions:
        groups.setdefault(pools[name] if pools else name, []).append(name)
    for pool, names in groups.items():
        if len(names) > 1:
            shared = {fractions[n] for n in names}
            if len(shared) > 1:
                raise ValueError(f"pool {pool!r}: its tensors have different fractions {shared}")
            _prune_global(scores, new, names, shared.pop(), min_keep)
            continue
        (name,) = names
        alive = new[name].flatten().nonzero().squeeze(1)
        k = min(round(fractions[name] * alive.numel()), max(0, alive.numel() - min_keep))
        order = scores[name].flatten()[alive].argsort(stable=True)
        new[name].view(-1)[alive[order[:k]]] = False
    return new


def _prune_global(scores: dict[str, torch.Tensor], mask: Masks, names: list[str],
                  fraction: float, min_keep: int) -> None:
    alive = {n: mask[n].flatten().nonzero().squeeze(1) for n in names}
    pooled = torch.cat([scores[n].flatten()[alive[n]] for n in names])
    k = round(fraction * pooled.numel())
    drop = torch.zeros(pooled.numel(), dtype=torch.bool)
    drop[pooled.argsort(stable=True)[:k]] = True
    start = 0
    for n in names:
        mine = drop[start : start + alive[n].numel()]
        start += alive[n].numel()
        keep = alive[n].numel() - int(mine.sum())
        if keep < min_keep:  # a layer may not vanish: spare its best units (a few fewer pruned)
            best = scores[n].flatten()[alive[n]].argsort(descending=True, stable=True)
            mine[best[:min_keep]] = False
        mask[n].view(-1)[alive[n][mine]] = False


def random_like(mask: Masks, gen: torch.Generator) -> Masks:
    """A random mask with exactly the same number of survivors per tensor (LTH's control)."""
    out = {}
    for name, m in mask.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=gen)[: int(m.sum())]] = True
        out[name] = flat.view(m.shape)
    return out

