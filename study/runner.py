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
    launch = tracker.start_launch(space.name, {"space.py": source})
    counts: dict[str, int] = {}
    try:
        for i, spec in enumerate(todo, 1):
            try:
                record = execute(spec, tracker, execution)
            except (ArtifactError, UpstreamNotReady) as err:
                echo(f"[{i}/{len(todo)}] {spec.arm} round {spec.round} failed: {err}")
                counts["failed"] = counts.get("failed", 0) + 1
                continue
            tracker.record(spec, record.outcome, record.metrics, record.curves, record.artifacts,
                           parent=launch, extra_tags=record.tags)
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
