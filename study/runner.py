"""`study run`: every trial of a space, one after the other, recorded as it finishes.

The debugging path, and the reference the Ray sweep must agree with: the same `record_pack`
(`study.recording`) runs and records each pack of trials (`study.pack`) in both. Packs run in a
supervised child process (`study.worker`), so one that crashes or hangs native code is recorded
FAILED and the run goes on; `isolate=False` runs them in this process (for a debugger). A launch
skips every id already done in the store.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from study.execution import Execution
from study.pack import next_pack
from study.packing import PackSizes
from study.plan import budget, threads_for
from study.progress import ProgressLine
from study.recording import record_pack
from study.space import Space
from study.specs import TrialSpec
from study.tracking import Tracker
from study.words import one_line, outcome_line
from study.worker import TrialWorker, WorkerDied

BLOCKED_SHOWN = 20


def launch_params(space: Space, trials: list[TrialSpec], todo: list[TrialSpec],
                  runner: str) -> dict[str, object]:
    """What a launch run records as params: its space, size and resources per trial."""
    return {"space": space.name, "runner": runner, "trials": len(trials), "to_run": len(todo),
            "resources.cpu": space.resources.cpu, "resources.gpu": space.resources.gpu}


def list_blocked(blocked: list[TrialSpec], echo: Callable[[str], object]) -> None:
    """Name the trials not run because a trial they depend on failed."""
    if not blocked:
        return
    echo(f"{len(blocked)} trial(s) not run because a trial they depend on failed "
         "(a relaunch runs them):")
    for spec in blocked[:BLOCKED_SHOWN]:
        echo(f"  {one_line(spec)}")
    if len(blocked) > BLOCKED_SHOWN:
        echo(f"  ... and {len(blocked) - BLOCKED_SHOWN} more")


class _InProcess:
    """The same contract as `TrialWorker`, in this process: for a debugger."""

    def __init__(self, tracker: Tracker, execution: Execution) -> None:
        self.tracker, self.execution = tracker, execution

    def run(self, specs: list[TrialSpec], launch: str,
            stacked: bool) -> dict[str, tuple[str, dict[str, float]] | Exception]:
        outcomes = record_pack(specs, self.tracker, self.execution, launch, stacked=stacked)
        return {i: r if isinstance(r, Exception) else (r.outcome, r.metrics)
                for i, r in outcomes.items()}

    def close(self) -> None:
        pass


def done_and_pending(tracker: Tracker, trials: list[TrialSpec],
                     line: ProgressLine) -> tuple[set[str], list[TrialSpec]]:
    """The ids done in the store and the trials a launch runs (those not done), once the runs a
    dead launch left RUNNING are closed (they are redone); says both on `line`."""
    closed = tracker.close_dangling()
    if closed:
        line.say(f"closed {closed} run(s) a dead launch left RUNNING (they are redone)")
    done = set(tracker.done())
    pending = [t for t in trials if t.id not in done]
    line.say(f"{len(trials)} trials, {len(trials) - len(pending)} already done, "
             f"{len(pending)} to run")
    return done, pending


def run_sequential(space: Space, source: str, trials: list[TrialSpec], tracker: Tracker,
                   execution: Execution | None = None,
                   echo: Callable[[str], object] | None = print,
                   isolate: bool = True, pack_size: int | PackSizes = 1) -> dict[str, int]:
    """Run the trials not yet done, upstream first, in packs of up to `pack_size` ready trials
    (`study.pack`; 1: each trial alone, as a plain module); returns counts per outcome.
    `echo`: where progress goes (a live line instead on a terminal); None: nowhere."""
    execution = execution or Execution()
    torch.set_num_threads(threads_for(space))
    line = ProgressLine(echo)
    done, pending = done_and_pending(tracker, trials, line)
    launch = tracker.start_launch(space.name, source,
                                  launch_params(space, trials, pending, "run"))
    counts: dict[str, int] = {}
    failed: set[str] = set()
    blocked: list[TrialSpec] = []
    faults = tempfile.TemporaryDirectory(prefix="study-faults-")
    worker = (TrialWorker(space.name, tracker.uri, execution, threads_for(space),
                          Path(faults.name), space.stall_seconds)
              if isolate else _InProcess(tracker, execution))
    # the engine follows the launch, not the pack: a trial trains stacked in `study run` exactly
    # where it does in a sweep of the same trials (`study.sweep`), so the two record the same
    # numbers (stacked and plain loops agree only to float tolerance)
    stacked = PackSizes.of(pack_size).most(pending) > 1 if pending else False
    line.begin({t.id: budget(t) for t in pending})
    try:
        while pending:
            cut = [s for s in pending if any(p.id in failed for p in s.parents())]
            failed |= {s.id for s in cut}
            blocked += cut
            for spec in cut:
                line.finished(spec.id, outcome_line(spec, "blocked: a parent failed"))
            pending = [s for s in pending if s.id not in failed]
            # nothing ready (a parent is missing): the next trial runs and fails as it would alone
            group = next_pack(pending, done, pack_size) or pending[:1]
            if not group:
                break
            pending = [s for s in pending if s not in group]
            for spec in group:
                line.started(spec.id)
            try:
                outcomes = worker.run(group, launch, stacked)
            except WorkerDied as err:  # the pack's process died: each unrecorded member failed
                outcomes = {s.id: err for s in group}
                for spec in group:
                    if not tracker.is_done(spec.id):
                        tracker.fail(spec, str(err), parent=launch, extra_tags=execution.tags())
            pack = f" (pack of {len(group)})" if len(group) > 1 else ""
            for spec in group:
                reply = outcomes[spec.id]
                if isinstance(reply, Exception):
                    outcome = "failed"
                    failed.add(spec.id)
                    text = (f"FAILED {one_line(spec)}: {reply}" if isinstance(reply, WorkerDied)
                            else outcome_line(spec, f"failed: {reply}"))
                    line.finished(spec.id, text, failed=True)
                else:
                    outcome, metrics = reply
                    done.add(spec.id)
                    line.finished(spec.id, outcome_line(spec, outcome,
                                                        metrics.get("final_test_acc")) + pack)
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
