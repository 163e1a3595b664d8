"""Run one trial, whatever its arm: set it up, train it once, count it, hand back the record.

Shared by `study run` (in this process) and `study sweep` (on Ray workers): the only thing that
differs is where checkpoints go and who writes the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from study.arms import ARM_SETUPS
from study.context import Fetch, TrialContext
from study.execution import Execution
from study.models import count
from study.specs import TrialSpec
from study.train import Checkpointer, TrainResult, evaluate_only, train


@dataclass
class TrialRecord:
    outcome: str
    metrics: dict[str, float]
    curves: list[dict[str, float]]
    artifacts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def run_trial(spec: TrialSpec, fetch: Fetch, execution: Execution | None = None,
              checkpointer: Checkpointer | None = None, on_eval=None) -> TrialRecord:
    execution = execution or Execution()
    ctx = TrialContext(spec, fetch, execution.device)
    setup = ARM_SETUPS[spec.arm](ctx)
    model = setup.model.to(execution.device)
    train_spec = setup.train or ctx.train
    own = {k: v for k, v in (("lr", spec.options.lr),
                             ("weight_decay", spec.options.weight_decay)) if v is not None}
    train_spec = train_spec.model_copy(update=own)
    if setup.trains:
        result = train(model, ctx.data, train_spec, seed=spec.data_seed,
                       total_steps=setup.total_steps, start_step=setup.start_step,
                       masks=setup.masks, checkpointer=checkpointer, on_eval=on_eval,
                       execution=execution)
    else:
        result = evaluate_only(model, ctx.data, setup.masks, train_spec.precision)
    counts = count(model, setup.masks)
    metrics = {
        **result.summary(), **setup.metrics,
        "sparsity": 1.0 - counts.nonzero_weights / ctx.dense_counts.total_weights,
        "nonzero_params": counts.nonzero_params, "total_params": counts.total_params,
        "nonzero_weights": counts.nonzero_weights, "total_weights": counts.total_weights,
        "flops": counts.nonzero_flops, "train_steps": result.steps - setup.start_step,
        "train_seconds": result.seconds,
    }
    if setup.trains:
        metrics["train_lr"] = train_spec.lr  # the base lr it trained at, whatever set it
    artifacts = dict(setup.artifacts)
    if (spec.stage in ("dense", "imp") or setup.keep_final) and result.outcome == "finished":
        artifacts["final.pt"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrialRecord(result.outcome, metrics, result.curves, artifacts,
                       _tags(result, execution))


def _tags(result: TrainResult, execution: Execution) -> dict[str, str]:
    tags = execution.tags()
    if result.diverged_step is not None:
        tags["study.diverged_step"] = str(result.diverged_step)
    if result.resumed_from is not None:
        tags["study.resumed_from_step"] = str(result.resumed_from)
    return tags
