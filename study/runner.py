"""`study run`: every trial of a space in this process, in order, recorded as it finishes.

The debugging path, and the reference the Ray sweep must agree with: the same `execute`
function runs each trial in both. A launch skips every id already done in the store.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from study.execution import Execution
from study.plan import budget, threads_for
from study.progress import ProgressLine
from study.space import Space
from study.specs import TrialSpec
from study.tracking import ArtifactError, Tracker, UpstreamFailed, UpstreamNotReady, run_name
from study.train import Checkpointer
from study.trial import TrialRecord, run_trial


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
                   echo: Callable[[str], object] | None = print) -> dict[str, int]:
    """Run the trials not yet done, upstream first; returns counts per outcome. `echo`: where
    progress goes (a live line instead on a terminal); None: nowhere."""
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
    execution = execution or Execution()
    line.begin({t.id: budget(t) for t in todo})
    try:
        for spec in todo:
            line.started(spec.id)
            try:
                record = execute_live(spec, tracker, execution, launch=launch)
            except (ArtifactError, UpstreamNotReady) as err:
                line.finished(spec.id, f"{run_name(spec)} failed: {err}", failed=True)
                counts["failed"] = counts.get("failed", 0) + 1
                continue
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
            line.finished(spec.id, outcome_text(spec, record.outcome,
                                                record.metrics.get("final_test_acc")))
    except BaseException:
        tracker.end_launch(launch, failed=True)
        raise
    finally:
        line.close()
    tracker.end_launch(launch)
    return counts


def outcome_text(spec: TrialSpec, outcome: str, test_acc: float | None) -> str:
    """How a finished trial reads on the progress line: its run's name, outcome, accuracy."""
    acc = f", test_acc {test_acc:.4f}" if test_acc is not None else ""
    return f"{run_name(spec)} {outcome}{acc}"
