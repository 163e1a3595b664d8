"""Parameter and FLOP counts, dense and counting only unmasked weights.

Pruned-big and trained-small nets share one x-axis only if both are counted the same way:
`weights` are the prunable (conv and linear) weights, `params` everything trainable, and FLOPs
are the multiply-accumulates of conv and linear layers for one sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from study.models.base import PrunableNet

Masks = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Counts:
    total_params: int
    nonzero_params: int
    total_weights: int
    nonzero_weights: int
    flops: int
    nonzero_flops: int


def count(model: PrunableNet, masks: Masks | None = None) -> Counts:
    """Counts for `model` with `masks` applied ({param name: 0/1 tensor}, None = unmasked)."""
    masks = masks or {}
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    pruned = sum(int((m == 0).sum()) for m in masks.values())
    prunable = model.prunable()
    weights = sum(params[n].numel() for n in prunable)
    flops, nonzero_flops = _flops(model, masks)
    return Counts(total, total - pruned, weights, weights - pruned, flops, nonzero_flops)


def _flops(model: PrunableNet, masks: Masks) -> tuple[int, int]:
    """Trace one sample through the model; each layer's MACs scale with its nonzero weights."""
    dense, nonzero = [0], [0]

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        name = names[module]
        positions = output[0, 0].numel() if isinstance(module, nn.Conv2d) else 1
        density = float(masks[name].float().mean()) if name in masks else 1.0
        dense[0] += positions * module.weight.numel()
        nonzero[0] += round(positions * module.weight.numel() * density)

    names = {m: f"{n}.weight" for n, m in model.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d))}
    handles = [m.register_forward_hook(hook) for m in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, *model.input_shape, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return dense[0], nonzero[0]
