"""Running a pack inside its members' live runs: what a `study run` worker (`study.worker`), a
sweep's actor (`study.sweep`) and `study tune` all do, so all three record the same way.
"""

from __future__ import annotations

from study.execution import Execution
from study.pack import run_pack
from study.phases import clock
from study.specs import TrialSpec
from study.tracking import Tracker
from study.train import Checkpointer
from study.trial import TrialRecord


def record_pack(specs: list[TrialSpec], tracker: Tracker, execution: Execution,
                launch: str | None, checkpointer: Checkpointer | None = None,
                extra_tags: dict[str, str] | None = None, stacked: bool = True,
                upstream: Tracker | None = None) -> dict[str, TrialRecord | Exception]:
    """Run one pack inside its members' live runs: what a `study run` worker and a sweep actor
    both do. Each member's run is created RUNNING before the pack starts, its curves are
    logged as it evaluates, then it ends FINISHED with its record (all members in one
    transaction where the store allows: `Tracker.finish_pack`), or FAILED with the error (a
    bad or missing upstream artifact) that failed it alone: the next launch redoes it.
    {id: record or error}. `upstream`: where parents' artifacts are read (default `tracker`)."""
    tags = {**execution.tags(), **(extra_tags or {})}
    with clock("record"):
        unfinished = tracker.unfinished(launch)
    runs = tracker.start_pack(specs, parent=launch, tags=tags, unfinished=unfinished)
    try:
        outcomes = run_pack(specs, (upstream or tracker).load, execution, checkpointer,
                            on_eval=lambda spec: runs[spec.id].log_eval, stacked=stacked)
    except BaseException as err:
        for run in runs.values():
            run.fail(f"{type(err).__name__}: {err}")
        raise
    for spec in specs:
        outcome = outcomes[spec.id]
        if isinstance(outcome, Exception):
            with clock("record"):
                runs[spec.id].fail(f"{type(outcome).__name__}: {outcome}")
    tracker.finish_pack([(runs[s.id], outcomes[s.id]) for s in specs
                         if not isinstance(outcomes[s.id], Exception)])
    return outcomes


def record_trial(spec: TrialSpec, tracker: Tracker, execution: Execution, launch: str | None,
                 checkpointer: Checkpointer | None = None,
                 extra_tags: dict[str, str] | None = None,
                 upstream: Tracker | None = None) -> TrialRecord:
    """One trial alone, as a plain module (a pack of one); its error, if it failed, raised."""
    outcome = record_pack([spec], tracker, execution, launch, checkpointer, extra_tags,
                          stacked=False, upstream=upstream)[spec.id]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome
