"""Data-dependent criteria: the trained net is scored on training batches, not by its weights alone.

Weights (unstructured), higher = more worth keeping:
- `obd`: ½·h_ii·w_i² (LeCun et al. 1990), the loss increase a second-order model predicts for
  zeroing w_i; h_ii from `prune.hessian` (see `hessian.py`). With `hutchinson` (or BatchNorm
  under `exact`) h_ii can be negative: removing such a weight is predicted to *lower* the loss,
  so it goes first, as the formula says.
- `fisher`: ½·F_ii·w_i², OBD with the empirical Fisher F in place of the Hessian (EWC's
  importance x w²; the ½ keeps the two on one scale and changes no ranking).
- `taylor`: |w_i·∂L/∂w_i| (Molchanov et al. 2017/2019), the first-order loss change, computed per
  batch and averaged: at a trained minimum the full-data gradient nearly vanishes, the per-batch
  products do not.

Units (structured), higher = more worth keeping:
- `apoz`: 1 - the Average Percentage of Zeros of the unit's post-ReLU output (Hu et al. 2016).
  Every family here applies ReLU directly to a group's layer output (after its BatchNorm when
  it has one): MLP relu(fc(x)), ConvNet relu(bn(conv(x))), ResNet relu(bn1(conv1(x))). So a
  forward hook on the BatchNorm (or the layer, without one) sees the pre-activation a, and the
  unit is zero exactly where a <= 0. Hooking the module keeps the models free of pruning code.
- `taylor`: |Σ w·∂L/∂w| over the unit's *gate* parameters (its BatchNorm γ, β when it has one,
  else its row of weights and its bias). Zeroing the gate removes the unit exactly, so the sum is
  the first-order loss change of removing it (Molchanov et al. 2019, absolute value instead of
  square: same ranking). Without BatchNorm's γ the filter itself is the gate; with BatchNorm
  the filter's own Σ w·g is ~0 (BN is scale invariant), hence the BN parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from study.models.base import PrunableNet, UnitGroup
from study.pruning.hessian import Batches, fisher_diagonal, hessian_diagonal


def draw_batches(x: torch.Tensor, y: torch.Tensor, count: int, batch_size: int,
                 gen: torch.Generator) -> Batches:
    """`count` batches of distinct training samples (a fresh permutation when one runs out)."""
    n, batch = len(y), min(batch_size, len(y))
    order = torch.cat([torch.randperm(n, generator=gen)
                       for _ in range(-(-count * batch // n))]).to(y.device)
    return [(x[order[i * batch : (i + 1) * batch]], y[order[i * batch : (i + 1) * batch]])
            for i in range(count)]


class _EvalMode:
    """Score the net as it is evaluated (BN running statistics), then restore its mode."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was = model, model.training

    def __enter__(self) -> nn.Module:
        return self.model.eval()

    def __exit__(self, *exc) -> None:
        self.model.train(self.was)


def obd(model: PrunableNet, names: list[str], batches: Batches, hessian: str,
        gen: torch.Generator) -> dict[str, torch.Tensor]:
    """½·h_ii·w_i² per weight of the tensors `names`, h_ii estimated by `hessian`."""
    with _EvalMode(model):
        return _half_curvature_w2(model, names,
                                  hessian_diagonal(model, names, batches, hessian, gen))


def fisher(model: PrunableNet, names: list[str], batches: Batches) -> dict[str, torch.Tensor]:
    """½·F_ii·w_i² per weight of the tensors `names`, F the empirical Fisher's diagonal."""
    with _EvalMode(model):
        return _half_curvature_w2(model, names, fisher_diagonal(model, names, batches))


def taylor_weights(model: PrunableNet, names: list[str],
                   batches: Batches) -> dict[str, torch.Tensor]:
    """|w_i·∂L/∂w_i| per weight of the tensors `names`, averaged over batches."""
    params = dict(model.named_parameters())
    with _EvalMode(model):
        return _mean_abs_products(model, {n: [params[n]] for n in names}, batches,
                                  per_unit=False)


def apoz(model: PrunableNet, batches: Batches) -> dict[str, torch.Tensor]:
    """1 - the average percentage of zeros of each unit's post-ReLU output."""
    modules = dict(model.named_modules())
    with _EvalMode(model):
        return _active_fraction(model, modules, model.unit_groups(), batches)


def taylor_units(model: PrunableNet, batches: Batches) -> dict[str, torch.Tensor]:
    """|Σ w·∂L/∂w| over each unit's gate parameters, averaged over batches."""
    modules = dict(model.named_modules())
    gates = {g.name: _gate(modules, g) for g in model.unit_groups()}
    with _EvalMode(model):
        return _mean_abs_products(model, gates, batches, per_unit=True)


def _half_curvature_w2(model: nn.Module, names: list[str],
                       curvature: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: 0.5 * curvature[n] * params[n].detach().square() for n in names}


def _gate(modules: dict[str, nn.Module], group: UnitGroup) -> list[torch.Tensor]:
    owner = modules[group.batchnorm or group.layer]
    return [p for p in (owner.weight, owner.bias) if p is not None]


def _mean_abs_products(model: nn.Module, sets: dict[str, list[torch.Tensor]],
                       batches: Batches, per_unit: bool) -> dict[str, torch.Tensor]:
    """Batch mean of |w·∂L/∂w|: elementwise for a weight, or per unit |Σ w·∂L/∂w| over a set
    of tensors indexed by unit along dim 0."""
    flat = [t for ts in sets.values() for t in ts]
    out = {name: 0.0 for name in sets}
    for x, y in batches:
        grads = iter(torch.autograd.grad(nn.functional.cross_entropy(model(x), y), flat))
        for name, tensors in sets.items():
            prods = [t.detach() * next(grads) for t in tensors]
            if per_unit:
                score = sum(p.flatten(1).sum(1) if p.dim() > 1 else p for p in prods)
            else:
                (score,) = prods
            out[name] = out[name] + score.abs() / len(batches)
    return out


def _active_fraction(model: nn.Module, modules: dict[str, nn.Module], groups: list[UnitGroup],
                     batches: Batches) -> dict[str, torch.Tensor]:
    zeros = {g.name: torch.zeros(g.size) for g in groups}
    seen = dict.fromkeys(zeros, 0)

    def hook_for(name: str):
        def hook(module: nn.Module, args, out: torch.Tensor) -> None:
            dims = [d for d in range(out.dim()) if d != 1]  # (B, units, *positions)
            zeros[name] += (out <= 0).sum(dims).float().cpu()
            seen[name] += out.numel() // out.shape[1]
        return hook

    handles = [modules[g.batchnorm or g.layer].register_forward_hook(hook_for(g.name))
               for g in groups]
    try:
        with torch.no_grad():
            for x, _ in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
    return {name: 1.0 - zeros[name] / seen[name] for name in zeros}
