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
from study.plan import budget, threads_for
from study.progress import ProgressLine
from study.space import Space
from study.specs import TrialSpec
from study.tracking import ArtifactError, Tracker, UpstreamFailed, UpstreamNotReady, run_name
from study.train import Checkpointer
from study.trial import TrialRecord, run_trial

BLOCKED_SHOWN = 20


def execute(spec: TrialSpec, tracker: Tracker, execution: Execution | None = None,
            checkpointer: Checkpointer | None = None, on_eval=None) -> TrialRecord:
    """Run one trial against the store's upstream artifacts; a failed parent means skipped."""
    try:
        return run_trial(spec, tracker.load, execution, checkpointer, on_eval)
    except UpstreamFailed as err:
        return TrialRecord("skipped", {}, [], tags={"study.skip_reason": str(err)[:500]})


def record_trial(spec: TrialSpec, tracker: Tracker, execution: Execution, launch: str | None,
                 checkpointer: Checkpointer | None = None,
                 extra_tags: dict[str, str] | None = None,
                 upstream: Tracker | None = None) -> TrialRecord:
    """Run one trial inside its live run: what a `study run` worker and a sweep actor both do.
    The run is created RUNNING before the trial starts, its curves are logged at each
    evaluation, then it ends FINISHED with the record, or FAILED with the reason (and the error
    raised). `upstream`: where parents' artifacts are read (default `tracker`)."""
    run = tracker.start(spec, parent=launch, tags={**execution.tags(), **(extra_tags or {})})
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


def outcome_text(spec: TrialSpec, outcome: str, test_acc: float | None) -> str:
    """How a finished trial reads on the progress line: its run's name, outcome, accuracy."""
    acc = f", test_acc {test_acc:.4f}" if test_acc is not None else ""
    return f"{run_name(spec)} {outcome}{acc}"


def describe(spec: TrialSpec) -> str:
    where = spec.prune.granularity if spec.prune else "dense"
    return (f"{spec.arm:<13} round {spec.round} seed {spec.dense.seed} {where:<12} "
            f"lr {spec.dense.train.lr:g} width {spec.dense.model.width:g} ({spec.id})")


def list_blocked(blocked: list[TrialSpec], echo: Callable[[str], object]) -> None:
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
                   execution: Execution | None = None,
                   echo: Callable[[str], object] | None = print,
                   isolate: bool = True) -> dict[str, int]:
    """Run the trials not yet done, upstream first; returns counts per outcome. `echo`: where
    progress goes (a live line instead on a terminal); None: nowhere."""
    from study.worker import TrialWorker, WorkerDied

    execution = execution or Execution()
    torch.set_num_threads(threads_for(space))
    line = ProgressLine(echo)
    closed = tracker.close_dangling()
    if closed:
        line.say(f"closed {closed} run(s) a dead launch left RUNNING (they are redone)")
    done = tracker.done()
    todo = [t for t in trials if t.id not in done]
    line.say(f"{len(trials)} trials, {len(trials) - len(todo)} already done, {len(todo)} to run")
    launch = tracker.start_launch(space.name, source, launch_params(space, trials, todo, "run"))
    counts: dict[str, int] = {}
    failed: set[str] = set()
    blocked: list[TrialSpec] = []
    faults = tempfile.TemporaryDirectory(prefix="study-faults-")
    worker = (TrialWorker(space.name, tracker.uri, execution, threads_for(space),
                          Path(faults.name), space.stall_seconds)
              if isolate else _InProcess(tracker, execution))
    line.begin({t.id: budget(t) for t in todo})
    try:
        for spec in todo:
            if any(p.id in failed for p in spec.parents()):
                failed.add(spec.id)
                blocked.append(spec)
                line.finished(spec.id, f"{run_name(spec)} blocked: a parent failed")
                continue
            line.started(spec.id)
            try:
                outcome, metrics = worker.run(spec, launch)
            except (ArtifactError, UpstreamNotReady) as err:
                outcome, metrics = "failed", {}
                line.finished(spec.id, f"{run_name(spec)} failed: {err}", failed=True)
            except WorkerDied as err:
                outcome, metrics = "failed", {}
                tracker.fail(spec, str(err), parent=launch, extra_tags=execution.tags())
                line.finished(spec.id, f"FAILED {describe(spec)}: {err}", failed=True)
            if outcome == "failed":
                failed.add(spec.id)
            else:
                line.finished(spec.id, outcome_text(spec, outcome,
                                                    metrics.get("final_test_acc")))
            counts[outcome] = counts.get(outcome, 0) + 1
    except BaseException:
        tracker.end_launch(launch, failed=True)
        raise
    finally:
        line.close()
        worker.close()
        faults.cleanup()
    list_blocked(blocked, line.say)
    if blocked:
        counts["blocked"] = len(blocked)
    tracker.end_launch(launch, failed=bool(failed))
    return counts
