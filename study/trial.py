"""Run one trial, whatever its arm: set it up, train it once, count it, hand back the record.

Shared by `study run` (in this process) and `study sweep` (on Ray workers): the only thing that
differs is where checkpoints go and who writes the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from study import bill
from study.arms import ARM_SETUPS, Setup
from study.context import Fetch, TrialContext
from study.contract import DIVERGED_STEP, RESUMED_FROM_STEP
from study.execution import Execution
from study.models import count
from study.specs import TrainSpec, TrialSpec
from study.train import Checkpointer, Member, TrainResult, evaluate_only, train_members


@dataclass
class TrialRecord:
    outcome: str
    metrics: dict[str, float]
    curves: list[dict[str, float]]
    artifacts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    """What the run trained (`trained.*`), which the spec alone does not say for every arm."""


@dataclass
class Prepared:
    """A trial set up and ready to train: its arm's net, masks, budget and TrainSpec."""

    spec: TrialSpec
    ctx: TrialContext
    setup: Setup
    train_spec: TrainSpec  # the arm's own lr and weight decay included

    def member(self, on_eval=None) -> Member:
        return Member(self.setup.model, self.train_spec, self.spec.data_seed,
                      masks=self.setup.masks, on_eval=on_eval,
                      mask_update=self.setup.mask_update)


def prepare(spec: TrialSpec, fetch: Fetch, execution: Execution | None = None) -> Prepared:
    """Build the trial's arm (reading its upstream artifacts), nothing trained yet."""
    execution = execution or Execution()
    ctx = TrialContext(spec, fetch, execution.device)
    setup = ARM_SETUPS[spec.arm](ctx)
    setup.model = setup.model.to(execution.device)
    train_spec = setup.train or ctx.train
    own = {k: v for k, v in (("lr", spec.options.lr),
                             ("weight_decay", spec.options.weight_decay)) if v is not None}
    return Prepared(spec, ctx, setup, train_spec.model_copy(update=own))


def untrained_result(prepared: Prepared) -> TrainResult:
    """An arm that is only evaluated (supermask, weight-agnostic)."""
    return evaluate_only(prepared.setup.model, prepared.ctx.data, prepared.setup.masks,
                         prepared.train_spec.precision)


def finish(prepared: Prepared, result: TrainResult, execution: Execution | None = None,
           tags: dict[str, str] | None = None) -> TrialRecord:
    """Count the trained net and hand back the trial's record (metrics, curves, artifacts)."""
    spec, setup, ctx, train_spec = prepared.spec, prepared.setup, prepared.ctx, prepared.train_spec
    model = setup.model
    if setup.mask_update is not None:  # what sparse training's mask updates did
        setup.metrics.update(setup.mask_update.metrics())
        setup.artifacts["mask_updates.pt"] = setup.mask_update.artifact()
    counts = count(model, setup.masks)
    remaining = counts.nonzero_weights / ctx.dense_counts.total_weights
    metrics = {
        **result.summary(setup.start_step), **setup.metrics,
        "sparsity": 1.0 - remaining, "remaining": remaining,
        "masked_fraction": 1.0 - counts.nonzero_weights / counts.total_weights,
        "dense_weights": ctx.dense_counts.total_weights,
        "nonzero_params": counts.nonzero_params, "total_params": counts.total_params,
        "nonzero_weights": counts.nonzero_weights, "total_weights": counts.total_weights,
        "flops": counts.nonzero_flops, "train_steps": result.steps - setup.start_step,
        "train_seconds": result.seconds,
    }
    trained_steps = result.steps - setup.start_step if setup.trains else 0
    own = bill.train_flops(counts.nonzero_flops, train_spec.batch_size, trained_steps)
    upstream = bill.upstream(ctx)
    metrics.update(train_flops=own, upstream_train_flops=upstream,
                   cumulative_train_flops=own + upstream)
    if setup.trains:
        metrics["train_lr"] = train_spec.lr  # the base lr it trained at, whatever set it
    artifacts = dict(setup.artifacts)
    if (spec.stage in ("dense", "imp") or setup.keep_final) and result.outcome == "finished":
        artifacts["final.pt"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        artifacts[bill.BILL] = bill.artifact(own, upstream)
    params = {"trained.widths": str(model.widths), **setup.params}
    if setup.trains:
        params.update(_trained(train_spec, setup, result))
    return TrialRecord(result.outcome, metrics, result.curves, artifacts,
                       {**_tags(result, execution or Execution()), **(tags or {})}, params)


def _trained(spec: TrainSpec, setup: Setup, result: TrainResult) -> dict[str, str]:
    """The budget and optimiser this run trained with (Scratch-B's longer schedule,
    fine-tuning's small constant lr, a ticket's start at its rewind step)."""
    return {"trained.steps": str(result.steps - setup.start_step),
            "trained.schedule_steps": str(setup.total_steps),
            "trained.start_step": str(setup.start_step),
            "trained.lr": f"{spec.lr:g}", "trained.schedule": spec.schedule,
            "trained.warmup_steps": str(spec.warmup_steps), "trained.optimizer": spec.optimizer,
            "trained.weight_decay": f"{spec.weight_decay:g}"}


def run_trial(spec: TrialSpec, fetch: Fetch, execution: Execution | None = None,
              checkpointer: Checkpointer | None = None, on_eval=None) -> TrialRecord:
    prepared = prepare(spec, fetch, execution)
    setup = prepared.setup
    if setup.trains:
        (result,) = train_members([prepared.member(on_eval)], prepared.ctx.data,
                                  total_steps=setup.total_steps, start_step=setup.start_step,
                                  checkpointer=checkpointer, execution=execution)
    else:
        result = untrained_result(prepared)
    return finish(prepared, result, execution)


def _tags(result: TrainResult, execution: Execution) -> dict[str, str]:
    tags = execution.tags()
    if result.diverged_step is not None:
        tags[DIVERGED_STEP] = str(result.diverged_step)
    if result.resumed_from is not None:
        tags[RESUMED_FROM_STEP] = str(result.resumed_from)
    return tags
