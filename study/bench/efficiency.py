"""Sweep efficiency: training steps saved by sharing upstream work, wall time against the
critical path of a finished sweep, and its training samples per second per core against the
solo bare loop's (packing is what lifts that above 1).

A naive per-arm pipeline (one script per arm and round, as the papers' public code is run)
retrains the dense net and the IMP chain up to its round for every trial; the sweep trains each
unique unit of work once (docs/design.md: "computed once ... by id"). Both counts use
`study.plan.budget`, the steps a trial trains (Scratch-B at its cap).
"""

from __future__ import annotations

import os

from mlflow.tracking import MlflowClient

from study.plan import budget
from study.specs import TrialSpec
from study.tracking import TERMINAL_OK


def _ancestors(trials: list[TrialSpec]) -> tuple[dict[str, set[str]], dict[str, TrialSpec]]:
    """{trial id: ids of every trial upstream of it} and {id: spec} for all of them."""
    specs = {t.id: t for t in trials}
    memo: dict[str, set[str]] = {}

    def up(spec: TrialSpec) -> set[str]:
        if spec.id not in memo:
            found: set[str] = set()
            for parent in spec.parents():
                specs.setdefault(parent.id, parent)
                found |= {parent.id} | up(parent)
            memo[spec.id] = found
        return memo[spec.id]

    for t in trials:
        up(t)
    return memo, specs


def plan_efficiency(trials: list[TrialSpec]) -> dict:
    """Unique steps the sweep trains against a naive pipeline that recomputes its upstream."""
    ancestors, specs = _ancestors(trials)
    steps = {i: budget(s) for i, s in specs.items()}
    unique = sum(steps[t.id] for t in trials)
    naive = sum(steps[t.id] + sum(steps[a] for a in ancestors[t.id]) for t in trials)
    return {"trials": len(trials), "unique_steps": unique, "naive_steps": naive,
            "naive_over_unique": naive / unique if unique else None}


def recorded_runs(uri: str, experiment: str) -> tuple[dict[str, dict], list[dict]] | None:
    """Finished trial runs {study.id: times} and the launch runs of `experiment`; None if absent.

    A trial's run is live from the start of the trial to the end of its record, so its
    duration is end - start (set-up, training, evaluation and recording)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], max_results=5000, page_token=token)
        runs += list(page)
        if not (token := page.token):
            break
    trials, launches = {}, []
    for r in runs:
        tags, m = r.data.tags, r.data.metrics
        times = {"start": r.info.start_time / 1e3,
                 "end": (r.info.end_time or r.info.start_time) / 1e3,
                 "parent": tags.get("study.launch"), "run_id": r.info.run_id}
        if tags.get("study.stage") == "launch":
            launches.append(times)
        elif (r.info.status == "FINISHED" and tags.get("study.outcome") in TERMINAL_OK
              and "study.id" in tags):
            # runs are live: start to end spans the trial's set-up, training and record
            times.update(train=m.get("train_seconds", 0.0), seconds=times["end"] - times["start"],
                         train_steps=m.get("train_steps", 0.0))
            trials[tags["study.id"]] = times
    return trials, launches


def critical_path(trials: list[TrialSpec], runs: dict[str, dict], launches: list[dict],
                  cpus: float | None = None) -> dict:
    """Longest chain of recorded trial durations (unrecorded parents count 0) against the wall
    time of the launches that recorded them; `cpus` adds the work / cpus lower bound."""
    recorded = [t for t in trials if t.id in runs]
    if not recorded:
        return {"trials_recorded": 0}
    memo: dict[str, float] = {}

    def finish(spec: TrialSpec) -> float:  # earliest finish if every parent ran in time
        if spec.id not in memo:
            before = max((finish(p) for p in spec.parents()), default=0.0)
            memo[spec.id] = before + (runs[spec.id]["seconds"] if spec.id in runs else 0.0)
        return memo[spec.id]

    path = max(finish(t) for t in recorded)
    work = sum(runs[t.id]["seconds"] for t in recorded)
    wall = _wall(runs, launches)
    bound = max(path, work / cpus) if cpus else path
    return {"trials_recorded": len(recorded), "wall_s": wall, "critical_path_s": path,
            "work_s": work, "wall_over_critical_path": wall / path if path else None,
            "lower_bound_s": bound, "wall_over_lower_bound": wall / bound if bound else None,
            "parallelism": work / wall if wall else None}


def _wall(runs: dict[str, dict], launches: list[dict]) -> float:
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


def solo_bare_rate(spec: TrialSpec, steps: int = 100, reps: int = 3) -> float:
    """Samples/s of the one-at-a-time bare loop on one thread, for `spec`'s dense net and batch
    (random data of its shape): what one core reaches without the study around it."""
    from study.bench.timing import timed, torch_threads
    from study.bench.trainer import bare_loop, synthetic_splits
    from study.models import build_model

    info, train = spec.dense.data.info(), spec.dense.train
    model = build_model(spec.dense.model.name, info.input_shape, info.num_classes,
                        width=spec.dense.model.width, hidden=spec.dense.model.hidden)
    data = synthetic_splits(info.input_shape, 4096)
    run_spec = train.model_copy(update={"steps": steps})
    with torch_threads(1):
        bare_loop(model, data.x_train, data.y_train, run_spec, 5)  # first-call costs
        best = min(timed(lambda: bare_loop(model, data.x_train, data.y_train, run_spec,
                                           steps))[0] for _ in range(reps))
    return steps * train.batch_size / best


def training_efficiency(trials: list[TrialSpec], runs: dict[str, dict], wall: float,
                        cores: int, bare_rate: float) -> dict:
    """Training samples of the recorded trials / wall / cores / the solo bare loop's samples/s
    per core: 1.0 is a core-for-core match of bare PyTorch, packing can exceed it."""
    samples = sum(runs[t.id]["train_steps"] * t.dense.train.batch_size
                  for t in trials if t.id in runs)
    return {"training_samples": samples, "wall_s": wall, "cores": cores,
            "solo_bare_samples_per_s_per_core": bare_rate,
            "efficiency": samples / wall / cores / bare_rate if wall and bare_rate else None}


def sweep_efficiency(space_name: str = "quickstart", tracking_uri: str | None = None,
                     echo=print) -> dict:
    from study.space import load_space

    space, _ = load_space(space_name)
    trials = space.expand()
    out = {"space": space_name, **plan_efficiency(trials), "critical_path": None}
    echo(f"  efficiency: {space_name} trains {out['unique_steps']:,} unique steps; a naive "
         f"per-arm pipeline {out['naive_steps']:,} ({out['naive_over_unique']:.2f}x)")
    if tracking_uri:
        loaded = recorded_runs(tracking_uri, space.name)
        if loaded is None:
            out["critical_path"] = {"error": f"no experiment {space.name!r} in {tracking_uri}"}
        else:
            # the lower bound assumes the store's sweep ran on a machine like this one
            cp = out["critical_path"] = critical_path(trials, *loaded, cpus=os.cpu_count())
            if cp["trials_recorded"]:
                echo(f"  {cp['trials_recorded']} recorded trials: wall {cp['wall_s']:.0f}s, "
                     f"critical path {cp['critical_path_s']:.0f}s, work {cp['work_s']:.0f}s "
                     f"(bound on {os.cpu_count()} CPUs {cp['lower_bound_s']:.0f}s)")
                eff = out["training"] = training_efficiency(
                    trials, loaded[0], cp["wall_s"], os.cpu_count(), solo_bare_rate(trials[0]))
                echo(f"  training efficiency {eff['efficiency']:.2f}: "
                     f"{eff['training_samples']:,} samples in {eff['wall_s']:.0f}s on "
                     f"{eff['cores']} cores, solo bare loop "
                     f"{eff['solo_bare_samples_per_s_per_core']:,.0f} samples/s per core")
    return out
