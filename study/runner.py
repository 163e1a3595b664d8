"""`study run`: every trial of a space, one after the other, recorded as it finishes.

The debugging path, and the reference the Ray sweep must agree with: the same `record_trial`
runs and records each trial in both. Trials run in a supervised child process
(`study.worker`), so one that crashes or hangs native code is recorded FAILED and the run goes
on; `isolate=False` runs them in this process (for a debugger). A launch skips every id
already done in the store.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from study.execution import Execution
from study.space import Space
from study.specs import TrialSpec
from study.tracking import ArtifactError, Tracker, UpstreamFailed, UpstreamNotReady
from study.train import Checkpointer
from study.trial import TrialRecord, run_trial

BLOCKED_SHOWN = 20


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


def record_trial(spec: TrialSpec, tracker: Tracker, execution: Execution, launch: str,
                 checkpointer: Checkpointer | None = None,
                 extra_tags: dict[str, str] | None = None) -> TrialRecord:
    """Run one trial and write its run: what a `study run` worker and a sweep actor both do."""
    record = execute(spec, tracker, execution, checkpointer)
    tracker.record(spec, record.outcome, record.metrics, record.curves, record.artifacts,
                   parent=launch, extra_tags={**record.tags, **(extra_tags or {})})
    return record


def describe(spec: TrialSpec) -> str:
    where = spec.prune.granularity if spec.prune and spec.round else "dense"
    return (f"{spec.arm:<13} round {spec.round} seed {spec.dense.seed} {where:<12} "
            f"lr {spec.dense.train.lr:g} width {spec.dense.model.width:g} ({spec.id})")


def list_blocked(blocked: list[TrialSpec], echo: Callable[[str], None]) -> None:
    """Name the trials not run because a trial they depend on failed."""
    if not blocked:
        return
    echo(f"{len(blocked)} trial(s) not run because a trial they depend on failed "
         "(a relaunch runs them):")
    for spec in blocked[:BLOCKED_SHOWN]:
        echo(f"  {describe(spec)}")
    if len(blocked) > BLOCKED_SHOWN:
        echo(f"  ... and {len(blocked) - BLOCKED_SHOWN} more")


class _InProcess:
    """The same contract as `TrialWorker`, in this process: for a debugger."""

    def __init__(self, tracker: Tracker, execution: Execution) -> None:
        self.tracker, self.execution = tracker, execution

    def run(self, spec: TrialSpec, launch: str) -> tuple[str, dict[str, float]]:
        record = record_trial(spec, self.tracker, self.execution, launch)
        return record.outcome, record.metrics

    def close(self) -> None:
        pass


def run_sequential(space: Space, source: str, trials: list[TrialSpec], tracker: Tracker,
                   execution: Execution | None = None, echo: Callable[[str], None] = print,
                   isolate: bool = True) -> dict[str, int]:
    """Run the trials not yet done, upstream first; returns counts per outcome."""
    from study.worker import TrialWorker, WorkerDied

    execution = execution or Execution()
    torch.set_num_threads(threads_for(space))
    closed = tracker.close_dangling()
    if closed:
        echo(f"closed {closed} run(s) a dead launch left RUNNING (they are redone)")
    done = tracker.done()
    todo = [t for t in trials if t.id not in done]
    echo(f"{len(trials)} trials, {len(trials) - len(todo)} already done, {len(todo)} to run")
    launch = tracker.start_launch(space.name, {"space.py": source})
    counts: dict[str, int] = {}
    failed: set[str] = set()
    blocked: list[TrialSpec] = []
    faults = tempfile.TemporaryDirectory(prefix="study-faults-")
    worker = (TrialWorker(space.name, tracker.uri, execution, threads_for(space),
                          Path(faults.name), space.stall_seconds)
              if isolate else _InProcess(tracker, execution))
    try:
        for i, spec in enumerate(todo, 1):
            if any(p.id in failed for p in spec.parents()):
                failed.add(spec.id)
                blocked.append(spec)
                continue
            try:
                outcome, metrics = worker.run(spec, launch)
            except (ArtifactError, UpstreamNotReady) as err:
                outcome, metrics = "failed", {}
                echo(f"[{i}/{len(todo)}] {spec.arm} round {spec.round} failed: {err}")
            except WorkerDied as err:
                outcome, metrics = "failed", {}
                tracker.fail(spec, str(err), parent=launch, extra_tags=execution.tags())
                echo(f"[{i}/{len(todo)}] FAILED {describe(spec)}: {err}")
            if outcome == "failed":
                failed.add(spec.id)
            else:
                acc = metrics.get("final_test_acc", float("nan"))
                echo(f"[{i}/{len(todo)}] {describe(spec)} {outcome:<8} test_acc {acc:.4f}")
            counts[outcome] = counts.get(outcome, 0) + 1
    except BaseException:
        tracker.end_launch(launch, failed=True)
        raise
    finally:
        worker.close()
        faults.cleanup()
    list_blocked(blocked, echo)
    if blocked:
        counts["blocked"] = len(blocked)
    tracker.end_launch(launch, failed=bool(failed))
    return counts
