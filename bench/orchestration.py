"""Orchestration overhead: one trial through `study run`'s path against the same trial in a sweep.

The run path is `run_sequential` (execute + Tracker.record into a temporary SQLite store), in
this process, warm. The sweep path is `run_sweep` on local Ray: Tune, a trial actor in a fresh
worker process, the record written from there. Both paths run in turn (run, sweep, sweep, run,
...) on a fresh experiment each time, so nothing is skipped as already done.

What a sweep costs beyond the run path comes in three kinds, each measured:
- once per command: creating the MLflow store, `ray.init` until its workers are up;
- once per launch and concurrent trial: Tune's start and a fresh actor process, which imports
  what a trial needs (ray.tune, torch, MLflow); a no-op Tune launch splits the lone trial's
  launch overhead into Tune's own share and the study's;
- per trial: what one more trial costs inside a running sweep, whose actor is reused: record
  to record in a sequential launch, against the run path's trial. The 5% target is this one.

Parallel efficiency: two independent trials in one sweep, one after the other
(`max_concurrent=1`) against side by side (`max_concurrent=2`), on as many Ray CPUs as cores.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

from bench.timing import load_average, median, timed, torch_threads
from study.contract import ID, LAUNCH_STAGE, STAGE, search_all
from study.space import Space
from study.specs import DataSpec, DenseSpec, ModelSpec, TrainSpec, TrialSpec
from study.tracking import Tracker

CALIBRATION_STEPS = 300
TRIAL = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 100}  # quickstart's MLP


@contextlib.contextmanager
def _mlflow_quiet():
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def dense_trial(steps: int, seed: int = 0) -> TrialSpec:
    """The quickstart's dense MLP on MNIST-1D, `steps` long, evaluated 10 times."""
    train = TrainSpec(steps=steps, eval_every=max(1, steps // 10), **TRIAL)
    dense = DenseSpec(data=DataSpec(name="mnist1d"), model=ModelSpec(name="mlp", hidden=(100, 100)),
                      train=train, seed=seed)
    return TrialSpec(stage="dense", arm="dense", dense=dense)


def _space(name: str) -> Space:
    """A space only for its name (the experiment) and resources (1 CPU per trial)."""
    return Space(name=name, train={"steps": 1}, arms=[])


def run_path(name: str, uri: str, trials: list[TrialSpec]) -> float:
    """Wall seconds of `study run`'s path for `trials` into experiment `name`."""
    from study.runner import run_sequential

    def go() -> None:
        with torch_threads(1):  # run_sequential sets the trial's threads; restore afterwards
            run_sequential(_space(name), "", trials, Tracker(name, uri), echo=None)

    return timed(go)[0]


def sweep_path(name: str, uri: str, trials: list[TrialSpec], max_concurrent: int | None = None,
               ) -> float:
    """Wall seconds of `study sweep`'s path (Ray Tune, Ray already started) for `trials`."""
    from study.sweep import run_sweep

    def go() -> None:
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            counts = run_sweep(_space(name), "", trials, Tracker(name, uri),
                               max_concurrent=max_concurrent, echo=None)
        if counts.get("done") != len(trials):
            raise RuntimeError(f"bench sweep {name}: {counts}\n{sink.getvalue()[-2000:]}")

    return timed(go)[0]


def trial_runs(uri: str, name: str) -> list[dict]:
    """The trial runs of an experiment: train_seconds and the record's start/end (seconds)."""
    tracker = Tracker(name, uri)
    runs = search_all(tracker.client, tracker.experiment_id, f"tags.`{STAGE}` != '{LAUNCH_STAGE}'")
    return [{"id": r.data.tags.get(ID), "train_seconds": r.data.metrics["train_seconds"],
             "start": r.info.start_time / 1e3, "end": r.info.end_time / 1e3} for r in runs]


def compute_span(runs: list[dict]) -> float:
    """From the first trial's training start to the last record's end.

    A run is written right after its trial ends, so its training started about train_seconds
    before the record did: the span leaves out actor start-up, not training or recording."""
    return max(r["end"] for r in runs) - min(r["start"] - r["train_seconds"] for r in runs)


def calibrate(uri: str, target_seconds: float) -> tuple[int, float]:
    """Steps for a trial of about `target_seconds`, from a short trial run in this process
    (which also pays the process's one-off costs before anything is timed)."""
    run_path("bench-calibrate", uri, [dense_trial(CALIBRATION_STEPS)])
    per_step = trial_runs(uri, "bench-calibrate")[0]["train_seconds"] / CALIBRATION_STEPS
    return max(50, round(target_seconds / per_step)), per_step


def bench_orchestration(trial_seconds: float, reps: int, many_trials: bool = True,
                        echo=print) -> dict:
    """Run vs sweep for one trial, fixed costs apart; with `many_trials`, one more trial in a
    running sweep and the 2-trial parallel efficiency."""
    import ray

    from study.sweep import connect

    folder = Path(tempfile.mkdtemp(prefix="study-bench-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    started_ray = not ray.is_initialized()
    try:
        with _mlflow_quiet():  # "Creating initial MLflow database tables..."
            store_s = timed(lambda: Tracker("bench-store", uri))[0]
        steps, per_step = calibrate(uri, trial_seconds)
        nice: list[int] = []
        ray_s = timed(lambda: nice.extend(_start_ray(connect)))[0]
        trial = [dense_trial(steps)]
        walls: dict[str, list[float]] = {"run": [], "sweep": [], "tune_noop": []}
        for rep in range(reps):
            for path in ("run", "sweep") if rep % 2 == 0 else ("sweep", "run"):
                go = run_path if path == "run" else sweep_path
                walls[path].append(go(f"bench-{path}-{rep}", uri, trial))
            walls["tune_noop"].append(tune_noop())
        train = {p: median([trial_runs(uri, f"bench-{p}-{i}")[0]["train_seconds"]
                            for i in range(reps)]) for p in ("run", "sweep")}
        run_s, sweep_s = median(walls["run"]), median(walls["sweep"])
        launch = launch_costs(sweep_s - run_s, median(walls["tune_noop"]))
        out = {
            "trial_steps": steps, "seconds_per_step": per_step, "reps": reps,
            "ray_worker_niceness": sorted(set(nice)), "load_average": load_average(),
            "fixed": {"mlflow_store_create_s": store_s,
                      "ray_start_s": ray_s if started_ray else None},
            "launch": launch, "walls_s": walls, "train_seconds": train,
            "sweep_over_run": sweep_s / run_s,
        }
        echo(f"  orchestration: lone trial run {run_s:.1f}s, sweep {sweep_s:.1f}s; launch "
             f"overhead {launch['overhead_s']:.1f}s = " + ", ".join(
                 f"{k.removesuffix('_s')} {v:.1f}" for k, v in launch.items()
                 if k != "overhead_s") + f"; once per command: store {store_s:.1f}s, "
             f"ray.init + workers up {ray_s:.1f}s")
        if many_trials:
            out["per_trial"] = _per_trial(uri, steps, run_s)
            out["parallel"] = p = _parallel(uri, steps)
            echo(f"  one more trial in a running sweep: "
                 f"{out['per_trial']['trial_in_sweep_over_run']:.3f}x the run path's; 2 trials "
                 f"one after the other {p['sequential_s']:.1f}s, side by side "
                 f"{p['parallel_s']:.1f}s: {p['speedup']:.2f}x (training spans "
                 f"{p['span_speedup']:.2f}x)")
        return out
    finally:
        if started_ray:
            ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def tune_noop() -> float:
    """Wall seconds of a Tune launch whose one trial only reports: Tune's own start and stop,
    a fresh actor process and its `ray.tune` import, and nothing of the study."""
    from ray import tune

    def noop(config: dict) -> None:  # nested: pickled by value, so the actor imports no study
        tune.report({"done": 1})

    def go() -> None:
        storage = tempfile.mkdtemp(prefix="study-bench-tune-")
        try:
            tune.Tuner(tune.with_resources(noop, {"cpu": 1}),
                       run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
        finally:
            shutil.rmtree(storage, ignore_errors=True)

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        return timed(go)[0]


def launch_costs(overhead_s: float, tune_noop_s: float) -> dict:
    """A lone trial's launch overhead (sweep - run, seconds) split into Tune's launch with a
    bare actor (which includes the ray.tune import) and the rest: the study's imports in the
    fresh actor, opening the store, Tune handing the trial over, recording from there."""
    return {"overhead_s": overhead_s, "tune_launch_s": tune_noop_s,
            "rest_s": overhead_s - tune_noop_s}


def _start_ray(connect) -> list[int]:
    """ray.init, then one task per CPU: Ray boots its worker processes in the background after
    init, and the first launch would otherwise pay for them. Returns the workers' niceness (Ray
    lowers its workers' priority: on a shared machine they get the CPU others leave)."""
    import ray

    connect(None, num_cpus=os.cpu_count() or 2)
    niceness = ray.remote(num_cpus=1)(lambda: os.nice(0))
    return ray.get([niceness.remote() for _ in range(int(ray.cluster_resources()["CPU"]))])


def _per_trial(uri: str, steps: int, run_s: float, trials: int = 3) -> dict:
    """One launch of `trials` trials, one after the other: each trial after the first reuses
    the actor, so record to record is what one more trial costs inside a running sweep."""
    sweep_path("bench-per-trial", uri, [dense_trial(steps, seed) for seed in range(trials)],
               max_concurrent=1)
    ends = sorted(r["end"] for r in trial_runs(uri, "bench-per-trial"))
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    return {"gaps_s": gaps, "trial_in_sweep_over_run": median(gaps) / run_s}


def _parallel(uri: str, steps: int) -> dict:
    trials = [dense_trial(steps, seed) for seed in (0, 1)]
    sequential = sweep_path("bench-sequential", uri, trials, max_concurrent=1)
    side_by_side = sweep_path("bench-parallel", uri, trials, max_concurrent=2)
    runs = {n: trial_runs(uri, f"bench-{n}") for n in ("sequential", "parallel")}
    spans = {n: compute_span(r) for n, r in runs.items()}
    return {
        "sequential_s": sequential, "parallel_s": side_by_side,
        "speedup": sequential / side_by_side,
        "span_speedup": spans["sequential"] / spans["parallel"],
        "spans_s": spans,
    }
