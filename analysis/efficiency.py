"""How well a finished sweep used its machine: wall time against the critical path of its
dependency graph and the work / cores bound, and training samples per core-second.

Read from the tracking store alone: a trial's run is live from the start of the trial to the
end of its record, so end - start is its whole cost (set-up, training, evaluation, recording).
The dependency graph ({trial id: parent ids}) and the batch sizes come from the caller, who has
the space (`study bench --part efficiency`).
"""

from __future__ import annotations

from analysis.load import fetch_runs
from study.contract import ID, LAUNCH, LAUNCH_STAGE, OUTCOME, STAGE, TERMINAL_OK, tag


def recorded_runs(experiment: str, uri: str) -> tuple[dict[str, dict], list[dict]]:
    """Finished trial runs {study.id: times} and the launch runs of `experiment` (seconds);
    AnalysisError for an unknown experiment."""
    trials, launches = {}, []
    for r in fetch_runs(experiment, uri):
        tags, m = r.data.tags, r.data.metrics
        times = {"start": r.info.start_time / 1e3,
                 "end": (r.info.end_time or r.info.start_time) / 1e3,
                 "parent": tags.get(LAUNCH), "run_id": r.info.run_id,
                 "pack": tags.get(tag("pack"))}
        if tags.get(STAGE) == LAUNCH_STAGE:
            launches.append(times)
        elif r.info.status == "FINISHED" and tags.get(OUTCOME) in TERMINAL_OK and ID in tags:
            times.update(train=m.get("train_seconds", 0.0), seconds=times["end"] - times["start"],
                         train_steps=m.get("train_steps", 0.0),
                         widths=r.data.params.get("trained.widths"))
            trials[tags[ID]] = times
    return trials, launches


def critical_path(parents: dict[str, list[str]], trials: list[str], runs: dict[str, dict],
                  launches: list[dict], cpus: float | None = None) -> dict:
    """Longest chain of recorded trial durations through `parents` (unrecorded trials count 0)
    against the wall time of the launches that recorded `trials`; `cpus` adds the
    work / cpus lower bound."""
    recorded = [t for t in trials if t in runs]
    if not recorded:
        return {"trials_recorded": 0}
    memo: dict[str, float] = {}

    def finish(trial: str) -> float:  # earliest finish if every parent ran in time
        if trial not in memo:
            before = max((finish(p) for p in parents.get(trial, ())), default=0.0)
            memo[trial] = before + (runs[trial]["seconds"] if trial in runs else 0.0)
        return memo[trial]

    path = max(finish(t) for t in recorded)
    work = _work(runs[t] for t in recorded)
    wall = wall_time(runs, launches)
    bound = max(path, work / cpus) if cpus else path
    return {"trials_recorded": len(recorded), "wall_s": wall, "critical_path_s": path,
            "work_s": work, "wall_over_critical_path": wall / path if path else None,
            "lower_bound_s": bound, "wall_over_lower_bound": wall / bound if bound else None,
            "parallelism": work / wall if wall else None}


def _work(runs) -> float:
    """Seconds of slot time the trials used: a pack's members share one process, so a pack
    counts once, from its first member's start to its last member's end."""
    spans: dict[str, tuple[float, float]] = {}
    alone = 0.0
    for r in runs:
        if r.get("pack") is None:
            alone += r["seconds"]
        else:
            start, end = spans.get(r["pack"], (r["start"], r["end"]))
            spans[r["pack"]] = (min(start, r["start"]), max(end, r["end"]))
    return alone + sum(end - start for start, end in spans.values())


def wall_time(runs: dict[str, dict], launches: list[dict]) -> float:
    """Summed duration of the launches that recorded trials (gaps between relaunches left out);
    without launch runs, first trial start to last record end."""
    total = 0.0
    for launch in launches:
        children = [r for r in runs.values() if r["parent"] == launch["run_id"]]
        if children:
            end = max([launch["end"], *(r["end"] for r in children)])
            start = min([launch["start"], *(r["start"] for r in children)])
            total += end - start
    if total:
        return total
    return max(r["end"] for r in runs.values()) - min(r["start"] for r in runs.values())


def training_efficiency(batch_sizes: dict[str, int], runs: dict[str, dict], wall: float,
                        cores: int, bare_rates: dict[str, float]) -> dict:
    """What the solo bare loop would take for the recorded trials' training, one net per
    core, over what the sweep took: core-seconds of the bare loop (each trial's samples at
    the bare rate of the net it trained, {trial id: samples/s on one core}) / (wall x cores).
    1.0 is a core-for-core match of bare PyTorch; packing can exceed it. A sweep of several
    widths needs a rate per net: a width-2 MLP trains ~0.6x as many samples a second as a
    width-0.25 one."""
    samples = {t: runs[t]["train_steps"] * batch for t, batch in batch_sizes.items()
               if t in runs}
    bare = sum(n / bare_rates[t] for t, n in samples.items())
    total = sum(samples.values())
    return {"training_samples": total, "wall_s": wall, "cores": cores,
            "solo_bare_core_seconds": bare,
            "solo_bare_samples_per_s_per_core": total / bare if bare else None,
            "efficiency": bare / wall / cores if wall and bare else None}
