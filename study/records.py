"""A pack's records in one transaction: the rows MLflow's own calls would write, for all members.

Through `MlflowClient`, a trial's run costs about six transactions (create, log its condition,
log its summary, end it, ...), each paying MLflow's validation, its ORM and a commit: ~90 ms a
trial on a Zen 5 core, as much as training a quickstart net. For a database store (SQLite, or
a database server) `SqlBatch` writes the same rows (`runs`, `tags`, `params`, `metrics`,
`latest_metrics`, in MLflow's own table models) for every member of a pack at once: one
transaction when the pack starts (its runs RUNNING, with their condition) and one when it ends
(summaries, curves, outcome, FINISHED), ~1 ms a trial. What a run holds is what MLflow's calls
would have written; `tests/test_tracking_live.py` reads the runs back through MLflow.

A pack ends in one commit: a killed process leaves either every member's record or none
(those are redone), never half a run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from mlflow.entities import LifecycleStage, Metric, Param, RunStatus, SourceType
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.uri import append_to_uri_path
from sqlalchemy import and_, delete, insert, or_, select, update

from study.contract import ID, OUTCOME

RUNNING, FINISHED = (RunStatus.to_string(s) for s in (RunStatus.RUNNING, RunStatus.FINISHED))


@dataclass
class RunRows:
    """What one run gets in a batch: tags (set or replaced), params, metrics."""

    run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    params: list[Param] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)


def sql_store(client) -> SqlAlchemyStore | None:
    """The client's store if it is a database MLflow reaches directly (else None: a server)."""
    store = client._tracking_client.store
    return store if isinstance(store, SqlAlchemyStore) else None


class SqlBatch:
    """Writes a pack's runs into a database store, one transaction per call."""

    def __init__(self, store: SqlAlchemyStore, experiment_id: str) -> None:
        self.store, self.experiment_id = store, experiment_id
        self.artifact_location = store.get_experiment(experiment_id).artifact_location

    def create(self, runs: list[tuple[str, RunRows]], start_time: int) -> list[tuple[str, str]]:
        """New RUNNING runs, one per (run name, rows): [(run id, artifact URI)], in order."""
        made, run_rows = [], []
        for name, rows in runs:
            run_id = rows.run_id = uuid.uuid4().hex
            uri = append_to_uri_path(self.artifact_location, run_id,
                                     SqlAlchemyStore.ARTIFACTS_FOLDER_NAME)
            rows.tags = {MLFLOW_RUN_NAME: name, **rows.tags}
            run_rows.append({
                "run_uuid": run_id, "name": name, "artifact_uri": uri,
                "experiment_id": int(self.experiment_id),
                "source_type": SourceType.to_string(SourceType.UNKNOWN), "source_name": "",
                "entry_point_name": "", "user_id": "unknown", "status": RUNNING,
                "start_time": start_time, "end_time": None, "deleted_time": None,
                "source_version": "", "lifecycle_stage": LifecycleStage.ACTIVE})
            made.append((run_id, uri))
        with self.store.ManagedSessionMaker() as session:
            session.execute(insert(SqlRun), run_rows)
            self._rows(session, [rows for _, rows in runs], fresh=True)
        return made

    def finish(self, runs: list[RunRows], end_time: int) -> None:
        """Add each run's rows, replace the tags it names, and end it FINISHED."""
        with self.store.ManagedSessionMaker() as session:
            self._rows(session, runs, fresh=False)
            session.execute(update(SqlRun).where(SqlRun.run_uuid.in_([r.run_id for r in runs]))
                            .values(status=FINISHED, end_time=end_time))

    def done(self, trial_ids: list[str], outcomes: tuple[str, ...]) -> set[str]:
        """The ids among `trial_ids` with a FINISHED run whose `study.outcome` is one of
        `outcomes`: one query for a pack (MLflow's search would take one per trial)."""
        ids, outcome = SqlTag.__table__.alias("ids"), SqlTag.__table__.alias("outcome")
        query = (select(ids.c.value)
                 .join(SqlRun, SqlRun.run_uuid == ids.c.run_uuid)
                 .join(outcome, outcome.c.run_uuid == ids.c.run_uuid)
                 .where(ids.c.key == ID, ids.c.value.in_(trial_ids),
                        outcome.c.key == OUTCOME, outcome.c.value.in_(outcomes),
                        SqlRun.status == FINISHED,
                        SqlRun.lifecycle_stage == LifecycleStage.ACTIVE,
                        SqlRun.experiment_id == int(self.experiment_id)))
        with self.store.ManagedSessionMaker() as session:
            return set(session.execute(query).scalars())

    def _rows(self, session, runs: list[RunRows], fresh: bool) -> None:
        """Tags, params, metrics and each key's latest value (MLflow's rule: the greatest
        (step, timestamp, value)) of `runs`; `fresh`: runs with nothing stored yet."""
        newest: dict[tuple[str, str], tuple[int, int, float]] = {}
        for r in runs:
            for m in r.metrics:
                key, point = (r.run_id, m.key), (m.step, m.timestamp, m.value)
                if key not in newest or point > newest[key]:
                    newest[key] = point
        if not fresh:
            replaced = [and_(SqlTag.run_uuid == r.run_id, SqlTag.key.in_(list(r.tags)))
                        for r in runs if r.tags]
            if replaced:
                session.execute(delete(SqlTag).where(or_(*replaced)))
            stored = {(row.run_uuid, row.key): (row.step, row.timestamp, row.value)
                      for row in session.execute(select(SqlLatestMetric).where(
                          SqlLatestMetric.run_uuid.in_([r.run_id for r in runs]))).scalars()}
            newest = {k: v for k, v in newest.items() if k not in stored or v > stored[k]}
            older = [and_(SqlLatestMetric.run_uuid == i, SqlLatestMetric.key == k)
                     for i, k in newest if (i, k) in stored]
            if older:
                session.execute(delete(SqlLatestMetric).where(or_(*older)))
        tables = {
            SqlTag: [{"run_uuid": r.run_id, "key": k, "value": v}
                     for r in runs for k, v in r.tags.items()],
            SqlParam: [{"run_uuid": r.run_id, "key": p.key, "value": p.value}
                       for r in runs for p in r.params],
            SqlMetric: [{"run_uuid": r.run_id, "key": m.key, "value": m.value,
                         "timestamp": m.timestamp, "step": m.step, "is_nan": False}
                        for r in runs for m in r.metrics],
            SqlLatestMetric: [{"run_uuid": i, "key": k, "step": s, "timestamp": t, "value": v,
                               "is_nan": False} for (i, k), (s, t, v) in newest.items()],
        }
        for table, rows in tables.items():
            if rows:
                session.execute(insert(table), rows)
