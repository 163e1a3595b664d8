"""MLflow runs -> a tidy pandas frame: one row per run (its tags, its condition's numbers and
summary metrics).

All runs come from one paginated search (hundreds of runs in about a second); curves are fetched
only on demand, for the few runs a training-curve figure shows. Runs that cannot be analysed
(failed, killed, still running, diverged, skipped) are returned beside the frame with a reason,
so the report lists them instead of dropping them silently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from analysis.matching import deduplicate, expand_dense, ticket_problems
from study.contract import (
    LAUNCH,
    LAUNCH_STAGE,
    OPTIONAL,
    OUTCOME,
    PREFIX,
    REQUIRED,
    STAGE,
    STAGES,
    TUNING,
    default_uri,
    relocate,
    search_all,
    store_exists,
    tag,
    unreachable,
)

SUMMARY = ("final_test_acc", "best_val_acc", "test_acc_at_best_val", "early_stop_step",
           "sparsity", "nonzero_params", "total_params", "nonzero_weights", "total_weights",
           "flops", "train_steps", "train_seconds", "match_error", "barrier_test", "barrier_val",
           "pruned_val_acc", "pruned_test_acc", "best_val_step", "converged", "train_flops",
           "upstream_train_flops", "cumulative_train_flops")
INTS = ("round", "seed", "warmup", "rewind_step", "steps")
FLOATS = ("width", "lr")
"""The condition's numbers analysis computes with: read from their metrics (`contract.NUMBERS`),
from their tags' strings in runs recorded before those metrics were logged."""
NUMERIC = INTS + FLOATS


class AnalysisError(ValueError):
    """The experiment cannot be analysed as asked (unknown, empty, or off the contract)."""


def resolve_uri(tracking_uri: str | None) -> str:
    """The store to read: the argument, `MLFLOW_TRACKING_URI`, else ./mlruns/mlflow.db (the
    study's local default). A missing SQLite file is an error, not a fresh empty store."""
    uri = tracking_uri or default_uri()
    if not store_exists(uri):
        raise AnalysisError(f"no tracking store at {uri}; run a sweep first or pass "
                            "--tracking-uri")
    err = unreachable(uri)
    if err is not None:
        raise AnalysisError(f"tracking server {uri} is unreachable ({err})")
    relocate(uri)  # a study folder moved or copied: read and log its own artifacts
    return uri


def fetch_runs(experiment: str, uri: str) -> list:
    """Every run of the experiment, in pages of 5000 (one query per page, never one per run)."""
    client = MlflowClient(uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = sorted(e.name for e in client.search_experiments())
            raise AnalysisError(f"unknown experiment {experiment!r} in {uri}; known: "
                                f"{', '.join(names) or 'none'}")
        return search_all(client, found.experiment_id)
    except MlflowException as err:
        raise AnalysisError(f"tracking store {uri} cannot be read: {err.message}") from None


def load_runs(experiment: str, uri: str) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(usable trial runs, runs not analysed with a `reason`, launch runs).

    The frame has one row per run and ticket: a dense run is repeated as round 0 of every
    ticket that descends from it, so each ticket's curve starts at its own dense baseline.
    """
    runs = fetch_runs(experiment, uri)
    launches = [r for r in runs if r.data.tags.get(STAGE) == LAUNCH_STAGE]
    trials = [r for r in runs if r.data.tags.get(STAGE) != LAUNCH_STAGE
              and TUNING not in r.data.tags]
    if not trials:
        raise AnalysisError(f"experiment {experiment!r} has no trial runs (only "
                            f"{len(launches)} launch run(s)); run `study sweep` first")
    table = _typed(pd.DataFrame([_row(r) for r in trials]))
    ok = (table.status == "FINISHED") & (table.outcome == "finished")
    table["reason"] = np.where(table.status == "FINISHED", table.outcome,
                               table.status.str.lower())
    unusable = table[~ok].copy()
    redone = set(table.loc[ok, "id"])
    unusable["note"] = np.where(unusable.id.isin(redone), "recomputed by a later run", "")
    kept, duplicates = deduplicate(table[ok].drop(columns="reason"))
    problems = ticket_problems(kept)
    if problems:
        raise AnalysisError(problems[0])
    unusable = pd.concat([unusable, duplicates], ignore_index=True)
    return expand_dense(kept), unusable.reset_index(drop=True), launches


def _row(run) -> dict:
    tags = run.data.tags
    ended = run.info.status == "FINISHED"  # a killed or running run has no outcome yet
    missing = [t for t in REQUIRED if t not in tags and (ended or t != OUTCOME)]
    if missing:
        raise AnalysisError(f"run {run.info.run_id} ({run.info.run_name}) lacks the required "
                            f"tag {missing[0]!r}" + (f" (and {len(missing) - 1} more)"
                                                     if len(missing) > 1 else "")
                            + ": it was not recorded by this study's tracking contract")
    if tags[STAGE] not in STAGES:
        raise AnalysisError(f"run {run.info.run_id}: tag {STAGE!r} is {tags[STAGE]!r}; "
                            f"expected one of {', '.join(STAGES)}")
    row = {k.removeprefix(PREFIX): tags.get(k) for k in REQUIRED + OPTIONAL}
    if row["variant"]:  # an at-init arm's ablation is an arm of its own (contract.VARIANT)
        row["arm"] = f"{row['arm']}+{row['variant']}"
    if row["steps"] is None:  # recorded before budget checks: one budget, unknown
        row["steps"] = "0"
    if row["retrain"] is None:  # recorded before fine-tune chains: every chain was IMP
        row["retrain"] = "none" if tags[PREFIX + "granularity"] == "none" else "rewind"
    row.update({m: run.data.metrics[m] for m in NUMERIC if m in run.data.metrics})
    row.update({m: run.data.metrics.get(m, np.nan) for m in SUMMARY})
    row.update(run_id=run.info.run_id, status=run.info.status, start_time=run.info.start_time,
               launch=tags.get(LAUNCH, tags.get("mlflow.parentRunId")))  # or older
    return row


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Integers and floats (metrics, or older runs' string tags); a value that does not parse
    is an error."""
    for col, kind in [(c, "an integer") for c in INTS] + [(c, "a number") for c in FLOATS]:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() | ((values % 1 != 0) if col in INTS else False)
        if bad.any():
            first = frame[bad].iloc[0]
            raise AnalysisError(f"run {first.run_id}: tag {tag(col)!r} = {first[col]!r} is not "
                                f"{kind}")
        frame[col] = values.astype(int) if col in INTS else values.astype(float)
    frame["remaining_pct"] = 100.0 * (1.0 - frame["sparsity"].astype(float))
    return frame


def load_curves(uri: str, run_ids: list[str], metrics: tuple[str, ...] = ("val_acc",)
                ) -> pd.DataFrame:
    """One row per run and step: the per-evaluation metrics of a few runs (one call each)."""
    client = MlflowClient(uri)
    per_step: dict[tuple[str, int], dict] = {}
    for rid in run_ids:
        for metric in metrics:
            for m in client.get_metric_history(rid, metric):
                per_step.setdefault((rid, m.step), {"run_id": rid, "step": m.step})[metric] = (
                    m.value)
    return pd.DataFrame(list(per_step.values()), columns=["run_id", "step", *metrics])
