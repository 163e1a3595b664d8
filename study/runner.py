"""`study run`: every trial of a space in this process, in order, recorded as it finishes.

The debugging path, and the reference the Ray sweep must agree with: the same `execute`
function runs each trial in both. A launch skips every id already done in the store.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from study.execution import Execution
from study.space import Space
from study.specs import TrialSpec
from study.tracking import ArtifactError, Tracker, UpstreamFailed, UpstreamNotReady
from study.train import Checkpointer
from study.trial import TrialRecord, run_trial


def threads_for(space: Space) -> int:
    """Torch threads of one trial: its CPUs (the same in `run` and `sweep`, so the same numbers)."""
    return max(1, int(space.resources.cpu))


def execute(spec: TrialSpec, tracker: Tracker, execution: Execution | None = None,
            checkpointer: Checkpointer | None = None, on_eval=None) -> TrialRecord:
    """Run one trial against the store's upstream artifacts; a failed parent means skipped."""
    try:
        return run_trial(spec, tracker.load, execution, checkpointer, on_eval)
    except UpstreamFailed as err:
        return TrialRecord("skipped", {}, [], tags={"study.skip_reason": str(err)[:500]})


def execute_live(spec: TrialSpec, tracker: Tracker, execution: Execution, *,
                 launch: str | None = None, tags: dict[str, str] | None = None,
                 checkpointer: Checkpointer | None = None,
                 upstream: Tracker | None = None) -> TrialRecord:
    """`execute` inside the trial's live run: created RUNNING before the trial starts, its
    curves logged at each evaluation, then FINISHED with the record, or FAILED with the reason
    (and the error raised). `upstream`: where parents' artifacts are read (default `tracker`)."""
    run = tracker.start(spec, parent=launch, tags={**execution.tags(), **(tags or {})})
    try:
        record = execute(spec, upstream or tracker, execution, checkpointer, run.log_eval)
    except BaseException as err:
        run.fail(f"{type(err).__name__}: {err}")
        raise
    run.finish(record)
    return record


def launch_params(space: Space, trials: list[TrialSpec], todo: list[TrialSpec],
                  runner: str) -> dict[str, object]:
    """What a launch run records as params: its space, size and resources per trial."""
    return {"space": space.name, "runner": runner, "trials": len(trials), "to_run": len(todo),
            "resources.cpu": space.resources.cpu, "resources.gpu": space.resources.gpu}


def run_sequential(space: Space, source: str, trials: list[TrialSpec], tracker: Tracker,
                   execution: Execution | None = None,
                   echo: Callable[[str], None] = print) -> dict[str, int]:
    """Run the trials not yet done, upstream first; returns counts per outcome."""
    torch.set_num_threads(threads_for(space))
    closed = tracker.close_dangling()
    if closed:
        echo(f"closed {closed} run(s) a dead launch left RUNNING (they are redone)")
    done = tracker.done()
    todo = [t for t in trials if t.id not in done]
    echo(f"{len(trials)} trials, {len(trials) - len(todo)} already done, {len(todo)} to run")
    launch = tracker.start_launch(space.name, source, launch_params(space, trials, todo, "run"))
    counts: dict[str, int] = {}
    execution = execution or Execution()
    try:
        for i, spec in enumerate(todo, 1):
            try:
                record = execute_live(spec, tracker, execution, launch=launch)
            except (ArtifactError, UpstreamNotReady) as err:
                echo(f"[{i}/{len(todo)}] {spec.arm} round {spec.round} failed: {err}")
                counts["failed"] = counts.get("failed", 0) + 1
                continue
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
            acc = record.metrics.get("final_test_acc", float("nan"))
            echo(f"[{i}/{len(todo)}] {spec.arm:<13} round {spec.round} seed {spec.dense.seed} "
                 f"{spec.prune.granularity if spec.prune else 'dense':<12} {record.outcome:<8} "
                 f"test_acc {acc:.4f}")
    except BaseException:
        tracker.end_launch(launch, failed=True)
        raise
    tracker.end_launch(launch)
    return counts
