"""Live runs on a real MLflow store: a trial's run exists and fills while it trains, a retry
reuses it, a failure says why, and nothing is counted done before it is."""

from __future__ import annotations

import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from study.runner import run_sequential
from study.space import Space
from study.specs import DenseSpec, TrainSpec, TrialSpec
from study.tracking import Tracker
from study.trial import TrialRecord

SPACE = Space(name="live", model={"name": "mlp", "hidden": [64, 64]},
              train={"steps": 2000, "eval_every": 500, "batch_size": 100}, prune={"rounds": 1},
              arms=[])


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One store for the tests that need no training (creating a store takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('live') / 'mlflow.db'}"


def _spec(seed: int = 0) -> TrialSpec:
    return TrialSpec(stage="dense", arm="dense",
                     dense=DenseSpec(train=TrainSpec(steps=40, eval_every=10), seed=seed))


def _record(steps=(10, 20, 30, 40)) -> TrialRecord:
    curves = [{"step": s, "train_loss": 1.0 / s, "val_loss": 1.0, "val_acc": 0.5,
               "test_acc": 0.5} for s in steps]
    return TrialRecord("finished", {"final_test_acc": 0.5}, curves,
                       params={"trained.widths": "[300, 100]"})


@pytest.mark.timeout(300)
def test_a_trials_run_is_running_and_filling_while_it_trains(store, monkeypatch):
    """Look at the store as the UI does, from another thread, while `study run`'s worker
    process trains: the dense trial's run is there, RUNNING, with part of its curve (written
    at each evaluation here: the default interval of 5 s is longer than this trial)."""
    monkeypatch.setenv("STUDY_LIVE_SECONDS", "0")
    tracker = Tracker("live", store)
    client = MlflowClient(store)
    seen, stop = [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for run in client.search_runs([tracker.experiment_id],
                                          "tags.`study.arm` = 'dense'"):
                points = len(client.get_metric_history(run.info.run_id, "val_acc"))
                seen.append((run.info.status, points))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        counts = run_sequential(SPACE, "", SPACE.expand()[:2], tracker, echo=None)
    finally:
        stop.set()
        watcher.join()
    assert counts == {"finished": 2}
    partial = {points for status, points in seen if status == "RUNNING"}
    assert partial & {1, 2, 3}, seen  # caught mid-training with some of its 4 evaluations
    assert seen[-1] == ("FINISHED", 4)
    runs = client.search_runs([tracker.experiment_id], "tags.`study.stage` != 'launch'")
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "val_acc")
        stamps = [m.timestamp for m in sorted(history, key=lambda m: m.step)]
        assert len(stamps) == 4 and all(a < b for a, b in zip(stamps, stamps[1:]))
        assert run.info.start_time < stamps[0] <= stamps[-1] <= run.info.end_time


def test_a_retry_in_the_same_launch_reuses_the_run_and_logs_no_step_twice(shared,
                                                                        monkeypatch):
    monkeypatch.setenv("STUDY_LIVE_SECONDS", "0")  # each evaluation written as it comes
    tracker = Tracker("retry", shared)
    spec = _spec()
    first = tracker.start(spec, parent="L1")
    for row in _record().curves[:3]:  # killed after its third evaluation
        first.log_eval(row)
    assert spec.id not in tracker.done()
    again = tracker.start(spec, parent="L1")  # the retry resumes from a checkpoint at step 20
    assert again.run_id == first.run_id
    for row in _record().curves[2:]:
        again.log_eval(row)
    again.finish(_record())
    client = MlflowClient(shared)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["study.attempt"] == "2"
    assert [m.step for m in client.get_metric_history(first.run_id, "train_loss")] == [
        10, 20, 30, 40]
    assert tracker.done() == {spec.id: first.run_id}
    other = tracker.start(_spec(seed=1), parent="L2")  # another launch: its own run
    assert other.run_id != first.run_id


def test_a_failed_attempt_says_why_is_not_done_and_its_retry_finishes_it(shared):
    tracker = Tracker("failed", shared)
    spec = _spec()
    run = tracker.start(spec, parent="L1")
    run.fail("worker died by SIGSEGV (device cpu, channels_last True)")
    client = MlflowClient(shared)
    failed = client.get_run(run.run_id)
    assert failed.info.status == "FAILED"
    assert "SIGSEGV" in failed.data.tags["study.failure"]
    assert spec.id not in tracker.done() and not tracker.is_done(spec.id)
    retry = tracker.start(spec, parent="L1")
    assert retry.run_id == run.run_id
    retry.finish(_record())  # curves only in the record: written at the end, each once
    assert tracker.is_done(spec.id)
    assert len(client.get_metric_history(run.run_id, "val_acc")) == 4


def test_a_new_launch_closes_what_a_dead_one_left_running_and_starts_afresh(shared):
    tracker = Tracker("dangling", shared)
    spec = _spec()
    dead = tracker.start(spec, parent="L1")
    assert tracker.close_dangling() == 1
    fresh = tracker.start(spec, parent="L2")
    assert fresh.run_id != dead.run_id
    assert MlflowClient(shared).get_run(dead.run_id).info.status == "KILLED"


def test_curve_points_wait_for_the_interval_and_keep_their_evaluation_time(shared,
                                                                          monkeypatch):
    """A short trial writes its curve once, at the end, each point stamped when it was
    evaluated; a failed one still writes what it had evaluated."""
    monkeypatch.setenv("STUDY_LIVE_SECONDS", "3600")
    tracker, client = Tracker("throttled", shared), MlflowClient(shared)
    run = tracker.start(_spec(), parent="L1")
    stamps = []
    for row in _record().curves:
        run.log_eval(row)
        stamps.append(int(time.time() * 1000))
        time.sleep(0.01)
    assert client.get_metric_history(run.run_id, "val_acc") == []  # nothing written yet
    run.finish(_record())
    history = sorted(client.get_metric_history(run.run_id, "val_acc"), key=lambda m: m.step)
    assert [m.step for m in history] == [10, 20, 30, 40]
    assert all(m.timestamp <= s for m, s in zip(history, stamps))
    assert all(a.timestamp < b.timestamp for a, b in zip(history, history[1:]))
    failing = tracker.start(_spec(seed=1), parent="L1")
    for row in _record().curves[:2]:
        failing.log_eval(row)
    failing.fail("worker died")
    assert [m.step for m in client.get_metric_history(failing.run_id, "val_acc")] == [10, 20]
