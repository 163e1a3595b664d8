"""A pack's runs written in one transaction (`study.records.SqlBatch`) hold exactly what
MLflow's own calls write for the same trials, read back through MLflow."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from study.specs import DenseSpec, TrainSpec, TrialSpec
from study.tracking import Tracker
from study.trial import TrialRecord


def _specs() -> list[TrialSpec]:
    return [TrialSpec(stage="dense", arm="dense",
                      dense=DenseSpec(train=TrainSpec(steps=40, eval_every=10), seed=seed))
            for seed in (0, 1, 2)]


def _record(seed: int) -> TrialRecord:
    curves = [{"step": s, "train_loss": 1.0 / s + seed, "val_loss": 2.0 - s / 40,
               "val_acc": s / 40, "test_acc": 0.25 + seed / 10} for s in (10, 20, 30, 40)]
    return TrialRecord("finished", {"final_test_acc": 0.5 + seed / 10, "sparsity": 0.0},
                       curves, params={"trained.widths": "[300, 100]", "trained.steps": "40",
                               "trained.schedule_steps": "40", "trained.start_step": "0",
                               "trained.lr": "0.1", "trained.schedule": "cosine"})


def _read(uri: str) -> dict[str, dict]:
    """{study.id: what its run holds} through MLflow, run ids and times left out."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("records")
    out = {}
    for run in client.search_runs([experiment.experiment_id],
                                  "tags.`study.stage` != 'launch'"):
        tags = {k: v for k, v in run.data.tags.items() if k != "study.launch"}
        history = {key: sorted((m.step, m.value) for m in
                               client.get_metric_history(run.info.run_id, key))
                   for key in run.data.metrics}
        files = sorted(f.path for f in client.list_artifacts(run.info.run_id))
        out[tags["study.id"]] = {"status": run.info.status, "name": run.info.run_name,
                                 "tags": tags, "params": run.data.params,
                                 "latest": run.data.metrics, "history": history,
                                 "files": files}
    return out


def _record_pack(uri: str, batched: bool) -> None:
    tracker = Tracker("records", uri)
    assert (tracker.batch is not None) == batched
    specs = _specs()
    runs = tracker.start_pack(specs, parent="launch-x", tags={"study.device": "cpu"})
    assert {r.run_id for r in runs.values()} and all(
        tracker.client.get_run(r.run_id).info.status == "RUNNING" for r in runs.values())
    runs[specs[0].id].log_eval({"step": 10, "train_loss": 0.1, "val_loss": 1.75,
                                "val_acc": 0.25, "test_acc": 0.25})  # one point live
    runs[specs[0].id]._flush()
    ids = [s.id for s in specs]
    assert tracker.done_among(ids) == set()
    tracker.finish_pack([(runs[s.id], _record(s.dense.seed)) for s in specs[:2]])
    assert tracker.done_among(ids) == set(ids[:2])
    tracker.finish_pack([(runs[specs[2].id], _record(2))])
    assert tracker.done_among(ids) == set(ids)


@pytest.mark.timeout(120)
def test_a_batched_pack_holds_what_mlflows_calls_write(tmp_path, monkeypatch):
    batched, called = (f"sqlite:///{tmp_path / name / 'mlflow.db'}" for name in ("b", "c"))
    _record_pack(batched, True)
    with monkeypatch.context() as patch:
        patch.setattr(Tracker, "batch", property(lambda self: None))  # MLflow's calls
        _record_pack(called, False)
    ours, theirs = _read(batched), _read(called)
    assert set(ours) == {s.id for s in _specs()}
    assert ours == theirs
    first = ours[_specs()[0].id]
    assert first["status"] == "FINISHED" and first["tags"]["study.outcome"] == "finished"
    assert first["history"]["val_acc"] == [(10, 0.25), (20, 0.5), (30, 0.75), (40, 1.0)]
    assert first["latest"]["val_acc"] == 1.0 and first["latest"]["seed"] == 0
    assert first["files"] == ["spec.json"]


@pytest.mark.timeout(300)
def test_a_pack_recorded_on_a_tracking_server_holds_the_same(tmp_path, tracking_server):
    """The server's path (the members' requests side by side, artifacts uploaded before each
    run ends) leaves what the database store's one transaction leaves."""
    local = f"sqlite:///{tmp_path / 'local' / 'mlflow.db'}"
    _record_pack(local, True)
    _record_pack(tracking_server, False)
    assert _read(tracking_server) == _read(local)
