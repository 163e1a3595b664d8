"""Linear mode connectivity: the error along the straight line between two trained nets.

Frankle et al. (2020) train two copies of a net from the same weights under different SGD noise
and evaluate θ(α) = (1 − α)·θA + α·θB at evenly spaced α. The *error barrier* is the highest
error on the path minus the mean of the two endpoints' errors: near zero, the copies ended in
one linearly connected minimum (the net is *stable* to SGD noise); large, they did not.

A BatchNorm net's running statistics are not a linear function of its weights, so at every
point (endpoints included, so all points are treated alike) they are recomputed from
`BN_BATCHES` training batches, unaugmented, in train mode without a gradient: the statistics
of the very net being evaluated, on the data distribution it is evaluated on.
"""

from __future__ import annotations

import torch
from torch import nn

from study.data import Splits
from study.loop import autocast, evaluate
from study.pruning import draw_batches

POINTS = 21
BN_BATCHES = 32
SPLITS = ("test", "val")
State = dict[str, torch.Tensor]


def point(a: State, b: State, alpha: float) -> State:
    """θ(α) = (1 − α)·a + α·b for floating tensors; integer buffers (BN's batch counter) from a.
    Pruned weights are zero in both copies (same mask), so they stay zero on the whole line."""
    return {k: torch.lerp(a[k], b[k].to(a[k].dtype), alpha) if a[k].is_floating_point()
            else a[k].clone() for k in a}


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_bn(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                 precision: str = "fp32") -> None:
    """Replace every BatchNorm layer's running mean and variance by their average over
    `batches` (momentum None: a cumulative average, so the old statistics leave no trace)."""
    layers = batchnorms(model)
    momenta = [m.momentum for m in layers]
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for x, _ in batches:
        with autocast(x.device, precision):
            model(x)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.train(was_training)


def path(model: nn.Module, a: State, b: State, data: Splits, batch_size: int,
         precision: str = "fp32", points: int = POINTS, seed: int = 0
         ) -> tuple[dict[str, float], State]:
    """Evaluate `model` (the architecture of both states) at `points` evenly spaced α.

    Returns flat metrics — `path_{split}_error_{i:02d}` and `path_{split}_loss_{i:02d}` for
    each split and point, `barrier_{split}` (error) and `loss_barrier_{split}` — and the
    midpoint's state (BN statistics recomputed there), the net left for the run's own
    evaluation. A split without samples (no validation set) gets no metrics.
    """
    if points < 3:
        raise ValueError(f"points: {points}; the path needs at least 3 (endpoints and a middle)")
    needs_bn = bool(batchnorms(model))
    batches = (draw_batches(data.x_train, data.y_train, BN_BATCHES, batch_size,
                            torch.Generator().manual_seed(seed)) if needs_bn else [])
    curves: dict[str, list[tuple[float, float]]] = {s: [] for s in SPLITS}
    middle = points // 2
    midpoint: State = {}
    for i in range(points):
        model.load_state_dict(point(a, b, i / (points - 1)))
        if needs_bn:
            recompute_bn(model, batches, precision)
        for split in SPLITS:
            loss, acc = evaluate(model, getattr(data, f"x_{split}"), getattr(data, f"y_{split}"),
                                 precision)
            curves[split].append((1.0 - acc, loss))
        if i == middle:
            midpoint = {k: v.detach().clone() for k, v in model.state_dict().items()}
    metrics: dict[str, float] = {"path_points": float(points)}
    for split, curve in curves.items():
        if len(getattr(data, f"y_{split}")) == 0:
            continue
        errors = [e for e, _ in curve]
        losses = [loss for _, loss in curve]
        for i, (error, loss) in enumerate(curve):
            metrics[f"path_{split}_error_{i:02d}"] = error
            metrics[f"path_{split}_loss_{i:02d}"] = loss
        metrics[f"barrier_{split}"] = barrier(errors)
        metrics[f"loss_barrier_{split}"] = barrier(losses)
    return metrics, midpoint


def barrier(values: list[float]) -> float:
    """Highest value on the path minus the mean of the two endpoints' values."""
    return max(values) - (values[0] + values[-1]) / 2
