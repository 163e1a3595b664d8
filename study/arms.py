"""The arms of SCIENCE.md, each a small function from a trial's context to what it trains.

Every arm returns a `Setup`: the net to train, its weight masks (unstructured) or none (a
structured net is physically smaller), the budget and where in the schedule it starts. One
runner (`study.trial`) then trains, evaluates and records it, so no arm has a loop of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from study import interpolate
from study.context import TrialContext
from study.models import PrunableNet, count
from study.pruning import Masks, agnostic, random_like, shrink
from study.specs import TrainSpec

FRESH = 10_000_019  # offset of the seed of every fresh ("random reinit") initialisation


@dataclass
class Setup:
    model: PrunableNet
    masks: Masks | None
    total_steps: int
    start_step: int = 0
    train: TrainSpec | None = None  # None: the dense run's TrainSpec
    lr: float | None = None
    trains: bool = True
    keep_final: bool = False  # record the trained weights (final.pt) for a later trial
    artifacts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _on_mask(ctx: TrialContext, state: dict[str, torch.Tensor], mask: Masks) -> Setup:
    """`state` (big-net weights) on the round's mask: masked, or shrunk if structured."""
    model = ctx.big(state)
    if ctx.structured:
        return Setup(shrink(model, mask), None, ctx.total_steps)
    return Setup(model, mask, ctx.total_steps)


def _fresh(ctx: TrialContext) -> Setup:
    """A fresh random init of the pruned architecture (structured: the small net's own init)."""
    seed = ctx.spec.dense.seed + FRESH
    if ctx.structured:
        return Setup(ctx.rebuild_small(ctx.mask, seed), None, ctx.total_steps)
    return Setup(ctx.fresh_big(seed), ctx.mask, ctx.total_steps)


def dense(ctx: TrialContext) -> Setup:
    model = ctx.theta0_model()
    return Setup(model, None, ctx.total_steps,
                 artifacts={"init.pt": {k: v.clone() for k, v in model.state_dict().items()}})


def lottery(ctx: TrialContext) -> Setup:
    """IMP round r: prune the source net, rewind survivors to θk and train (LTH). As an arm
    (stage "arm", e.g. when tuning its lr) it retrains the round's existing ticket."""
    if ctx.spec.stage == "imp":
        mask, extra = ctx.prune_round()
        artifacts = {"mask.pt": mask, "init.pt": ctx.rewind, **extra}
    else:
        mask, artifacts = ctx.mask, {}
    setup = _on_mask(ctx, ctx.rewind, mask)
    setup.start_step = ctx.spec.prune.rewind_step
    setup.artifacts = artifacts
    return setup


def reinit(ctx: TrialContext) -> Setup:
    return _fresh(ctx)


def scratch_b(ctx: TrialContext) -> Setup:
    """Scratch-B: the budget scales by FLOPs(dense)/FLOPs(pruned), counted *after* pruning
    (the Rethinking code took the ratio before loading the pruned weights: Scratch-B = E)."""
    setup = _fresh(ctx)
    pruned = count(setup.model, setup.masks).nonzero_flops
    ratio = min(ctx.spec.options.scratch_b_cap, ctx.dense_counts.flops / pruned)
    setup.total_steps = round(ctx.total_steps * ratio)
    setup.metrics["budget_ratio"] = ratio
    return setup


def finetune(ctx: TrialContext) -> Setup:
    """Rethinking's fine-tuning: the trained dense weights, pruned, trained briefly at small lr."""
    setup = _on_mask(ctx, ctx.fetch_dense("final.pt"), ctx.mask)
    opts, train = ctx.spec.options, ctx.spec.dense.train
    setup.total_steps = max(1, round(ctx.total_steps * opts.finetune_fraction))
    setup.lr = opts.finetune_lr or train.lr * 0.01
    setup.train = train.model_copy(update={"schedule": "constant", "warmup_steps": 0})
    return setup


def sign_constant(ctx: TrialContext) -> Setup:
    """Zhou et al.: survivors set to ±α with θk's signs, α = the std of that layer's θ0."""
    theta0 = ctx.fetch_dense("init.pt")
    state = dict(ctx.rewind)
    for name in ctx.big_template.prunable():
        state[name] = torch.sign(state[name]) * theta0[name].float().std()
    setup = _on_mask(ctx, state, ctx.mask)
    setup.start_step = ctx.spec.prune.rewind_step
    return setup


def random_prune(ctx: TrialContext) -> Setup:
    """θk on a random mask with the same number of survivors per layer (LTH's control)."""
    gen = torch.Generator().manual_seed(ctx.spec.dense.seed * 1009 + ctx.spec.round + 7)
    setup = _on_mask(ctx, ctx.rewind, random_like(ctx.mask, gen))
    setup.start_step = ctx.spec.prune.rewind_step
    return setup


def small_dense(ctx: TrialContext) -> Setup:
    """Train small: a narrower dense net of the family with as many weights as the ticket."""
    pruned = _on_mask(ctx, ctx.rewind, ctx.mask)
    target = count(pruned.model, pruned.masks).nonzero_weights
    model, error = ctx.narrow_dense(target, ctx.spec.dense.seed + FRESH)
    return Setup(model, None, ctx.total_steps, metrics={"match_error": error})


def supermask(ctx: TrialContext) -> Setup:
    """θk on the large_final_same_sign mask, evaluated without any training (Zhou et al.)."""
    mask = ctx.mask if ctx.structured else ctx.fetch_imp("supermask.pt")
    setup = _on_mask(ctx, ctx.rewind, mask)
    setup.trains = False
    return setup


def weight_agnostic(ctx: TrialContext) -> Setup:
    """Gaier & Ha on a ticket: every survivor one shared value ±w·α per layer, no training.

    Records the whole sweep of w as flat metrics (`study.pruning.agnostic`); the net left for
    the final evaluation is the θk-signed one at the w best on validation.
    """
    theta0 = ctx.fetch_dense("init.pt")
    setup = _on_mask(ctx, ctx.rewind, ctx.mask)
    alphas = {n: float(theta0[n].float().std()) for n in ctx.big_template.prunable()}
    setup.metrics = agnostic.sweep(setup.model, alphas, ctx.data, setup.masks,
                                   ctx.spec.dense.train.precision)
    setup.trains = False
    return setup


def stability(ctx: TrialContext) -> Setup:
    """One copy of Frankle et al.'s instability analysis: θk (the dense net's at round 0, else
    the round's subnetwork on its mask) trained from step k to the dense budget under the
    trial's own noise seed; its final weights are kept for the interpolation."""
    if ctx.spec.round == 0:
        setup = Setup(ctx.big(ctx.rewind), None, ctx.total_steps)
    else:
        setup = _on_mask(ctx, ctx.rewind, ctx.mask)
    setup.start_step = ctx.spec.prune.rewind_step
    setup.keep_final = True
    return setup


def interpolation(ctx: TrialContext) -> Setup:
    """The error on the line between the two copies' final weights (`study.interpolate`),
    as flat metrics; the net left for the run's own evaluation is the midpoint."""
    copy_a, copy_b = ctx.spec.parents()
    a, b = ctx.fetch(copy_a, "final.pt"), ctx.fetch(copy_b, "final.pt")
    mask = None
    if ctx.spec.round > 0:  # the round's mask, from the copies' own IMP parent
        mask = ctx.fetch(next(p for p in copy_a.parents() if p.stage == "imp"), "mask.pt")
    model = ctx.small(mask, a) if ctx.structured and mask is not None else ctx.big(a)
    train = ctx.spec.dense.train
    metrics, midpoint = interpolate.path(model, a, b, ctx.data, train.batch_size,
                                         train.precision, seed=ctx.spec.dense.seed)
    model.load_state_dict(midpoint)
    masks = None if ctx.structured else mask
    return Setup(model, masks, ctx.total_steps, trains=False, metrics=metrics)


ARM_SETUPS: dict[str, Callable[[TrialContext], Setup]] = {
    "dense": dense, "lottery": lottery, "reinit": reinit, "scratch_b": scratch_b,
    "finetune": finetune, "sign_constant": sign_constant, "random_prune": random_prune,
    "small_dense": small_dense, "supermask": supermask, "weight_agnostic": weight_agnostic,
    "stability": stability, "interpolation": interpolation,
}
