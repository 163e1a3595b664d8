"""`study run`: every trial of a space, one after the other, recorded as it finishes.

The debugging path, and the reference the Ray sweep must agree with: the same `record_pack`
runs and records each pack of trials (`study.pack`) in both. Packs run in a supervised child
process (`study.worker`), so one that crashes or hangs native code is recorded FAILED and the
run goes on; `isolate=False` runs them in this process (for a debugger). A launch skips every
id already done in the store.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from study.execution import Execution
from study.pack import next_pack, run_pack
from study.space import Space
from study.specs import TrialSpec
from study.tracking import Tracker, UpstreamFailed
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


def record_pack(specs: list[TrialSpec], tracker: Tracker, execution: Execution, launch: str,
                checkpointer: Checkpointer | None = None,
                extra_tags: dict[str, str] | None = None,
                stacked: bool = True) -> dict[str, TrialRecord | Exception]:
    """Run one pack and write each member's run: what a `study run` worker and a sweep actor
    both do. {id: its record, or the error (a bad or missing upstream artifact) that failed
    it, unrecorded: the next launch redoes it}."""
    outcomes = run_pack(specs, tracker.load, execution, checkpointer, stacked=stacked)
    for spec in specs:
        record = outcomes[spec.id]
        if not isinstance(record, Exception):
            tracker.record(spec, record.outcome, record.metrics, record.curves,
                           record.artifacts, parent=launch,
                           extra_tags={**record.tags, **(extra_tags or {})})
    return outcomes


def describe(spec: TrialSpec) -> str:
    where = spec.prune.granularity if spec.prune else "dense"
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

    def run(self, specs: list[TrialSpec], launch: str,
            stacked: bool) -> dict[str, tuple[str, dict[str, float]] | Exception]:
        outcomes = record_pack(specs, self.tracker, self.execution, launch, stacked=stacked)
        return {i: r if isinstance(r, Exception) else (r.outcome, r.metrics)
                for i, r in outcomes.items()}

    def close(self) -> None:
        pass


def run_sequential(space: Space, source: str, trials: list[TrialSpec], tracker: Tracker,
                   execution: Execution | None = None, echo: Callable[[str], None] = print,
                   isolate: bool = True, pack_size: int = 1) -> dict[str, int]:
    """Run the trials not yet done, upstream first, in packs of up to `pack_size` ready trials
    (`study.pack`; 1: each trial alone, as a plain module); returns counts per outcome."""
    from study.worker import TrialWorker, WorkerDied

    execution = execution or Execution()
    torch.set_num_threads(threads_for(space))
    closed = tracker.close_dangling()
    if closed:
        echo(f"closed {closed} run(s) a dead launch left RUNNING (they are redone)")
    done = set(tracker.done())
    pending = [t for t in trials if t.id not in done]
    total = len(pending)
    echo(f"{len(trials)} trials, {len(trials) - total} already done, {total} to run")
    launch = tracker.start_launch(space.name, {"space.py": source})
    counts: dict[str, int] = {}
    failed: set[str] = set()
    blocked: list[TrialSpec] = []
    faults = tempfile.TemporaryDirectory(prefix="study-faults-")
    worker = (TrialWorker(space.name, tracker.uri, execution, threads_for(space),
                          Path(faults.name), space.stall_seconds)
              if isolate else _InProcess(tracker, execution))
    i = 0
    try:
        while pending:
            cut = [s for s in pending if any(p.id in failed for p in s.parents())]
            failed |= {s.id for s in cut}
            blocked += cut
            pending = [s for s in pending if s.id not in failed]
            # nothing ready (a parent is missing): the next trial runs and fails as it would alone
            group = next_pack(pending, done, pack_size) or pending[:1]
            if not group:
                break
            pending = [s for s in pending if s not in group]
            try:
                outcomes = worker.run(group, launch, pack_size > 1)
            except WorkerDied as err:  # the whole pack's process died: every member failed
                outcomes = {s.id: err for s in group}
                for spec in group:
                    tracker.fail(spec, str(err), parent=launch, extra_tags=execution.tags())
            for spec in group:
                i += 1
                reply = outcomes[spec.id]
                if isinstance(reply, Exception):
                    outcome, metrics = "failed", {}
                    echo(f"[{i}/{total}] FAILED {describe(spec)}: {reply}"
                         if isinstance(reply, WorkerDied)
                         else f"[{i}/{total}] {spec.arm} round {spec.round} failed: {reply}")
                    failed.add(spec.id)
                else:
                    outcome, metrics = reply
                    done.add(spec.id)
                    acc = metrics.get("final_test_acc", float("nan"))
                    echo(f"[{i}/{total}] {describe(spec)} {outcome:<8} test_acc {acc:.4f}"
                         + (f" (pack of {len(group)})" if len(group) > 1 else ""))
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
