"""Masks chosen at initialisation: scored at θ0, applied before any training (unstructured).

Every rule keeps a given number of weights (`keep`: an IMP round's survivors, so each lines up
with the lottery ticket of its round) and ranks all prunable weights together, as the papers do:

- `snip` (Lee et al., ICLR 2019): connection sensitivity |∂L/∂w ⊙ w| on training batches, one
  shot.
- `grasp` (Wang et al., ICLR 2020): S = -w ⊙ Hg (H the Hessian, g the gradient of the training
  loss), the first-order change of the gradient norm when w is removed. The paper removes the
  weights with the *highest* S (those whose removal the authors argue hurts the gradient flow
  least), so the mask keeps the `keep` lowest S. (The authors' code divides the logits by a
  temperature of 200; the paper does not, nor does this.)
- `synflow` (Tanaka et al., NeurIPS 2020): data-free. With every parameter replaced by |θ|
  and an all-ones input, R = 1ᵀ f(1) is the sum over all input-output paths of the product of
  their weights; the score |∂R/∂w ⊙ w| is the "synaptic flow" through w. Iterated 100 times,
  pruning to density ρ^(k/100) at iteration k (the exponential schedule), so no layer is cut
  off before the others (layer collapse).
- `random_erk`: a random mask with the Erdős–Rényi-Kernel per-layer densities (Evci et al.,
  ICML 2020), the initial mask of sparse training from scratch (`study.pruning.dynamic`).

`AT_INIT` is their registry, as `study.pruning.registry.CRITERIA` is for trained nets.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from study.models.base import PrunableNet
from study.pruning.hessian import Batches
from study.pruning.masks import Masks

SYNFLOW_ITERATIONS = 100
"""Tanaka et al.'s pruning iterations (their Figure 6: 100 suffice up to 10^3.5 compression)."""


# -- layer densities ---------------------------------------------------------------------------
def erk_densities(shapes: dict[str, torch.Size], keep: int) -> dict[str, float]:
    """Erdős–Rényi-Kernel densities for `keep` weights in all: layer l gets ε·Σdims/Πdims of its
    shape (n_in + n_out (+ k_h + k_w) over their product), capped at 1. Layers that the shared ε
    would push past 1 become dense, one by one from the densest, and ε is solved again for the
    rest (Evci et al.'s algorithm)."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    if keep >= sum(sizes.values()):
        return dict.fromkeys(shapes, 1.0)
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        rest = [n for n in shapes if n not in dense]
        budget = keep - sum(sizes[n] for n in dense)
        eps = budget / sum(raw[n] * sizes[n] for n in rest)
        top = max(rest, key=lambda n: raw[n])
        if raw[top] * eps <= 1.0:
            return {n: 1.0 if n in dense else raw[n] * eps for n in shapes}
        dense |= {n for n in rest if raw[n] == raw[top]}


def exact_counts(shapes: dict[str, torch.Size], densities: dict[str, float],
                 keep: int) -> dict[str, int]:
    """Per-layer survivor counts from densities that sum to exactly `keep`: floor of each
    layer's share, the remainder to the largest fractional parts (never past a layer's size)."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    ideal = {n: densities[n] * sizes[n] for n in shapes}
    counts = {n: min(sizes[n], math.floor(ideal[n])) for n in shapes}
    short = keep - sum(counts.values())
    for n in sorted(shapes, key=lambda n: ideal[n] - counts[n], reverse=True):
        if short <= 0:
            break
        if counts[n] < sizes[n]:
            counts[n] += 1
            short -= 1
    return counts


def random_counts(counts: dict[str, int], shapes: dict[str, torch.Size],
                  gen: torch.Generator) -> Masks:
    """A uniformly random mask with exactly counts[l] survivors in layer l."""
    out = {}
    for name, shape in shapes.items():
        flat = torch.zeros(math.prod(shape), dtype=torch.bool)
        flat[torch.randperm(flat.numel(), generator=gen)[: counts[name]]] = True
        out[name] = flat.view(shape)
    return out


def random_erk(shapes: dict[str, torch.Size], keep: int, gen: torch.Generator) -> Masks:
    """A random mask of `keep` weights with ERK layer densities."""
    return random_counts(exact_counts(shapes, erk_densities(shapes, keep), keep), shapes, gen)


def top_global(scores: dict[str, torch.Tensor], keep: int,
               alive: Masks | None = None) -> Masks:
    """The `keep` highest scores over all tensors together (among `alive` ones, if given)."""
    flat = torch.cat([s.detach().double().cpu().flatten() for s in scores.values()])
    if alive is not None:
        flat[~torch.cat([alive[n].flatten() for n in scores])] = -math.inf
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[flat.topk(min(keep, flat.numel()), sorted=False).indices] = True
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = chosen[start : start + s.numel()].view(s.shape)
        start += s.numel()
    return out


def densities_of(mask: Masks) -> dict[str, float]:
    """Each layer's fraction of surviving weights."""
    return {n: float(m.float().mean()) for n, m in mask.items()}


# -- scores ------------------------------------------------------------------------------------
def _mean_gradient(model: nn.Module, weights: list[torch.Tensor], batches: Batches,
                   create_graph: bool = False) -> list[torch.Tensor]:
    """∂/∂w of the mean over batches of each batch's mean cross-entropy."""
    loss = sum(nn.functional.cross_entropy(model(x), y) for x, y in batches) / len(batches)
    return list(torch.autograd.grad(loss, weights, create_graph=create_graph))


def snip_scores(model: PrunableNet, batches: Batches) -> dict[str, torch.Tensor]:
    """|∂L/∂w ⊙ w| for every prunable weight, L the training loss on `batches` (train mode, as
    the net is at the first step; scored on a copy, so no BatchNorm statistic moves)."""
    net = copy.deepcopy(model).train()
    params = dict(net.named_parameters())
    names = list(net.prunable())
    grads = _mean_gradient(net, [params[n] for n in names], batches)
    return {n: (g * params[n]).detach().abs().cpu() for n, g in zip(names, grads)}


def grasp_scores(model: PrunableNet, batches: Batches) -> dict[str, torch.Tensor]:
    """GraSP's S = -w ⊙ Hg for every prunable weight (the paper's sign: a *high* S is pruned):
    g the gradient of the training loss on `batches`, Hg by a double backward through it."""
    net = copy.deepcopy(model).train()
    params = dict(net.named_parameters())
    names = list(net.prunable())
    weights = [params[n] for n in names]
    g = [t.detach() for t in _mean_gradient(net, weights, batches)]
    grads = _mean_gradient(net, weights, batches, create_graph=True)
    hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(grads, g)), weights)
    return {n: -(params[n] * h).detach().cpu() for n, h in zip(names, hg)}


def _linearised(model: PrunableNet) -> tuple[PrunableNet, dict[str, torch.Tensor]]:
    """A float64, eval-mode copy of `model` (BatchNorm an affine map of its running statistics)
    and |θ| of each of its parameters."""
    net = copy.deepcopy(model).double().eval()
    return net, {n: p.detach().abs() for n, p in net.named_parameters()}


def _flow(net: PrunableNet, magnitudes: dict[str, torch.Tensor],
          mask: Masks) -> dict[str, torch.Tensor]:
    """|∂R/∂w ⊙ w| with R = 1ᵀ f(1; |θ| ⊙ mask) for the tensors of `mask`."""
    params = dict(net.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(magnitudes[name] * mask[name].to(p.device, p.dtype) if name in mask
                    else magnitudes[name])
    device = next(net.parameters()).device
    flow = net(torch.ones(1, *net.input_shape, dtype=torch.float64, device=device)).sum()
    grads = torch.autograd.grad(flow, [params[n] for n in mask])
    return {n: (g * params[n]).detach().abs().cpu() for n, g in zip(mask, grads)}


def synflow_scores(model: PrunableNet, mask: Masks) -> dict[str, torch.Tensor]:
    """SynFlow's scores of the weights `mask` keeps: no data is read, only θ's magnitudes."""
    return _flow(*_linearised(model), mask)


def synflow_mask(model: PrunableNet, keep: int,
                 iterations: int = SYNFLOW_ITERATIONS) -> Masks:
    """SynFlow's iterative pruning: at iteration k of n the `total·ρ^(k/n)` highest-scoring
    survivors stay (ρ = keep / total), rescored on the survivors each time; the last keeps
    exactly `keep`."""
    net, magnitudes = _linearised(model)
    mask = {n: torch.ones(magnitudes[n].shape, dtype=torch.bool) for n in model.prunable()}
    total = sum(m.numel() for m in mask.values())
    for k in range(1, iterations + 1):
        target = keep if k == iterations else round(total * (keep / total) ** (k / iterations))
        mask = top_global(_flow(net, magnitudes, mask), target, alive=mask)
    return mask


# -- the registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class InitScoring:
    """What a rule at initialisation may read: θ0, the survivors to keep, batches if it needs
    them, and a generator for random rules."""

    model: PrunableNet
    keep: int
    gen: torch.Generator
    batches: Batches | None = None


@dataclass(frozen=True)
class InitCriterion:
    mask: Callable[[InitScoring], Masks]
    data: bool = False
    """Scores θ0 on training batches (`options.init_batches` of them)."""
    paper: str = ""


def _shapes(model: PrunableNet) -> dict[str, torch.Size]:
    params = dict(model.named_parameters())
    return {n: params[n].shape for n in model.prunable()}


AT_INIT: dict[str, InitCriterion] = {
    "snip": InitCriterion(lambda s: top_global(snip_scores(s.model, s.batches), s.keep),
                          data=True, paper="Lee et al., ICLR 2019"),
    "grasp": InitCriterion(lambda s: top_global({n: -t for n, t in
                                                 grasp_scores(s.model, s.batches).items()},
                                                s.keep),
                           data=True, paper="Wang et al., ICLR 2020"),
    "synflow": InitCriterion(lambda s: synflow_mask(s.model, s.keep),
                             paper="Tanaka et al., NeurIPS 2020"),
    "random_erk": InitCriterion(lambda s: random_erk(_shapes(s.model), s.keep, s.gen),
                                paper="Evci et al., ICML 2020 (ERK densities)"),
}
"""Every mask an at-init arm (an arm of the same name) can choose before training."""
