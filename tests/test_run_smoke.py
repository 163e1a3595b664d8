"""`study run smoke` end to end: every arm on both granularities, recorded per the contract."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from study.cli import app

REQUIRED_TAGS = ("study.id", "study.stage", "study.arm", "study.granularity", "study.scope",
                 "study.criterion", "study.round", "study.seed", "study.ticket", "study.model",
                 "study.width", "study.dataset", "study.lr")
SUMMARY = ("final_test_acc", "best_val_acc", "test_acc_at_best_val", "early_stop_step",
           "sparsity", "nonzero_params", "total_params", "flops", "train_seconds", "train_steps",
           "train_lr")


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('smoke') / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["run", "smoke", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return uri


def _runs(uri):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("smoke")
    return client.search_runs([exp.experiment_id], "tags.`study.stage` != 'launch'",
                              max_results=1000)


def test_smoke_records_every_trained_arm_on_both_granularities(smoke_store):
    runs = _runs(smoke_store)
    arms = {(r.data.tags["study.arm"], r.data.tags["study.granularity"]) for r in runs}
    for granularity in ("unstructured", "structured"):
        for arm in ("lottery", "reinit", "scratch_b", "finetune", "sign_constant",
                    "random_prune", "small_dense", "small_dense_b"):
            assert (arm, granularity) in arms
    assert ("dense", "none") in arms
    assert len(runs) == 1 + 2 * 2 * 8
    for run in runs:
        assert run.info.status == "FINISHED"
        assert all(t in run.data.tags for t in REQUIRED_TAGS), run.data.tags
        assert all(m in run.data.metrics for m in SUMMARY), run.data.metrics
        assert run.data.tags["mlflow.parentRunId"]
        assert run.data.tags["study.device"] == "cpu"  # how it ran, beside what it computed
        assert run.data.tags["study.channels_last"] == "False"  # opt-in: it crashes on some CPUs


def test_pruned_nets_are_counted_honestly(smoke_store):
    runs = _runs(smoke_store)
    dense = next(r for r in runs if r.data.tags["study.arm"] == "dense").data.metrics
    for run in runs:
        m, tags = run.data.metrics, run.data.tags
        small = tags["study.arm"].startswith("small_dense")
        if tags["study.granularity"] == "structured" and not small:
            assert m["total_params"] < dense["total_params"]
        elif tags["study.granularity"] == "unstructured" and not small:
            assert m["total_params"] == dense["total_params"]
            assert m["nonzero_params"] < dense["total_params"]
        if small:
            assert m["total_params"] < dense["total_params"]


def test_relaunch_adds_no_run(smoke_store):
    before = len(_runs(smoke_store))
    result = CliRunner().invoke(app, ["run", "smoke", "--tracking-uri", smoke_store])
    assert result.exit_code == 0 and "0 to run" in result.output
    assert len(_runs(smoke_store)) == before


def test_chain_artifacts_verify_their_checksums(smoke_store):
    from study.space import load_space
    from study.tracking import Tracker

    space, _ = load_space("smoke")
    imp = next(t for t in space.expand() if t.stage == "imp")
    mask = Tracker("smoke", smoke_store).load(imp, "mask.pt")
    assert all(m.dtype.is_floating_point is False for m in mask.values())
