"""`study run`: every trial of a space in this process, in order, recorded as it finishes.

The debugging path, and the reference the Ray sweep must agree with: the same `execute`
function runs each trial in both. A launch skips every id already done in the store.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from study.execution import Execution
from study.pack import next_pack, run_pack
from study.space import Space
from study.specs import TrialSpec
from study.tracking import Tracker, UpstreamFailed
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
                   execution: Execution | None = None, echo: Callable[[str], None] = print,
                   pack_size: int = 1) -> dict[str, int]:
    """Run the trials not yet done, upstream first, in packs of up to `pack_size` ready trials
    (`study.pack`; 1: each trial alone, as a plain module); returns counts per outcome."""
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
    i = 0
    try:
        while pending:
            # nothing ready (a parent failed): the next trial runs and fails as it would alone
            group = next_pack(pending, done, pack_size) or pending[:1]
            pending = [t for t in pending if t not in group]
            outcomes = run_pack(group, tracker.load, execution, stacked=pack_size > 1)
            for spec in group:
                i += 1
                record = outcomes[spec.id]
                if isinstance(record, Exception):
                    echo(f"[{i}/{total}] {spec.arm} round {spec.round} failed: {record}")
                    counts["failed"] = counts.get("failed", 0) + 1
                    continue
                tracker.record(spec, record.outcome, record.metrics, record.curves,
                               record.artifacts, parent=launch, extra_tags=record.tags)
                done.add(spec.id)
                counts[record.outcome] = counts.get(record.outcome, 0) + 1
                acc = record.metrics.get("final_test_acc", float("nan"))
                echo(f"[{i}/{total}] {spec.arm:<13} round {spec.round} seed {spec.dense.seed} "
                     f"{spec.prune.granularity if spec.prune else 'dense':<12} "
                     f"{record.outcome:<8} test_acc {acc:.4f}"
                     + (f" (pack of {len(group)})" if len(group) > 1 else ""))
    except BaseException:
        tracker.end_launch(launch, failed=True)
        raise
    tracker.end_launch(launch)
    return counts
