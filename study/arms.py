"""The arms of docs/science.md, each a small function from a trial's context to what it trains.

What an arm is (its description, budget rule, pack rule, colour, comparisons) is its entry in
`study.arm_registry`; its function here, decorated `@arm`, is what it does. Every arm returns
a `Setup`: the net to train, its weight masks (unstructured) or none (a structured net is
physically smaller), the budget and where in the schedule it starts. One runner
(`study.trial`) then trains, evaluates and records it, so no arm has a loop of its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from study import interpolate, seeds
from study.arm_registry import REGISTRY, arms_where
from study.context import TrialContext
from study.models import PrunableNet, count
from study.pruning import Masks, agnostic, random_like, restrict, shrink
from study.pruning.at_init import AT_INIT, densities_of
from study.pruning.dynamic import MaskUpdate
from study.specs import TrainSpec, TrialSpec
from study.train import evaluate_only

REWOUND = arms_where(budget="rewound")
"""Arms that start at the rewind step k with θk's lineage, and so train T - k steps."""
FLOPS_MATCHED = arms_where(budget="flops_matched")
"""Arms whose budget is Scratch-B's: dense steps x FLOPs(dense)/FLOPs(this net), capped."""
ARM_SETUPS: dict[str, Callable[[TrialContext], Setup]] = {}
"""Every arm's function, by name (`arm` fills it)."""


def arm(setup: Callable[[TrialContext], Setup]) -> Callable[[TrialContext], Setup]:
    """Register an arm's function under its name (a trailing _ dropped: `set_` is set), with
    its registry entry's description as the first paragraph of its docstring."""
    name = setup.__name__.removesuffix("_")
    if name not in REGISTRY:
        raise KeyError(f"arm {name!r}: no entry in study.arm_registry's REGISTRY")
    rest = inspect.cleandoc(setup.__doc__) if setup.__doc__ else ""
    setup.__doc__ = "\n\n".join(p for p in (REGISTRY[name].description, rest) if p)
    ARM_SETUPS[name] = setup
    return setup


@dataclass
class Setup:
    model: PrunableNet
    masks: Masks | None
    total_steps: int
    start_step: int = 0
    train: TrainSpec | None = None  # None: the trial's own (`TrialContext.train`)
    trains: bool = True
    keep_final: bool = False  # record the trained weights (final.pt) for a later trial
    artifacts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # recorded beside `trained.*`
    mask_update: MaskUpdate | None = None  # sparse training's hook (set, rigl)


def budget_ratio(spec: TrialSpec, flops_ratio: float | None = None) -> float:
    """Scratch-B's budget multiplier: FLOPs(dense)/FLOPs(trained net), at most
    `options.scratch_b_cap` (Liu et al.: 2x); None (not yet counted): the cap."""
    cap = spec.options.scratch_b_cap
    return cap if flops_ratio is None else min(cap, flops_ratio)


def steps(spec: TrialSpec, flops_ratio: float | None = None) -> tuple[int, int]:
    """(schedule length, first step) of a trial's training: the one budget rule, read by every
    arm and by the sweep's plan, which trains the difference.

    Dense-length arms span the dense run's T steps; the rewound ones (lottery, sign_constant,
    random_prune, stability) resume at the rewind step k. finetune: `finetune_steps`.
    Scratch-B and small_dense_b: T x `budget_ratio`. Untrained arms: none.
    """
    total, rule = spec.dense.total_steps(), REGISTRY[spec.arm].budget
    if rule == "none":
        return 0, 0
    if rule == "finetune":
        return finetune_steps(spec), 0
    if rule == "flops_matched":
        return round(total * budget_ratio(spec, flops_ratio)), 0
    if rule == "rewound":
        return total, spec.prune.rewind_step
    return total, 0


def finetune_steps(spec: TrialSpec) -> int:
    """Rethinking's fine-tuning budget: a fraction of the dense steps T (40 of 160 epochs in the
    paper) per round of pruning it recovers from.

    The finetune arm on a chain's mask: `options.finetune_fraction` x T. A fine-tune chain's own
    round: `prune.finetune_fraction` x T; one-shot round r stands for r iterative rounds cut at
    once and fine-tunes r times that, so both schedules spend the same fine-tuning steps to
    reach round r's sparsity.
    """
    chain = spec.stage == "imp"
    fraction = spec.prune.finetune_fraction if chain else spec.options.finetune_fraction
    rounds = spec.round if chain and spec.prune.schedule == "oneshot" else 1
    return rounds * max(1, round(spec.dense.total_steps() * fraction))


def _setup(ctx: TrialContext, model: PrunableNet, masks: Masks | None, **fields) -> Setup:
    total, start = steps(ctx.spec)
    return Setup(model, masks, total, start, **fields)


def _on_mask(ctx: TrialContext, state: dict[str, torch.Tensor], mask: Masks) -> Setup:
    """`state` (big-net weights) on the round's mask: masked, or shrunk if structured."""
    model = ctx.big(state)
    if ctx.structured:
        return _setup(ctx, shrink(model, mask), None)
    return _setup(ctx, model, mask)


def _fresh(ctx: TrialContext) -> Setup:
    """A fresh random init of the pruned architecture (structured: the small net's own init)."""
    seed = seeds.fresh_init(ctx.spec.dense.seed)
    if ctx.structured:
        return _setup(ctx, ctx.rebuild_small(ctx.mask, seed), None)
    return _setup(ctx, ctx.init_big(seed), ctx.mask)


def _flops_matched(ctx: TrialContext, setup: Setup) -> Setup:
    """Scratch-B's budget for `setup`'s net, its FLOPs counted *after* pruning (the Rethinking
    code took the ratio before loading the pruned weights: its Scratch-B = Scratch-E)."""
    ratio = budget_ratio(ctx.spec, ctx.dense_counts.flops
                         / count(setup.model, setup.masks).nonzero_flops)
    setup.total_steps, _ = steps(ctx.spec, ratio)
    setup.metrics["budget_ratio"] = ratio
    return setup


@arm
def dense(ctx: TrialContext) -> Setup:
    model = ctx.init_big(ctx.spec.dense.seed)
    return _setup(ctx, model, None,
                  artifacts={"init.pt": {k: v.clone() for k, v in model.state_dict().items()}})


@arm
def lottery(ctx: TrialContext) -> Setup:
    mask, artifacts = _round_mask(ctx)
    setup = _on_mask(ctx, ctx.rewind, mask)
    setup.artifacts = artifacts
    return setup


def _round_mask(ctx: TrialContext) -> tuple[Masks, dict[str, dict[str, torch.Tensor]]]:
    """The round's mask, and what a chain's own round keeps for the arms downstream: a chain
    round (stage "imp") prunes its source net here and keeps the mask, θk (`init.pt`, where
    the rewound arms start) and the supermask; an arm reads the round's mask."""
    if ctx.spec.stage != "imp":
        return ctx.mask, {}
    mask, extra = ctx.prune_round()
    return mask, {"mask.pt": mask, "init.pt": ctx.rewind, **extra}


@arm
def reinit(ctx: TrialContext) -> Setup:
    return _fresh(ctx)


@arm
def scratch_b(ctx: TrialContext) -> Setup:
    return _flops_matched(ctx, _fresh(ctx))


@arm
def finetune(ctx: TrialContext) -> Setup:
    """The net is the one the round's mask was computed from (`TrialContext.source`: round r-1's
    trained net, the dense θT at round 1 and in a one-shot chain), so finetune, reinit and
    scratch_b share the mask and the fine-tuned net is the trained net that mask prunes. It
    trains `finetune_steps` at a constant lr: `finetune_lr`, else the dense schedule's final lr
    (Liu et al., CIFAR: 160 epochs 0.1 -> 1e-3, then 40 epochs at 1e-3; a constant-lr run
    fine-tunes at its own lr). As a fine-tune chain's own round (stage "imp", Han et al.'s
    loop) it prunes that net itself and keeps the mask and θk for the arms, as an IMP round
    does. Either way it records the pruned net's accuracy before any fine-tuning
    (`pruned_val_acc`, `pruned_test_acc`): the damage the cut did.
    """
    previous, source = ctx.source()
    mask, artifacts = _round_mask(ctx)
    if ctx.structured:
        setup = _setup(ctx, shrink(source, restrict(mask, previous)), None)
    else:
        setup = _setup(ctx, source, mask)
    setup.artifacts = artifacts
    setup.metrics = _pruned_accuracy(ctx, setup)
    fraction = (ctx.spec.prune.finetune_fraction if ctx.spec.stage == "imp"
                else ctx.spec.options.finetune_fraction)
    lr = ctx.spec.options.finetune_lr or ctx.train.finetune_lr(fraction)
    setup.train = ctx.train.model_copy(update={"lr": lr, "schedule": "constant",
                                               "warmup_steps": 0})
    return setup


@arm
def lr_rewind(ctx: TrialContext) -> Setup:
    """Its net is finetune's (`TrialContext.source`), so the two differ only in how they retrain:
    a short constant lr against the whole schedule again; the best-known way to retrain a
    pruned net, which neither LTH nor Rethinking has."""
    previous, source = ctx.source()
    if ctx.structured:
        return _setup(ctx, shrink(source, restrict(ctx.mask, previous)), None)
    return _setup(ctx, source, ctx.mask)


def _pruned_accuracy(ctx: TrialContext, setup: Setup) -> dict[str, float]:
    """The pruned net evaluated as it stands, before training: its mask applied (what the loop
    does first anyway), nothing else touched."""
    (row,) = evaluate_only(setup.model, ctx.data, setup.masks, ctx.train.precision).curves
    return {"pruned_val_acc": row["val_acc"], "pruned_test_acc": row["test_acc"],
            "pruned_val_loss": row["val_loss"]}


@arm
def sign_constant(ctx: TrialContext) -> Setup:
    theta0 = ctx.fetch_dense("init.pt")
    state = dict(ctx.rewind)
    for name in ctx.big_template.prunable():
        state[name] = torch.sign(state[name]) * theta0[name].float().std()
    return _on_mask(ctx, state, ctx.mask)


@arm
def random_prune(ctx: TrialContext) -> Setup:
    gen = torch.Generator().manual_seed(seeds.random_mask(ctx.spec.dense.seed, ctx.spec.round))
    return _on_mask(ctx, ctx.rewind, random_like(ctx.mask, gen))


@arm
def small_dense(ctx: TrialContext) -> Setup:
    pruned = _on_mask(ctx, ctx.rewind, ctx.mask)
    target = count(pruned.model, pruned.masks).nonzero_weights
    model, error = ctx.narrow_dense(target, seeds.fresh_init(ctx.spec.dense.seed))
    return _setup(ctx, model, None, metrics={"match_error": error})


@arm
def small_dense_b(ctx: TrialContext) -> Setup:
    return _flops_matched(ctx, small_dense(ctx))


@arm
def supermask(ctx: TrialContext) -> Setup:
    setup = _on_mask(ctx, ctx.rewind, ctx.fetch_imp("supermask.pt"))
    setup.trains = False
    return setup


@arm
def weight_agnostic(ctx: TrialContext) -> Setup:
    """Records the whole sweep of w as flat metrics (`study.pruning.agnostic`); the net left for
    the final evaluation is the θk-signed one at the w best on validation.
    """
    theta0 = ctx.fetch_dense("init.pt")
    setup = _on_mask(ctx, ctx.rewind, ctx.mask)
    alphas = {n: float(theta0[n].float().std()) for n in ctx.big_template.prunable()}
    setup.metrics = agnostic.sweep(setup.model, alphas, ctx.data, setup.masks,
                                   ctx.spec.dense.train.precision)
    setup.trains = False
    return setup


@arm
def stability(ctx: TrialContext) -> Setup:
    if ctx.spec.round == 0:
        setup = _setup(ctx, ctx.big(ctx.rewind), None)
    else:
        setup = _on_mask(ctx, ctx.rewind, ctx.mask)
    setup.keep_final = True
    return setup


@arm
def interpolation(ctx: TrialContext) -> Setup:
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
    return _setup(ctx, model, masks, trains=False, metrics=metrics)


# -- train small without the big net (issue 25) ---------------------------------------------
def _survivors(ctx: TrialContext) -> int:
    """The round's IMP survivors: the nonzero count every train-small arm trains with."""
    return sum(int(m.sum()) for m in ctx.mask.values())


def _mask_record(setup: Setup, criterion: str) -> Setup:
    """What a train-small run records of its mask: the criterion and each layer's density."""
    setup.params["trained.mask_criterion"] = criterion
    setup.metrics.update({f"layer_density.{n}": d for n, d in densities_of(setup.masks).items()})
    return setup


def _at_init(ctx: TrialContext) -> Setup:
    """θ0 on the mask its criterion chooses at θ0, with the round's IMP survivor count, trained
    the dense budget from step 0; `options.mask_shuffle` shuffles it within each layer,
    `options.mask_reinit` trains the survivors from a fresh init (Frankle et al. 2021)."""
    spec = ctx.spec
    model = ctx.big(ctx.fetch_dense("init.pt"))
    mask = ctx.init_mask(spec.arm, model, _survivors(ctx))
    criterion = f"{spec.arm} ({AT_INIT[spec.arm].paper}), at θ0"
    if spec.options.mask_shuffle:
        gen = torch.Generator().manual_seed(seeds.shuffle_mask(spec.dense.seed, spec.round))
        mask, criterion = random_like(mask, gen), criterion + ", shuffled within layers"
    if spec.options.mask_reinit:
        model = ctx.init_big(seeds.fresh_init(spec.dense.seed))
        criterion += ", survivors reinitialised"
    return _mask_record(_setup(ctx, model, mask), criterion)


@arm
def snip(ctx: TrialContext) -> Setup:
    return _at_init(ctx)


@arm
def grasp(ctx: TrialContext) -> Setup:
    return _at_init(ctx)


@arm
def synflow(ctx: TrialContext) -> Setup:
    return _at_init(ctx)


@arm
def random_erk(ctx: TrialContext) -> Setup:
    return _at_init(ctx)


def _sparse(ctx: TrialContext, growth: str) -> Setup:
    """θ0 on random_erk's mask of the round's survivor count, the mask moved during training
    by `study.pruning.dynamic.MaskUpdate`; `_b` arms train Scratch-B's budget."""
    spec, o = ctx.spec, ctx.spec.options
    model = ctx.big(ctx.fetch_dense("init.pt"))
    setup = _setup(ctx, model, ctx.init_mask("random_erk", model, _survivors(ctx)))
    if spec.arm in FLOPS_MATCHED:
        setup = _flops_matched(ctx, setup)
    setup.mask_update = MaskUpdate(growth, setup.total_steps, o.update_interval,
                                   o.drop_fraction, o.update_end, spec.dense.seed, spec.round)
    return _mask_record(setup, f"{growth} growth from an ERK mask, every {o.update_interval} "
                               f"steps, α {o.drop_fraction:g}, until {o.update_end:g} of "
                               "training")


@arm
def set_(ctx: TrialContext) -> Setup:
    return _sparse(ctx, "random")


@arm
def rigl(ctx: TrialContext) -> Setup:
    return _sparse(ctx, "gradient")


@arm
def set_b(ctx: TrialContext) -> Setup:
    return _sparse(ctx, "random")


@arm
def rigl_b(ctx: TrialContext) -> Setup:
    return _sparse(ctx, "gradient")


# -- end of issue 25's block ------------------------------------------------------------------
