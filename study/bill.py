"""The training compute bill: what a run's own training cost, and what the runs it needed cost.

Prune-big and train-small are compared at equal nonzero weights, but not at equal cost: IMP's
round r descends from r+1 full trainings of the big net, a small dense net trains once. Every
trained run records `train_flops` (its own training), `upstream_train_flops` (the training of
everything it starts from) and `cumulative_train_flops` (their sum). Runs whose weights others
start from (dense, chain rounds, stability copies) keep their bill in `bill.pt`, which the
runs downstream read like any artifact.

FLOPs are counted as `study.models.count` counts them: multiply-accumulates of the conv and
linear layers, only the nonzero weights; a training step costs 3 forward passes (forward, and
a backward pass of twice its cost: Kaplan et al. 2020, and RigL's accounting) per sample.
Evaluations are not training and are not counted.
"""

from __future__ import annotations

import math

import torch

from study.arm_registry import TRAIN_SMALL
from study.context import TrialContext
from study.specs import TrialSpec

BILL = "bill.pt"
PASSES_PER_STEP = 3
"""Forward-pass equivalents per training sample: the forward pass and a backward pass costing
two (the gradients of the activations and of the weights)."""


def train_flops(forward_flops: float, batch_size: int, steps: int) -> float:
    """Training FLOPs of `steps` steps of `batch_size` samples at `forward_flops` per sample."""
    return float(PASSES_PER_STEP * forward_flops * batch_size * steps)


def artifact(own: float, upstream: float) -> dict[str, torch.Tensor]:
    """The bill a run keeps for the runs that start from its weights."""
    return {"own": torch.tensor(own, dtype=torch.float64),
            "upstream": torch.tensor(upstream, dtype=torch.float64)}


def upstream(ctx: TrialContext) -> float:
    """The training FLOPs of what the trial starts from (nan where an upstream run recorded no
    bill: a store written before bills).

    A chain round: everything its source net cost (the dense net, then each earlier round). An
    arm on round r's mask: what that mask cost, the round's own upstream, whether it starts
    from θ0, a fresh init or the source net (the round's retraining is not needed to find its
    mask). small_dense and small_dense_b: nothing. A stability copy of the dense net: the dense
    run up to its rewind step; an interpolation: both copies.
    """
    spec = ctx.spec
    if spec.stage == "dense" or spec.arm in TRAIN_SMALL:
        return 0.0
    if spec.arm == "interpolation":
        (own_a, up_a), (own_b, _) = (_read(ctx, p) for p in spec.parents())
        return up_a + own_a + own_b
    dense, *rounds = spec.parents()
    if spec.round == 0:
        own, _ = _read(ctx, dense)
        return own * spec.prune.rewind_step / ctx.total_steps
    if spec.stage == "imp":
        own, up = _read(ctx, rounds[-1] if rounds else dense)
        return own + up
    return _read(ctx, rounds[0])[1]


def _read(ctx: TrialContext, parent: TrialSpec) -> tuple[float, float]:
    """(own, upstream) FLOPs from a parent's bill; nan for a parent that kept none."""
    try:
        bill = ctx.fetch(parent, BILL)
    except (LookupError, FileNotFoundError):
        return math.nan, math.nan
    return float(bill["own"]), float(bill["upstream"])
