"""Structured surgery: remove whole units and return a physically smaller `nn.Module`.

Unit masks are {group name: (size,) bool} in the index space of the model they are applied to.
`shrink` slices every member tensor of every group and loads the result into the same family
rebuilt at the surviving widths; `zero_units` is its masked twin on the big model, so a test can
check the two compute the same function.
"""

from __future__ import annotations

import torch

from study.models.base import Member, PrunableNet

UnitMask = dict[str, torch.Tensor]


def _indices(keep: torch.Tensor, member: Member) -> torch.Tensor:
    """Positions along `member.dim` that the kept units own (a block of them per unit)."""
    units = keep.nonzero().squeeze(1)
    if member.block == 1:
        return units
    return (units[:, None] * member.block + torch.arange(member.block)).flatten()


def shrink(model: PrunableNet, unit_mask: UnitMask) -> PrunableNet:
    """A copy of `model` without the masked-out units: fewer parameters, same outputs."""
    groups = model.unit_groups()
    missing = {g.name for g in groups} - set(unit_mask)
    if missing:
        raise ValueError(f"unit mask lacks groups {sorted(missing)}")
    for g in groups:
        if unit_mask[g.name].shape != (g.size,) or not unit_mask[g.name].any():
            raise ValueError(f"unit mask {g.name!r} must be a non-empty bool vector of {g.size}")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for g in groups:
        for m in g.members:
            index = _indices(unit_mask[g.name].cpu(), m).to(state[m.tensor].device)
            state[m.tensor] = state[m.tensor].index_select(m.dim, index)
    small = model.rebuild([int(unit_mask[g.name].sum()) for g in groups])
    small.load_state_dict(state)
    device = next(model.parameters()).device
    return small.to(device).train(model.training)


@torch.no_grad()
def zero_units(model: PrunableNet, unit_mask: UnitMask) -> PrunableNet:
    """Zero every tensor slice the masked-out units own, in place (units kept, outputs silenced)."""
    state = model.state_dict()
    for g in model.unit_groups():
        for m in g.members:
            index = _indices(~unit_mask[g.name].cpu(), m).to(state[m.tensor].device)
            state[m.tensor].index_fill_(m.dim, index, 0.0)
    return model


def restrict(unit_mask: UnitMask, previous: UnitMask) -> UnitMask:
    """Re-express a big-model unit mask in the index space of the net `previous` produced."""
    return {name: keep[previous[name]] for name, keep in unit_mask.items()}


def expand(scores: dict[str, torch.Tensor], previous: UnitMask) -> dict[str, torch.Tensor]:
    """Scores of a shrunk net's units, placed back at their big-model positions (-inf if gone)."""
    out = {}
    for name, keep in previous.items():
        full = torch.full(keep.shape, float("-inf"))
        full[keep] = scores[name].float().cpu()
        out[name] = full
    return out
