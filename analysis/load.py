"""MLflow runs -> a tidy pandas frame: one row per run (tags, summary metrics), curves on demand.

Dense runs serve every ticket of their seed: they are repeated once per ticket (as round 0, 100%
remaining) so every ticket's curves start at the dense net.
"""

from __future__ import annotations

import pandas as pd
from mlflow.tracking import MlflowClient

REQUIRED = ("study.id", "study.stage", "study.arm", "study.granularity", "study.round",
            "study.seed", "study.ticket", "study.model", "study.width", "study.dataset",
            "study.lr", "study.outcome")
OPTIONAL = ("study.scope", "study.criterion", "study.schedule", "study.warmup",
            "study.rewind_step", "study.dense_id", "study.diverged_step")
SUMMARY = ("final_test_acc", "best_val_acc", "test_acc_at_best_val", "early_stop_step",
           "sparsity", "nonzero_params", "total_params", "nonzero_weights", "total_weights",
           "flops", "train_steps", "train_seconds", "match_error")
INTS = ("round", "seed", "warmup", "rewind_step")
FLOATS = ("width", "lr")


class AnalysisError(ValueError):
    """The experiment cannot be analysed as asked (unknown, empty, or off the contract)."""


def load_runs(experiment: str, uri: str) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(trial runs, runs that are not usable with the reason, launch runs)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise AnalysisError(f"unknown experiment {experiment!r} in {uri}; known: "
                            f"{', '.join(names) or 'none'}")
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], max_results=5000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    launches = [r for r in runs if r.data.tags.get("study.stage") == "launch"]
    trials = [r for r in runs if r.data.tags.get("study.stage") not in ("launch", None)
              and "study.tuning" not in r.data.tags]
    if not trials:
        raise AnalysisError(f"experiment {experiment!r} has no trial runs; run "
                            f"`study sweep {experiment}` first")
    rows, unusable = [], []
    for run in trials:
        tags = run.data.tags
        missing = [t for t in REQUIRED if t not in tags]
        if missing:
            raise AnalysisError(f"run {run.info.run_id} lacks tag {missing[0]!r}: not recorded "
                                "by this tool's tracking contract")
        row = {k.removeprefix("study."): tags.get(k) for k in REQUIRED + OPTIONAL}
        row.update({m: run.data.metrics.get(m) for m in SUMMARY})
        row.update(run_id=run.info.run_id, status=run.info.status)
        if run.info.status != "FINISHED" or row["outcome"] != "finished":
            unusable.append({**row, "reason": row["outcome"] if run.info.status == "FINISHED"
                             else run.info.status.lower()})
            continue
        rows.append(row)
    frame = _typed(pd.DataFrame(rows))
    bad = _typed(pd.DataFrame(unusable)) if unusable else pd.DataFrame(
        columns=["run_id", "arm", "round", "seed", "reason"])
    return _with_dense_per_ticket(frame), bad, launches


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    for col in INTS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").fillna(0).astype(int)
    for col in FLOATS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["remaining_pct"] = 100.0 * (1.0 - frame["sparsity"].astype(float))
    return frame


def _with_dense_per_ticket(frame: pd.DataFrame) -> pd.DataFrame:
    """Repeat each dense run for every ticket that descends from it (round 0 of that ticket)."""
    dense = frame[frame.stage == "dense"]
    pruned = frame[frame.stage != "dense"]
    tickets = pruned.drop_duplicates("ticket")[
        ["ticket", "dense_id", "granularity", "scope", "criterion", "schedule", "rewind_step"]]
    copies = dense.drop(columns=["granularity", "scope", "criterion", "schedule", "rewind_step",
                                 "ticket"]).merge(tickets, left_on="id", right_on="dense_id",
                                                  suffixes=("", "_t"))
    copies = copies.drop(columns=[c for c in copies.columns if c.endswith("_t")])
    return pd.concat([pruned, copies, dense[~dense.id.isin(tickets.dense_id)]],
                     ignore_index=True)


def load_curves(uri: str, run_ids: list[str], metric: str = "val_acc") -> pd.DataFrame:
    """One row per run and step of one curve metric."""
    client = MlflowClient(uri)
    rows = [{"run_id": rid, "step": m.step, metric: m.value}
            for rid in run_ids for m in client.get_metric_history(rid, metric)]
    return pd.DataFrame(rows, columns=["run_id", "step", metric])
