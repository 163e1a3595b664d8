"""The MLflow contract that analysis relies on (DESIGN.md): names, tags, metrics, artifacts.

- One experiment per study; one run per trial; a parent run (`study.stage` = "launch") per launch.
- A trial's run is written in one short transaction *after* the trial ends (create, log_batch,
  artifacts, terminate), so a killed driver leaves at most a run in RUNNING, which the next
  launch closes as KILLED and redoes; a finished id is never written twice.
- Tags `study.*` (strings): id, stage, arm, granularity, scope, criterion, schedule, round, seed,
  ticket, dense_id, model, width, dataset, lr, warmup, rewind_step, noise_seed, outcome, space,
  version.
- Metrics: curves `train_loss`, `val_loss`, `val_acc`, `test_acc` per eval step; summaries
  `final_test_acc`, `best_val_acc`, `test_acc_at_best_val`, `early_stop_step`, `sparsity`,
  `nonzero_params`, `total_params`, `nonzero_weights`, `total_weights`, `flops`, `train_steps`,
  `train_lr` (the base lr it trained at; trained runs only), `train_seconds` (+ `match_error`
  for small_dense and small_dense_b, `budget_ratio` for scratch_b and small_dense_b;
  `barrier_test`, `barrier_val` and the path `path_{test,val}_{error,loss}_NN` for
  interpolation).
- Artifacts: `spec.json`, and tensor files (`init.pt`, `mask.pt`, `final.pt`, ...) whose sha256
  is a tag `study.sha256.<file>` that every reader verifies.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import time
import urllib.request
from functools import lru_cache
from pathlib import Path

import mlflow
import torch
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient

from study import __version__
from study.specs import TrialSpec, flat_fields

CURVES = ("train_loss", "val_loss", "val_acc", "test_acc")
TERMINAL_OK = ("finished", "diverged", "skipped")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; says which URI and how to fix it."""


class ArtifactError(RuntimeError):
    """An upstream artifact is missing, truncated or fails its checksum."""


class UpstreamNotReady(RuntimeError):
    """A parent trial has no finished run yet (a scheduling error, or a lost record)."""


class UpstreamFailed(RuntimeError):
    """A parent trial diverged or was skipped: its children are recorded as skipped."""


def default_uri() -> str:
    """`MLFLOW_TRACKING_URI`, else the SQLite store `mlruns/mlflow.db` in the working folder."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / 'mlruns' / 'mlflow.db').resolve()}"


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite store (absolute: Ray runs trials in other folders)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None  # a tracking server decides (and serves) its own artifact root


def _probe(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a server is unreachable."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except (OSError, ValueError) as err:
        raise TrackingError(f"tracking server {uri} is unreachable ({err}); start it "
                            "(scripts/tracking_server.sh) or fix --tracking-uri") from None


def tags_for(spec: TrialSpec) -> dict[str, str]:
    d, p = spec.dense, spec.prune
    dense_id = TrialSpec(stage="dense", arm="dense", dense=d).id
    return {
        "study.id": spec.id, "study.stage": spec.stage, "study.arm": spec.arm,
        "study.round": str(spec.round), "study.seed": str(d.seed), "study.ticket": spec.ticket,
        "study.dense_id": dense_id, "study.model": d.model.name, "study.width": str(d.model.width),
        "study.dataset": d.data.name, "study.lr": str(d.train.lr),
        "study.warmup": str(d.train.warmup_steps),
        "study.granularity": p.granularity if p else "none",
        "study.scope": p.scope if p else "none", "study.criterion": p.criterion if p else "none",
        "study.schedule": p.schedule if p else "none",
        "study.rewind_step": str(p.rewind_step if p else 0),
        "study.noise_seed": str(spec.data_seed),
        "study.version": __version__,
    }


def run_name(spec: TrialSpec) -> str:
    return f"{spec.arm}-r{spec.round}-s{spec.dense.seed}-{spec.id[:8]}"


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in tensors.items()}, buffer)
    return buffer.getvalue()


class Tracker:
    """One experiment in one tracking store: record trials, find them, read their artifacts."""

    def __init__(self, experiment: str, uri: str | None = None, probe: bool = True) -> None:
        """`probe`: fail in seconds if a server is down (the CLI); workers retry instead."""
        self.uri = uri or default_uri()
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if probe:
            _probe(self.uri)
        self.client = MlflowClient(self.uri)
        self.experiment_name = experiment
        try:
            found = retrying(self.client.get_experiment_by_name, experiment)
        except Exception as err:
            raise TrackingError(f"tracking store {self.uri} cannot be used: {err}; check "
                                "--tracking-uri / MLFLOW_TRACKING_URI") from err
        if found is None:
            try:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=_artifact_root(self.uri))
            except mlflow.exceptions.MlflowException:  # another process created it first
                self.experiment_id = self.client.get_experiment_by_name(experiment).experiment_id
        else:
            self.experiment_id = found.experiment_id

    def _runs(self, filter_string: str) -> list:
        runs, token = [], None
        while True:
            page = retrying(self.client.search_runs, [self.experiment_id], filter_string,
                            max_results=5000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def done(self) -> dict[str, str]:
        """{trial id: run id} of every trial recorded to the end (finished, diverged, skipped)."""
        runs = self._runs("attributes.status = 'FINISHED'")
        return {r.data.tags["study.id"]: r.info.run_id for r in runs
                if r.data.tags.get("study.outcome") in TERMINAL_OK and "study.id" in r.data.tags}

    def is_done(self, trial_id: str) -> bool:
        """Whether one trial is recorded to the end (a cheap indexed look-up, not a scan)."""
        runs = self._runs(f"tags.`study.id` = '{trial_id}' and attributes.status = 'FINISHED'")
        return any(r.data.tags.get("study.outcome") in TERMINAL_OK for r in runs)

    def close_dangling(self, keep_parent: str | None = None) -> int:
        """Mark trial runs a dead driver left RUNNING as KILLED (they are redone, not reused)."""
        closed = 0
        for run in self._runs("attributes.status = 'RUNNING'"):
            tags = run.data.tags
            if tags.get("study.stage") == "launch" and run.info.run_id == keep_parent:
                continue
            if "study.stage" in tags:
                self.client.set_terminated(run.info.run_id, "KILLED")
                closed += 1
        return closed

    def start_launch(self, space_name: str, files: dict[str, str]) -> str:
        """The parent run of one launch, with the space file and plan attached."""
        name = f"launch-{time.strftime('%Y%m%d-%H%M%S')}"
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={"study.stage": "launch", "study.space": space_name,
                                           "study.version": __version__})
        for name, text in files.items():
            self.client.log_text(run.info.run_id, text, name)
        return run.info.run_id

    def end_launch(self, run_id: str, failed: bool = False) -> None:
        self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")

    def record(self, spec: TrialSpec, outcome: str, metrics: dict[str, float],
               curves: list[dict[str, float]], artifacts: dict[str, dict[str, torch.Tensor]],
               parent: str | None = None, extra_tags: dict[str, str] | None = None) -> str:
        """Write one finished trial as one run; on any error the run ends FAILED."""
        tags = {**tags_for(spec), "study.outcome": outcome, **(extra_tags or {})}
        payloads = {name: tensor_bytes(t) for name, t in artifacts.items()}
        tags.update({f"study.sha256.{n}": hashlib.sha256(b).hexdigest()
                     for n, b in payloads.items()})
        if parent:
            tags["mlflow.parentRunId"] = parent
        run_id = retrying(self.client.create_run, self.experiment_id, run_name=run_name(spec),
                          tags=tags).info.run_id
        try:
            stamp = int(time.time() * 1000)
            rows = [Metric(k, float(v), stamp, 0) for k, v in metrics.items() if _finite(v)]
            rows += [Metric(k, float(r[k]), stamp, int(r["step"]))
                     for r in curves for k in CURVES if _finite(r[k])]
            params = [Param(k, _param_text(v)[:6000])
                      for k, v in flat_fields(spec.model_dump(mode="json")).items()]
            for i in range(0, len(params), 100):  # MLflow's limits: 100 params, 1000 metrics
                retrying(self.client.log_batch, run_id, params=params[i : i + 100])
            for i in range(0, len(rows), 1000):
                retrying(self.client.log_batch, run_id, metrics=rows[i : i + 1000])
            with tempfile.TemporaryDirectory() as tmp:
                spec_json = json.dumps(spec.model_dump(mode="json"), indent=2)
                (Path(tmp) / "spec.json").write_text(spec_json)
                for n, b in payloads.items():
                    (Path(tmp) / n).write_bytes(b)
                retrying(self.client.log_artifacts, run_id, tmp)
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        retrying(self.client.set_terminated, run_id, RunStatus.to_string(RunStatus.FINISHED))
        return run_id

    def fail(self, spec: TrialSpec, message: str, parent: str | None = None,
             extra_tags: dict[str, str] | None = None) -> str:
        """Record a trial whose process died or stalled: its run (the one left RUNNING, or a
        new one) ends FAILED with `study.outcome` "failed" and the message in
        `study.failure`. A failed trial is not done: the next launch runs it again."""
        tags = {**tags_for(spec), "study.outcome": "failed", "study.failure": message[:4900],
                **(extra_tags or {})}
        running = self._runs(f"tags.`study.id` = '{spec.id}' and attributes.status = 'RUNNING'")
        if running:
            run_id = running[0].info.run_id
            for key, value in tags.items():
                retrying(self.client.set_tag, run_id, key, value)
        else:
            if parent:
                tags["mlflow.parentRunId"] = parent
            run_id = retrying(self.client.create_run, self.experiment_id,
                              run_name=run_name(spec), tags=tags).info.run_id
        retrying(self.client.set_terminated, run_id, "FAILED")
        return run_id

    def load(self, spec: TrialSpec, name: str) -> dict[str, torch.Tensor]:
        """A parent trial's tensor artifact, checksum verified; UpstreamNotReady if not usable."""
        runs = self._runs(f"tags.`study.id` = '{spec.id}' and attributes.status = 'FINISHED'")
        if not runs:
            raise UpstreamNotReady(f"trial {spec.id} ({spec.arm} round {spec.round}) is not done")
        run_id = runs[0].info.run_id
        try:
            return _load_verified(self.uri, run_id, name)
        except ArtifactError as err:  # never reuse it: the next launch recomputes that trial
            retrying(self.client.set_tag, run_id, "study.invalid", str(err)[:500])
            retrying(self.client.set_terminated, run_id, "FAILED")
            raise ArtifactError(f"{err}; run {run_id} ({spec.arm} round {spec.round}, id "
                                f"{spec.id}) is now marked FAILED and will be recomputed by "
                                "the next launch") from None


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


def _param_text(value: object) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


def _finite(value: float) -> bool:
    return math.isfinite(float(value))


@lru_cache(maxsize=32)
def _load_verified(uri: str, run_id: str, name: str) -> dict[str, torch.Tensor]:
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    if run.data.tags.get("study.outcome") != "finished":
        raise UpstreamFailed(f"upstream run {run_id} ended "
                             f"{run.data.tags.get('study.outcome')}: no usable {name}")
    expected = run.data.tags.get(f"study.sha256.{name}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(client.download_artifacts(run_id, name, tmp))
            payload = path.read_bytes()
        except Exception as err:
            raise ArtifactError(f"artifact {name} of run {run_id} cannot be read: {err}") from err
    if expected is None or hashlib.sha256(payload).hexdigest() != expected:
        raise ArtifactError(f"artifact {name} of run {run_id} fails its sha256 check "
                            "(truncated or altered); delete the run to recompute it")
    return torch.load(io.BytesIO(payload), weights_only=True)
