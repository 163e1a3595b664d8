"""`study sweep`: the trials of a space on Ray Tune, scheduled as a dependency graph.

A Tune `Searcher` hands out a trial only once every parent it reads (the dense net, the previous
IMP round) is recorded, so the arms of round r start as soon as round r's mask exists and run in
parallel with round r+1. A Tune trial is a pack of up to K trials (`study.pack.next_pack`: a
stacked loop per shape, `study.pack`): it runs the same `run_pack` as `study run` and records
each of its trials in the tracking store, where their children read their artifacts (checksum
verified), on one machine or on any node of a cluster. Packs checkpoint through Tune and
resume, every member where it was, after a worker dies.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import ray
import torch
from ray import tune
from ray.tune.search import Searcher

from study.contract import NODE
from study.execution import Execution
from study.pack import next_pack
from study.packing import PackSizes
from study.plan import budget, threads_for
from study.progress import ProgressLine
from study.recording import record_pack
from study.runner import (
    done_and_pending,
    launch_params,
    list_blocked,
)
from study.space import Space
from study.specs import TrialSpec
from study.supervise import Supervised, death_message, read_report
from study.tracking import Tracker
from study.train import Checkpointer
from study.words import one_line, outcome_line
from study.worker import pack_header


class DependencySearcher(Searcher):
    """Suggests packs of up to `pack_size` pending trials, each trial once all its parents are
    done (`study.pack.next_pack`: whole groups of one shape each); FINISHED when none can be."""

    def __init__(self, trials: list[TrialSpec], done: set[str],
                 on_change: Callable[[DependencySearcher], None] | None = None,
                 pack_size: int | PackSizes = 1) -> None:
        super().__init__()
        self.pending, self.pack_size = list(trials), pack_size
        self.done, self.failed, self.running = set(done), set(), {}
        self.errors: dict[str, str] = {}  # trial id: why it failed (not its blocked children)
        self.blocked: list[TrialSpec] = []  # never run: a trial they depend on failed
        self.on_change = on_change or (lambda s: None)

    def _blocked(self, spec: TrialSpec) -> bool:
        return any(p.id in self.failed for p in spec.parents())

    def suggest(self, trial_id: str) -> dict | str | None:
        pack = next_pack(self.pending, self.done, self.pack_size)
        if pack:
            self.pending = [s for s in self.pending if s not in pack]
            self.running[trial_id] = pack
            self.on_change(self)
            return {"ids": [s.id for s in pack]}  # the specs travel in the trainable
        while blocked := [s for s in self.pending if self._blocked(s)]:  # and their children
            self.blocked += blocked
            self.failed |= {s.id for s in blocked}
            self.pending = [s for s in self.pending if s.id not in self.failed]
        if not self.pending or not self.running:
            return Searcher.FINISHED  # nothing left that could ever become ready
        return None

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        """A pack ended: its members are done, except those it reports failed (a bad upstream
        artifact) and, if the pack itself errored, all of them."""
        pack = self.running.pop(trial_id, [])
        failed = _failed(result)
        for spec in pack:
            if error or spec.id in failed:
                self.failed.add(spec.id)
                self.errors[spec.id] = failed.get(spec.id, "the pack's worker failed")
            else:
                self.done.add(spec.id)
        self.on_change(self)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the tracking store is the state, and a relaunch rebuilds the queue
        from it (Tune would otherwise warn at every experiment checkpoint)."""


def _failed(result: dict | None) -> dict[str, str]:
    """{trial id: error} of the members a pack reported failed."""
    return json.loads((result or {}).get("failed") or "{}")


class TuneCheckpointer(Checkpointer):
    """Training state saved through Tune, so a restarted trial resumes where it stopped."""

    def load(self) -> dict | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return torch.load(Path(folder) / "state.pt", weights_only=True)

    def save(self, state: dict) -> None:
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state, Path(folder) / "state.pt")
            tune.report({"step": state["state"]["step"]},
                        checkpoint=tune.Checkpoint.from_directory(folder))


def make_trainable(experiment: str, uri: str, launch: str, trials: list[TrialSpec],
                   execution: Execution, threads: int, faults: Path, stall_seconds: float,
                   checkpoint_every: int | None = None, checkpoint_seconds: float = 60.0,
                   stacked: bool = False):
    """The Tune function trainable: `run_tune_pack` on the pack whose ids the searcher
    suggests. The specs ride in the trainable, shipped once per worker: in a trial's config,
    Tune would copy each into its experiment state, which it rewrites throughout the sweep
    (16 KB a trial, gigabytes of writes for the quickstart).

    The closure holds plain data only and imports the study inside, so a fresh Tune actor is
    ready in ~3 s, not the ~8 s that importing torch and MLflow adds. A pack of small nets can
    last less: Tune then gives the finished pack's actor to the next pack and kills the one
    still starting for it, again and again, and a 2-core sweep runs one pack at a time (the
    lecture space did: 8 min instead of under 5; `next_pack` also makes short packs longer)."""
    kwargs = {"experiment": experiment, "uri": uri, "launch": launch,
              "specs": {t.id: t.model_dump_json() for t in trials},
              "execution": dataclasses.asdict(execution), "threads": threads,
              "faults": str(faults), "stall_seconds": stall_seconds,
              "checkpoint_every": checkpoint_every, "checkpoint_seconds": checkpoint_seconds,
              "stacked": stacked}

    def trainable(config: dict) -> None:
        from study.sweep import run_tune_pack  # torch and MLflow: on the first pack only

        run_tune_pack(config["ids"], **kwargs)

    return trainable


def run_tune_pack(ids: list[str], experiment: str, uri: str, launch: str,
                  specs: dict[str, str], execution: dict, threads: int, faults: str,
                  stall_seconds: float, checkpoint_every: int | None,
                  checkpoint_seconds: float, stacked: bool) -> None:
    """Run the pack `ids` on this Tune worker and record each member (once) in the store,
    under a fault file (named after the pack's first trial) and a stall watchdog
    (`study.supervise`); report what was recorded and what failed."""
    torch.set_num_threads(threads)
    tracker = Tracker(experiment, uri, probe=False)
    run_on = Execution(**execution)
    # a retry after some records were written: only the rest
    recorded_before = tracker.done_among(ids)
    todo = [TrialSpec.model_validate_json(specs[i]) for i in ids if i not in recorded_before]
    failed, recorded = {}, {}
    if todo:
        node = ray.get_runtime_context().get_node_id()
        with Supervised(Path(faults) / f"{ids[0]}.txt",
                        f"{pack_header(todo, run_on)}, node {node}", stall_seconds):
            # a killed attempt's runs stay RUNNING (a failed one FAILED) until Tune's retry
            # resumes them: one run per trial and launch
            outcomes = record_pack(todo, tracker, run_on, launch,
                                   TuneCheckpointer(checkpoint_every, checkpoint_seconds),
                                   extra_tags={NODE: node}, stacked=stacked)
        # not recorded: the next launch redoes them
        failed = {i: str(r)[:500] for i, r in outcomes.items() if isinstance(r, Exception)}
        recorded = {i: [r.outcome, r.metrics.get("final_test_acc")]
                    for i, r in outcomes.items() if not isinstance(r, Exception)}
    # strings: Tune keeps them as they are
    tune.report({"trial_done": 1, "failed": json.dumps(failed),
                 "recorded": json.dumps(recorded)})


class RecordFailures(tune.Callback):
    """A trial Tune gave up on (its retries spent) is recorded FAILED in the store, with what
    killed its process (from the fault file it left) and Ray's own account."""

    def __init__(self, experiment: str, uri: str, launch: str, trials: list[TrialSpec],
                 faults: Path, execution: Execution) -> None:
        self.experiment, self.uri, self.launch, self.faults = experiment, uri, launch, faults
        self.specs = {t.id: t for t in trials}
        self.execution = execution
        self.failures: dict[str, str] = {}  # trial id -> message

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the experiment state
        return {**self.__dict__, "specs": {}}

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        pack = [self.specs[i] for i in trial.config.get("ids", []) if i in self.specs]
        if not pack:
            return
        header = pack_header(pack, self.execution)
        report = read_report(self.faults / f"{pack[0].id}.txt")
        ray_error = _ray_error(trial)
        if report is None and "died" not in ray_error:  # an exception, not a death
            message = f"the trial raised an error; {header}; {ray_error}"
        else:
            message = death_message(report, header, detail=ray_error)
        tracker = Tracker(self.experiment, self.uri, probe=False)
        for spec in pack:  # every member the pack had not recorded yet
            if not tracker.is_done(spec.id):
                self.failures[spec.id] = message
                tracker.fail(spec, message, parent=self.launch,
                             extra_tags=self.execution.tags())


def _ray_error(trial) -> str:
    """The first line of Ray's account of a trial's failure, and its exit detail."""
    try:
        text = Path(trial.error_file).read_text(errors="replace")
    except (OSError, TypeError):
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keep = [line for line in lines if "Worker exit detail" in line or line.startswith(
        ("ray.exceptions", "RuntimeError", f"{__package__}."))]  # or this package's errors
    return "Ray: " + " ".join((keep or lines[-1:])[:2])[:800]


class Progress(tune.Callback):
    """Feeds Tune's trial events to the progress line, a line per member of each pack (the
    members' ids ride in the config)."""

    def __init__(self, line: ProgressLine, specs: dict[str, TrialSpec]) -> None:
        self.line, self.specs = line, specs

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the experiment state
        return {"line": None, "specs": {}}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        for trial_id in trial.config["ids"]:
            self.line.started(trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        failed = _failed(result)
        recorded = json.loads(result.get("recorded") or "{}")
        for trial_id in trial.config["ids"]:  # one line per member trial of the pack
            spec = self.specs[trial_id]
            if trial_id in failed:
                self.line.finished(trial_id, outcome_line(spec, f"failed: {failed[trial_id]}"),
                                   failed=True)
            else:
                outcome, acc = recorded.get(trial_id, ["recorded", None])
                self.line.finished(trial_id, outcome_line(spec, outcome, acc))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        for trial_id in trial.config["ids"]:
            self.line.finished(trial_id, outcome_line(self.specs[trial_id],
                                                      "failed (its run says why)"), failed=True)


class _TokenNotice(logging.Filter):
    """Ray's notice that token authentication is on: the safe default, nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this")


TOKEN_NOTICE = _TokenNotice()


def quiet_ray() -> None:
    """Keep the terminal for the study's own progress: Tune's classic reporter, silent at
    verbose 0 (its new one prints a configuration table, a results folder that is deleted
    afterwards and a TensorBoard hint for files the study does not use), and no token-auth
    notice. Ray's own logs stay in its session folder, /tmp/ray/session_latest/logs."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
        TOKEN_NOTICE)


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join a cluster by address, or start a local Ray bound to loopback with no dashboard."""
    if ray.is_initialized():
        return
    quiet_ray()
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ConnectionError(f"cannot join the Ray cluster at {address}: {err}") from None
        return
    pin_loopback()
    # Ray lowers its workers' priority (niceness 15): on a shared laptop a trial then loses
    # CPU to anything else running; trials are the work here, so run them at normal priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
             log_to_driver=False, configure_logging=False)


def pin_loopback() -> None:
    """Keep a local Ray on 127.0.0.1: Ray swaps 127.0.0.1 for the machine's network address
    unless its "no cluster" mode is on. Workers read the variable; this process, which has
    imported ray already, needs the constant too."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False


def run_sweep(space: Space, source: str, trials: list[TrialSpec], tracker: Tracker, *,
              address: str | None = None, max_concurrent: int | None = None,
              execution: Execution | None = None,
              echo: Callable[[str], object] | None = print,
              pack_size: int | PackSizes = 1) -> dict[str, int]:
    """Schedule every trial not yet done, in packs of up to `pack_size` (`study.pack`; a Tune
    trial is a pack, with the space's resources); returns counts of trials done and failed.
    `echo`: where progress goes (a live line instead on a terminal); None: nowhere."""
    line = ProgressLine(echo)
    done, todo = done_and_pending(tracker, trials, line)
    if not todo:
        return {"done": 0, "failed": 0}
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    connect(address)
    quiet_ray()  # also when the caller started Ray
    cpus, gpus = space.resources.cpu, space.resources.gpu
    # Tune keeps one trial pending at a time behind a custom searcher: too few to fill a
    # cluster whose trials last seconds. Let as many wait as there are CPUs.
    slots = max(2, int(ray.cluster_resources().get("CPU", 2) / max(cpus, 0.01)))
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(slots))
    if gpus > 0 and ray.cluster_resources().get("GPU", 0) < gpus:
        raise ConnectionError(f"the space asks for resources.gpu={gpus:g} per trial but this Ray "
                              "cluster has no GPU; join a GPU cluster or set resources.gpu=0")
    # Reusing trial actors saves seconds per trial, but pins a chain's trials to one node:
    # reuse only where there is a single node.
    single_node = sum(n["Alive"] for n in ray.nodes()) == 1
    launch = tracker.start_launch(space.name, source, launch_params(space, trials, todo, "sweep"))
    searcher = DependencySearcher(todo, done, pack_size=pack_size)
    execution = execution or Execution()
    given = os.environ.get("STUDY_TUNE_STORAGE")  # a shared folder on a cluster, or for tests
    storage = Path(given or tempfile.mkdtemp(prefix="study-tune-"))
    faults = storage / "faults"  # where trial processes leave what killed them
    trainable = make_trainable(space.name, tracker.uri, launch, todo, execution,
                               threads_for(space), faults, space.stall_seconds,
                               space.checkpoint_every, space.checkpoint_seconds,
                               PackSizes.of(pack_size).most(todo) > 1)
    failures = RecordFailures(space.name, tracker.uri, launch, todo, faults, execution)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=len(todo),
                                    max_concurrent_trials=max_concurrent,
                                    reuse_actors=single_node),
        run_config=tune.RunConfig(
            name=space.name, storage_path=str(storage), verbose=0,
            failure_config=tune.FailureConfig(max_failures=space.retries),
            # a resume reads the latest checkpoint only; Tune would keep every one on disk
            # (Tune then saves its experiment state at each trial checkpoint: one a minute)
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[Progress(line, {t.id: t for t in todo}), failures]),
    )
    line.begin({t.id: budget(t) for t in todo})
    try:
        results = tuner.fit()
    finally:
        line.close()
        if not given:
            shutil.rmtree(storage, ignore_errors=True)
    failed = len(searcher.errors)  # members: a pack's death fails all it had not recorded
    tracker.end_launch(launch, failed=bool(failed) or any(r.error is not None for r in results))
    for spec_id, message in failures.failures.items():
        line.say(f"FAILED {one_line(failures.specs[spec_id])}: {message}")
    specs = {t.id: t for t in todo}
    for spec_id, message in searcher.errors.items():  # a bad upstream artifact, not a death
        if spec_id not in failures.failures:
            line.say(f"failed: {one_line(specs[spec_id])}: {message}")
    list_blocked(searcher.blocked, line.say)
    return {"done": len(searcher.done - done), "failed": failed,
            "blocked": len(searcher.blocked)}


