"""Recording trials in MLflow, and finding and reading them back, by the tracking contract
(`study.contract`: every tag, curve, metric and artifact a run holds).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import json
import math
import os
import sqlite3
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import torch
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from study import __version__
from study.browse import arm_color
from study.contract import (
    ATTEMPT,
    CURVES,
    DONE,
    FAILURE,
    ID,
    INVALID,
    KIND,
    KIND_TAG,
    LAUNCH,
    LAUNCH_STAGE,
    NUMBERS,
    OLD_SHA256,
    OPTIONAL_ARTIFACTS,
    OUTCOME,
    SPACE,
    STAGE,
    TERMINAL_OK,
    TRIAL_TAGS,
    VARIANT,
    VERSION,
    artifact_root,
    default_uri,
    relocate,
    search_all,
    sha256_tag,
    store_exists,
    tag,
    unreachable,
    where,
)
from study.errors import (
    ArtifactError,
    MissingArtifact,
    TrackingError,
    UpstreamFailed,
    UpstreamNotReady,
)
from study.phases import clock
from study.records import RunRows, SqlBatch, sql_store
from study.specs import TrialSpec, flat_fields
from study.words import describe, run_name

if TYPE_CHECKING:
    from study.trial import TrialRecord

NOTE = "mlflow.note.content"  # the description MLflow shows on a run's or experiment's page
LIVE_SECONDS = 5.0  # how often a running trial's new curve points are written


@cache
def fast_sqlite() -> None:
    """Put every SQLite store this process opens in write-ahead-log mode with `synchronous =
    NORMAL`: a commit then costs no fsync (a record survives a crash of the process, not of
    the machine), the UI and the analysis read while a sweep writes, and each of a sweep's
    thousands of small transactions is about twice as fast. WAL needs a local disk: on a
    network file system, use a tracking server. Registered once per process."""
    event.listen(Engine, "connect", _wal)


def _wal(connection, _record) -> None:
    if isinstance(connection, sqlite3.Connection):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def done_ids(experiment: str, uri: str) -> set[str]:
    """The done trial ids of `experiment`, read without writing anything (a dry run): no
    store, no experiment, nothing done."""
    if not store_exists(uri):
        return set()
    _probe(uri)
    client = MlflowClient(uri)
    found = retrying(client.get_experiment_by_name, experiment)
    if found is None:
        return set()
    return set(_done(search_all(client, found.experiment_id, DONE, call=retrying)))


def _probe(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a server is unreachable."""
    err = unreachable(uri, timeout)
    if err is not None:
        raise TrackingError(f"tracking server {uri} is unreachable ({err}); start it "
                            "(scripts/tracking_server.sh) or fix --tracking-uri")


CONDITION = {"stage": "stage", "arm": "arm", "round": "round", "seed": "dense.seed",
             "model": "dense.model.name", "width": "dense.model.width",
             "dataset": "dense.data.name", "lr": "dense.train.lr",
             "warmup": "dense.train.warmup_steps", "granularity": "prune.granularity",
             "scope": "prune.scope", "criterion": "prune.criterion",
             "schedule": "prune.schedule", "retrain": "prune.retrain",
             "rewind_step": "prune.rewind_step"}
"""The trial tags that copy a spec field ({short name: its flattened path}): the tag holds the
value, so the run's params leave the field out. A dense trial's plan fields read "none" (its
`rewind_step` "0")."""


def tags_for(spec: TrialSpec) -> dict[str, str]:
    """The trial's condition (`contract.TRIAL_TAGS`), strings, and its variant where it has one."""
    fields = _flat(spec)
    values = {name: _param_text(fields[path]) if path in fields
              else ("0" if name == "rewind_step" else "none")
              for name, path in CONDITION.items()}
    values.update(id=spec.id, ticket=spec.ticket,
                  dense_id=TrialSpec(stage="dense", arm="dense", dense=spec.dense).id,
                  noise_seed=str(spec.data_seed), steps=str(spec.dense.total_steps()),
                  version=__version__)
    return {**{tag(name): values[name] for name in TRIAL_TAGS}, **_variant(spec)}


def _variant(spec: TrialSpec) -> dict[str, str]:
    """The `study.variant` tag of an at-init arm's ablation (none otherwise)."""
    o = spec.options
    parts = [name for name, on in (("shuffled", o.mask_shuffle), ("reinit", o.mask_reinit)) if on]
    return {VARIANT: "+".join(parts)} if parts else {}


def condition(spec: TrialSpec) -> dict[str, float]:
    """The trial's numeric tags as numbers (`contract.NUMBERS`): filterable with > and <."""
    tags = tags_for(spec)
    return {name: float(tags[tag(name)]) for name in NUMBERS}


def spec_params(spec: TrialSpec) -> list[Param]:
    """The flattened spec less the fields its tags hold (`CONDITION`); arm options only where
    the space sets them (not a column of defaults that most arms never read)."""
    held = set(CONDITION.values())
    return [Param(k, _param_text(v)[:6000]) for k, v in _flat(spec).items() if k not in held]


def _flat(spec: TrialSpec) -> dict[str, object]:
    return flat_fields({**spec.model_dump(mode="json"), "options": spec.options.canonical()})


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in tensors.items()}, buffer)
    return buffer.getvalue()


_FINISHED_RUNS: dict[tuple[str, str], dict[str, str]] = {}
"""(store, experiment id) -> {trial id: FINISHED run id}, this process's upstream lookups."""


class Tracker:
    """One experiment in one tracking store: record trials, find them, read their artifacts."""

    def __init__(self, experiment: str, uri: str | None = None, probe: bool = True) -> None:
        """`probe`: fail in seconds if a server is down (the CLI); workers retry instead."""
        self.uri = uri or default_uri()
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            fast_sqlite()
            relocate(self.uri)  # a study folder moved or copied: its artifacts are here now
        if probe:
            _probe(self.uri)
        self.client = MlflowClient(self.uri)
        self._batch: SqlBatch | None = None
        try:
            found = retrying(self.client.get_experiment_by_name, experiment)
        except Exception as err:
            raise TrackingError(f"tracking store {self.uri} cannot be used: {err}; check "
                                "--tracking-uri / MLFLOW_TRACKING_URI") from err
        if found is None:
            try:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=artifact_root(self.uri), tags={KIND_TAG: KIND})
            except mlflow.exceptions.MlflowException:  # another process created it first
                self.experiment_id = self.client.get_experiment_by_name(experiment).experiment_id
        else:
            self.experiment_id = found.experiment_id
            if KIND_TAG not in found.tags:  # created by an earlier version
                retrying(self.client.set_experiment_tag, self.experiment_id, KIND_TAG, KIND)
        # trial id: its FINISHED run, as `load` found it; shared by this process's trackers of
        # the experiment, so a sweep actor's next pack does not search for the same parents
        self.finished = _FINISHED_RUNS.setdefault((self.uri, self.experiment_id), {})

    def _runs(self, filter_string: str) -> list:
        return search_all(self.client, self.experiment_id, filter_string, call=retrying)

    def done(self) -> dict[str, str]:
        """{trial id: run id} of every trial recorded to the end (finished, diverged, skipped)."""
        return _done(self._runs(DONE))

    def is_done(self, trial_id: str) -> bool:
        """Whether one trial is recorded to the end (a cheap indexed look-up, not a scan)."""
        runs = self._runs(f"{where(ID, trial_id)} and attributes.status = 'FINISHED'")
        return any(r.data.tags.get(OUTCOME) in TERMINAL_OK for r in runs)

    def done_among(self, trial_ids: list[str]) -> set[str]:
        """Which of `trial_ids` are recorded to the end: one query in a database store."""
        if self.batch is not None:
            return retrying(self.batch.done, list(trial_ids), TERMINAL_OK)
        return {i for i in trial_ids if self.is_done(i)}

    def close_dangling(self, keep_parent: str | None = None) -> int:
        """Mark trial runs a dead driver left RUNNING as KILLED (they are redone, not reused)."""
        closed = 0
        for run in self._runs("attributes.status = 'RUNNING'"):
            tags = run.data.tags
            if tags.get(STAGE) == LAUNCH_STAGE and run.info.run_id == keep_parent:
                continue
            if STAGE in tags:
                self.client.set_terminated(run.info.run_id, "KILLED")
                closed += 1
        return closed

    def start_launch(self, space_name: str, source: str,
                     params: dict[str, object] | None = None) -> str:
        """The run of one launch, with the space file attached; the experiment is described by
        the space's docstring."""
        note = _docstring(source)
        if note:
            retrying(self.client.set_experiment_tag, self.experiment_id, NOTE, note)
        name = f"launch-{time.strftime('%Y%m%d-%H%M%S')}"
        text = f"Launch of space `{space_name}` (study {__version__})." + (
            f"\n\n{note}" if note else "")
        run = retrying(self.client.create_run, self.experiment_id, run_name=name, tags={
            STAGE: LAUNCH_STAGE, SPACE: space_name, VERSION: __version__,
            NOTE: text})
        retrying(self.client.log_batch, run.info.run_id,
                 params=[Param(k, str(v)) for k, v in (params or {}).items()])
        self.client.log_text(run.info.run_id, source, "space.py")
        return run.info.run_id

    def end_launch(self, run_id: str, failed: bool = False) -> None:
        self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")

    @property
    def batch(self) -> SqlBatch | None:
        """Pack-wide transactions, where the store is a database MLflow opens itself."""
        if self._batch is None and (store := sql_store(self.client)) is not None:
            self._batch = SqlBatch(store, self.experiment_id)
        return self._batch

    def start(self, spec: TrialSpec, parent: str | None = None,
              tags: dict[str, str] | None = None,
              unfinished: dict[str, object] | None = None) -> TrialRun:
        """The trial's run, RUNNING from now on. `parent` is the launch's run id: a run of this
        trial that the same launch left unfinished (a killed or failed attempt) is reused, so a
        retry continues its record instead of starting a second one. `unfinished`: those runs
        as `unfinished(parent)` found them for a whole pack (else looked up for this trial)."""
        return self.start_pack([spec], parent, tags, unfinished)[spec.id]

    def start_pack(self, specs: list[TrialSpec], parent: str | None = None,
                   tags: dict[str, str] | None = None,
                   unfinished: dict[str, object] | None = None) -> dict[str, TrialRun]:
        """`start` for every trial of a pack: {id: its RUNNING run}; in a database store, the
        new runs in one transaction."""
        with clock("record"):
            return self._start_pack(specs, parent, tags or {}, unfinished)

    def _start_pack(self, specs: list[TrialSpec], parent: str | None, tags: dict[str, str],
                    unfinished: dict[str, object] | None) -> dict[str, TrialRun]:
        if unfinished is None:
            unfinished = {s.id: run for s in specs
                          if (run := self._unfinished(s, parent)) is not None}
        runs, new = {}, []
        for spec in specs:
            own = {**tags_for(spec), **tags}
            if parent:
                own[LAUNCH] = parent
            if spec.id in unfinished:
                runs[spec.id] = TrialRun.resume(self, spec, unfinished[spec.id], own)
            else:
                tags_at_start = {**own, NOTE: describe(spec), **arm_color(spec.arm)}
                new.append((spec, RunRows("", tags_at_start, spec_params(spec),
                                          [Metric(k, v, _now(), 0)
                                           for k, v in condition(spec).items()])))
        if new and self.batch is not None:
            made = retrying(self.batch.create, [(run_name(s), rows) for s, rows in new], _now())
            for (spec, _), (run_id, uri) in zip(new, made):
                runs[spec.id] = TrialRun(self, spec, run_id, artifact_uri=uri)
            return runs

        def create(spec: TrialSpec, rows: RunRows) -> TrialRun:
            info = retrying(self.client.create_run, self.experiment_id, run_name=run_name(spec),
                            tags=rows.tags).info
            retrying(self.client.log_batch, info.run_id, metrics=rows.metrics,
                     params=rows.params)
            return TrialRun(self, spec, info.run_id, artifact_uri=info.artifact_uri)

        with _calls(len(new)) as pool:  # a server: the members' requests side by side
            made = list(pool.map(lambda pair: create(*pair), new))
        runs.update({run.spec.id: run for run in made})
        return runs

    def finish_pack(self, done: list[tuple[TrialRun, TrialRecord]]) -> None:
        """End every (run, record) of a pack FINISHED: each run's artifacts written first, then
        its records; in a database store all of them in one transaction (a killed process
        leaves all or none). On error the runs not finished end FAILED and the error is raised."""
        open_runs = {run.run_id: run for run, _ in done}
        try:
            rows = [run.closing(record) for run, record in done]
            with clock("record"):
                if self.batch is not None:
                    retrying(self.batch.finish, rows, _now())
                    return
                with _calls(len(rows)) as pool:  # a server: the members' requests side by side
                    futures = [pool.submit(open_runs[r.run_id].commit, r) for r in rows]
                    errors = []
                    for future in futures:
                        try:
                            del open_runs[future.result()]
                        except Exception as err:  # the others still finish
                            errors.append(err)
                if errors:
                    raise errors[0]
        except BaseException as err:
            for run in open_runs.values():
                run.fail(f"recording failed: {type(err).__name__}: {err}")
            raise

    def fail(self, spec: TrialSpec, message: str, parent: str | None = None,
             extra_tags: dict[str, str] | None = None) -> str:
        """Record a trial whose process died or stalled (it could not say so itself): this
        launch's unfinished run of it, or a new one, ends FAILED with the message in
        `study.failure`. A failed trial is not done: the next launch runs it again."""
        tags = {**tags_for(spec), **(extra_tags or {})}
        earlier = self._unfinished(spec, parent)
        if earlier is not None:
            run = TrialRun(self, spec, earlier.info.run_id)
            retrying(self.client.log_batch, run.run_id,
                     tags=[RunTag(k, v) for k, v in tags.items()])
        else:
            run = self.start(spec, parent, extra_tags)
        run.fail(message)
        return run.run_id

    def _unfinished(self, spec: TrialSpec, parent: str | None):
        """The run of `spec` that launch `parent` left RUNNING or FAILED (None: none, or no
        launch to tell attempts of this launch from others)."""
        if not parent:
            return None
        return _reusable(self._runs(f"{where(ID, spec.id)} and {where(LAUNCH, parent)}")
                         ).get(spec.id)

    def unfinished(self, parent: str | None) -> dict[str, object]:
        """{trial id: run} of every run launch `parent` left RUNNING or FAILED: one query for
        a pack instead of one per member."""
        if not parent:
            return {}
        return _reusable(self._runs(f"{where(LAUNCH, parent)} and "
                                    "attributes.status != 'FINISHED'"))

    def load(self, spec: TrialSpec, name: str) -> dict[str, torch.Tensor]:
        """A parent trial's tensor artifact, checksum verified; UpstreamNotReady if not usable."""
        with clock("fetch"):
            return self._load(spec, name)

    def _load(self, spec: TrialSpec, name: str) -> dict[str, torch.Tensor]:
        run_id = self.finished.get(spec.id)
        if run_id is None:
            runs = self._runs(f"{where(ID, spec.id)} and "
                              "attributes.status = 'FINISHED'")
            if not runs:
                raise UpstreamNotReady(f"trial {spec.id} ({spec.arm} round {spec.round}) is "
                                       "not done")
            run_id = self.finished[spec.id] = runs[0].info.run_id
        try:
            return _load_verified(self.uri, run_id, name)
        except ArtifactError as err:  # never reuse it: the next launch recomputes that trial
            self.finished.pop(spec.id, None)
            retrying(self.client.set_tag, run_id, INVALID, str(err)[:500])
            retrying(self.client.set_terminated, run_id, "FAILED")
            raise ArtifactError(f"{err}; run {run_id} ({spec.arm} round {spec.round}, id "
                                f"{spec.id}) is now marked FAILED and will be recomputed by "
                                "the next launch") from None


class TrialRun:
    """One trial's live run: curves as they are evaluated, the rest when the trial ends.

    Used the same way by `study run`, a Tune trainable and a pack of trials (one each)."""

    def __init__(self, tracker: Tracker, spec: TrialSpec, run_id: str,
                 logged: set[int] | None = None, artifact_uri: str | None = None) -> None:
        self.tracker, self.spec, self.run_id = tracker, spec, run_id
        self.artifact_uri = artifact_uri  # None: asked of the store when the run ends
        self.logged = set(logged or ())  # eval steps whose curve points are in the store
        self.pending: list[tuple[dict[str, float], int]] = []  # (row, when): not written yet
        self.flushed = time.monotonic()
        self.every = float(os.environ.get("STUDY_LIVE_SECONDS", LIVE_SECONDS))

    @classmethod
    def resume(cls, tracker: Tracker, spec: TrialSpec, run, tags: dict[str, str]) -> TrialRun:
        """Continue an unfinished attempt's run: RUNNING again, its logged steps kept (a resumed
        trial replays steps after its checkpoint; those are not logged twice)."""
        client, run_id = tracker.client, run.info.run_id
        attempt = int(run.data.tags.get(ATTEMPT, "1")) + 1
        history = retrying(client.get_metric_history, run_id, "train_loss")
        retrying(client.log_batch, run_id, tags=[RunTag(k, v) for k, v in {
            **tags, ATTEMPT: str(attempt)}.items()])
        retrying(client.update_run, run_id, "RUNNING")
        return cls(tracker, spec, run_id, {m.step for m in history}, run.info.artifact_uri)

    def log_eval(self, row: dict[str, float]) -> None:
        """One evaluation's curve points (`train_loss`, `val_loss`, ...) at its step, written
        with those still pending once `LIVE_SECONDS` have passed since the last write: a
        trial's curve grows in the UI as it trains, while a trial of a few seconds (most of a
        pack's) costs one write, not one per evaluation (~10 ms each). Each point keeps the
        time it was evaluated at. `STUDY_LIVE_SECONDS` sets the interval (0: every eval)."""
        if int(row["step"]) not in self.logged:
            self.pending.append((row, _now()))
        if time.monotonic() - self.flushed >= self.every:
            self._flush()

    def _flush(self) -> None:
        with clock("record"):
            self._write_pending()

    def _write_pending(self) -> None:
        rows = [p for row, stamp in self.pending if int(row["step"]) not in self.logged
                for p in self._points(row, stamp)]
        if rows:
            for i in range(0, len(rows), 1000):  # MLflow: 1,000 metrics a call
                retrying(self.tracker.client.log_batch, self.run_id, metrics=rows[i:i + 1000])
        self.pending, self.flushed = [], time.monotonic()

    def _points(self, row: dict[str, float], stamp: int | None = None) -> list[Metric]:
        step, stamp = int(row["step"]), stamp or _now()
        self.logged.add(step)
        return [Metric(k, float(row[k]), stamp, step) for k in CURVES if _finite(row[k])]

    def finish(self, record: TrialRecord) -> str:
        """Summary metrics, what the run trained, artifacts; FINISHED. On error: FAILED."""
        self.tracker.finish_pack([(self, record)])
        return self.run_id

    def closing(self, record: TrialRecord) -> RunRows:
        """Write the run's artifacts (`spec.json`, the record's tensors) and hand back the rows
        that end it: outcome and checksum tags, summary metrics, the curve points not written
        live, what it trained."""
        with clock("save"):
            payloads = {name: tensor_bytes(t) for name, t in record.artifacts.items()}
            tags = {OUTCOME: record.outcome, **record.tags,
                    NOTE: describe(self.spec, record)}
            tags.update({sha256_tag(n): hashlib.sha256(b).hexdigest()
                         for n, b in payloads.items()})
            stamp = _now()
            rows = [Metric(k, float(v), stamp, 0) for k, v in record.metrics.items()
                    if _finite(v)]
            when = {int(row["step"]): stamp for row, stamp in self.pending}
            rows += [p for row in record.curves if int(row["step"]) not in self.logged
                     for p in self._points(row, when.get(int(row["step"])))]
            # ^ the points not written live yet, and those from before a resume
            params = [Param(k, v[:6000]) for k, v in record.params.items()]
            files = {"spec.json": json.dumps(self.spec.model_dump(mode="json"),
                                             indent=2).encode(), **payloads}
            where = (self.artifact_uri
                     or retrying(self.tracker.client.get_run, self.run_id).info.artifact_uri)
            local = _local_artifacts(where)
            if local is not None:  # a local store: write the files where MLflow keeps them
                local.mkdir(parents=True, exist_ok=True)
                for n, b in files.items():
                    (local / n).write_bytes(b)
        self.uploads = {} if local is not None else files  # what `commit` sends to a server
        self.artifact_uri = where
        return RunRows(self.run_id, tags, params, rows)

    def commit(self, rows: RunRows) -> str:
        """Upload the artifacts `closing` left for a server, write `rows` through MLflow's
        calls and end the run FINISHED; its id. A request each, none to spare (MLflow's
        `log_artifacts` and `set_terminated` would each ask for the run first)."""
        client = self.tracker.client
        if self.uploads:
            repo = get_artifact_repository(self.artifact_uri, tracking_uri=self.tracker.uri)
            with tempfile.TemporaryDirectory() as tmp:
                for n, b in self.uploads.items():
                    (Path(tmp) / n).write_bytes(b)
                retrying(repo.log_artifacts, tmp)
        metrics, params = rows.metrics, rows.params
        for i in range(0, max(len(metrics), len(params), 1), 100):  # MLflow: 100 params a call
            retrying(client.log_batch, self.run_id, metrics=metrics[i : i + 100],
                     params=params[i : i + 100],
                     tags=[RunTag(k, v) for k, v in rows.tags.items()] if i == 0 else ())
        _end(client, self.run_id, RunStatus.FINISHED)
        return self.run_id

    def fail(self, reason: str) -> None:
        """End the run FAILED, `reason` in the tag `study.failure`: never counted as done; the
        curve it had evaluated is kept."""
        client = self.tracker.client
        with contextlib.suppress(Exception):  # the failure itself must still be recorded
            self._flush()
        retrying(client.log_batch, self.run_id, tags=[
            RunTag(OUTCOME, "failed"), RunTag(FAILURE, reason[:4900])])
        _end(client, self.run_id, RunStatus.FAILED)


def _end(client: MlflowClient, run_id: str, status: int) -> None:
    """End a run (`set_terminated` without the two requests it spends printing its URL)."""
    retrying(client._tracking_client.store.update_run_info, run_id, run_status=status,
             end_time=_now(), run_name=None)


@contextlib.contextmanager
def _calls(n: int):
    """Up to 8 threads for n runs' requests to a tracking server: each waits mostly on the
    server, whose workers take them side by side."""
    with ThreadPoolExecutor(max(1, min(8, n))) as pool:
        yield pool


def _reusable(runs: list) -> dict[str, object]:
    """{trial id: run} of the RUNNING or FAILED runs a retry may continue."""
    return {r.data.tags[ID]: r for r in runs
            if r.info.status in ("RUNNING", "FAILED") and INVALID not in r.data.tags
            and ID in r.data.tags}


def _done(finished_runs: list) -> dict[str, str]:
    return {r.data.tags[ID]: r.info.run_id for r in finished_runs
            if r.data.tags.get(OUTCOME) in TERMINAL_OK and ID in r.data.tags}


def retrying(call, *args, attempts: int = 8, first_wait: float = 0.5, **kwargs):
    """Call the tracking store, retrying with exponential backoff on a locked SQLite database
    or an unreachable server, so a busy store or a short outage loses no record."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as err:  # MlflowException, OperationalError, ConnectionError, ...
            text = str(err).lower()
            transient = any(word in text for word in (
                "locked", "connection", "timed out", "temporarily", "503", "502", "busy"))
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(first_wait * 2**attempt)
    raise AssertionError("unreachable")


def _local_artifacts(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts on this machine's disk (a `file:` artifact root, what a
    SQLite store uses), else None: a tracking server's artifacts go through MLflow."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file" or (not parsed.scheme and artifact_uri.startswith("/")):
        return Path(urllib.request.url2pathname(parsed.path))
    return None


def _param_text(value: object) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


def _now() -> int:
    return int(time.time() * 1000)


def _docstring(source: str) -> str | None:
    try:
        return ast.get_docstring(ast.parse(source))
    except SyntaxError:
        return None


def _finite(value: float) -> bool:
    return math.isfinite(float(value))


@lru_cache(maxsize=256)
def _finished_run(uri: str, run_id: str):
    """A finished upstream run (its tags name its artifacts' checksums): read once a process."""
    return MlflowClient(uri).get_run(run_id)


@lru_cache(maxsize=256)  # a pack's members read their parents' θ0, masks, weights
def _load_verified(uri: str, run_id: str, name: str) -> dict[str, torch.Tensor]:
    run = _finished_run(uri, run_id)
    if run.data.tags.get(OUTCOME) != "finished":
        raise UpstreamFailed(f"upstream run {run_id} ended "
                             f"{run.data.tags.get(OUTCOME)}: no usable {name}")
    expected = (run.data.tags.get(sha256_tag(name))
                or run.data.tags.get(OLD_SHA256 + name))  # earlier versions' key
    if expected is None and name in OPTIONAL_ARTIFACTS:
        raise MissingArtifact(f"run {run_id} was recorded without {name}")
    try:
        local = _local_artifacts(run.info.artifact_uri)
        if local is not None:  # a local store: read the file where it lies
            payload = (local / name).read_bytes()
        else:  # one request: the file itself, from the run's artifact location
            # (`MlflowClient.download_artifacts` asks for the run, its logged models and the
            # folder listing first: three requests more for a file whose name is known)
            repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=uri)
            with tempfile.TemporaryDirectory() as tmp:
                repo._download_file(name, Path(tmp) / name)
                payload = (Path(tmp) / name).read_bytes()
    except Exception as err:
        raise ArtifactError(f"artifact {name} of run {run_id} cannot be read: {err}") from err
    if expected is None or hashlib.sha256(payload).hexdigest() != expected:
        raise ArtifactError(f"artifact {name} of run {run_id} fails its sha256 check "
                            "(truncated or altered); delete the run to recompute it")
    return torch.load(io.BytesIO(payload), weights_only=True)
