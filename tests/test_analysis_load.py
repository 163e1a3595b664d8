"""Loading: MLflow runs -> the tidy frame, dense baselines per ticket, runs not analysed, and
the errors for experiments that cannot be analysed."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from test_analysis_store import (
    LRS,
    ROUNDS,
    SEEDS,
    _metrics,
    _tags,
    _write,
    arms_of,
    conditions,
    synthetic_store,
)

from analysis import AnalysisError
from analysis.load import load_runs


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    uri, _ = synthetic_store(tmp_path_factory)
    return load_runs("synthetic", uri)


def test_the_frame_is_tidy_and_typed(loaded):
    frame, _, launches = loaded
    assert len(launches) == 2
    assert frame["round"].dtype.kind == "i" and frame.seed.dtype.kind == "i"
    assert frame.lr.dtype.kind == "f" and frame.width.dtype.kind == "f"
    assert {"final_test_acc", "early_stop_step", "nonzero_weights", "remaining_pct"} <= set(
        frame)
    lottery = frame[(frame.arm == "lottery") & (frame.width == 1.0)
                    & (frame.granularity == "unstructured")]
    assert sorted(lottery.remaining_pct.round(6).unique()) == [12.5, 25.0, 50.0]
    assert not any(c.startswith("study.") for c in frame)


def test_one_dense_run_is_round_0_of_every_ticket_it_serves(loaded):
    frame, _, _ = loaded
    dense = frame[frame.arm == "dense"]
    assert dense.run_id.nunique() == len(LRS) * len(SEEDS) + len(SEEDS)
    # width 1.0 dense runs serve an unstructured and a structured ticket each
    per_run = dense.groupby("run_id").ticket.nunique()
    assert sorted(per_run.value_counts().to_dict().items()) == [(1, 5), (2, 10)]
    assert (dense.remaining_pct == 100).all() and (dense["round"] == 0).all()
    tickets = frame[frame.stage != "dense"].ticket.unique()
    assert set(dense.ticket) == set(tickets)
    pair = dense[dense.ticket.isin(frame[frame.granularity == "structured"].ticket)]
    assert set(pair.granularity) == {"structured"} and set(pair.criterion) == {"l1_filter"}


def test_runs_not_analysed_are_listed_with_their_reason(loaded):
    frame, unusable, _ = loaded
    reasons = unusable.set_index("arm").reason.to_dict()
    assert reasons == {"reinit": "diverged", "scratch_b": "failed", "sign_constant": "skipped"}
    failed = unusable[unusable.reason == "failed"].iloc[0]
    assert failed.note == "recomputed by a later run"
    assert unusable[unusable.reason == "diverged"].diverged_step.iloc[0] == "120"
    assert not frame.run_id.isin(unusable.run_id).any()


def test_every_pruned_cell_has_one_run(loaded):
    frame, _, _ = loaded
    pruned = frame[frame.stage != "dense"]
    assert not pruned.duplicated(["arm", "ticket", "round", "seed"]).any()
    expected = sum(len(arms_of(w, g)) for w, _, g in conditions()) * len(ROUNDS) * len(SEEDS)
    assert len(pruned) == expected - 1  # the diverged reinit


def test_a_missing_tag_is_named(tmp_path_factory):
    uri, _ = synthetic_store(tmp_path_factory)
    with pytest.raises(AnalysisError, match="lacks the required tag 'study.ticket'"):
        load_runs("untagged", uri)


def test_a_run_killed_before_its_outcome_is_listed_not_fatal(tmp_path):
    """A sweep killed mid-trial leaves a KILLED run with every tag but the outcome (written
    last); the resumed sweep records the trial again. Analysis lists the killed run, not fails."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("killed", artifact_location=(tmp_path / "a").as_uri())
    tags = _tags("dense", "dense", 1.0, 0.1, 0)
    half = {k: v for k, v in tags.items() if k != "study.outcome"}
    _write(client, exp, None, half, {}, "KILLED")
    _write(client, exp, None, tags, {"final_test_acc": 0.6})
    frame, unusable, _ = load_runs("killed", uri)
    assert len(frame) == 1 and frame.final_test_acc.iloc[0] == 0.6
    assert unusable.reason.tolist() == ["killed"]
    assert unusable.note.tolist() == ["recomputed by a later run"]


def test_unknown_and_empty_experiments_are_explained(tmp_path_factory):
    uri, _ = synthetic_store(tmp_path_factory)
    with pytest.raises(AnalysisError, match="unknown experiment 'nothing'.*known: .*synthetic"):
        load_runs("nothing", uri)
    with pytest.raises(AnalysisError, match="'empty' has no trial runs"):
        load_runs("empty", uri)


def test_the_condition_is_read_from_its_metrics(tmp_path):
    """A run's numbers are its metrics (`contract.NUMBERS`); the tags are strings for equality
    filters, which analysis parses only where the metric is missing (earlier versions)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("numbers", artifact_location=(tmp_path / "a").as_uri())
    tags = _tags("dense", "dense", 1.0, 0.1, 0)
    _write(client, exp, None, {**tags, "study.lr": "a tenth"},  # the metric alone is read
           {**_metrics("dense", 0.1, "none", 1.0, 0, 0), "lr": 0.1}, numbers=False)
    frame, _, _ = load_runs("numbers", uri)
    assert frame.lr.tolist() == [0.1] and frame.lr.dtype.kind == "f"
    older = client.create_experiment("older", artifact_location=(tmp_path / "b").as_uri())
    _write(client, older, None, {**tags, "study.lr": "a tenth"},
           _metrics("dense", 0.1, "none", 1.0, 0, 0), numbers=False)
    with pytest.raises(AnalysisError, match="tag 'study.lr' = 'a tenth' is not a number"):
        load_runs("older", uri)


def test_runs_recorded_before_the_condition_metrics_load_from_their_tags(tmp_path_factory):
    uri, _ = synthetic_store(tmp_path_factory)
    frame, unusable, _ = load_runs("single", uri)  # tags only, as an earlier version wrote
    assert unusable.empty and frame["round"].dtype.kind == "i" and frame.lr.dtype.kind == "f"
    assert set(frame.lr) == {0.1} and set(frame["round"]) == {0, 1, 2}
