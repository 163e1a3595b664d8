"""The tracking contract: what a trial's MLflow run holds, written by `study.tracking` and read
by `analysis`, so that the two halves share one list of names and cannot drift apart.

Torch-free and small: analysis imports it without the library. It holds the names (tags,
curves, outcomes), the store's default address and health probe, and `search_all`, the one way
runs are paged out of a store; and it passes on the arm registry (`study.arm_registry`: the
values of `study.arm`, each arm's colour, label, family and comparisons).

- One experiment per study, tagged `mlflow.experimentKind` = custom_model_development (MLflow's
  model-training view, not its GenAI one) and described by the space file's docstring. One run
  per trial, top level (so every table, filter and chart shows the trials at once), naming the
  launch that ran it by the tag `study.launch`; a launch run (`study.stage` = "launch") per
  launch, with the space file attached. Trial runs carry their arm's colour (`mlflow.runColor`,
  `study.browse.arm_color`); the experiment, the study's saved views of its runs table
  (`mlflow.sharedViewState.*`, written by `study ui`). Artifacts of a SQLite store live in the
  `artifacts/` folder beside it; a store moved or copied is pointed there when opened
  (`relocate`).
- A trial's run is live: `Tracker.start` creates it RUNNING when the trial starts, `log_eval`
  writes the curve points as the trial evaluates (batched, at most every `STUDY_LIVE_SECONDS`,
  5 s by default, each point stamped with its evaluation's time), `finish` writes the
  summary, what the run trained and its artifacts and ends it FINISHED; `fail` ends it FAILED
  with the reason in `study.failure`. A retry within the same launch (Tune restarting a killed
  worker) reuses that launch's unfinished run of the trial, so a trial has one run per launch;
  a new launch closes runs a dead launch left RUNNING as KILLED and redoes them. Only FINISHED
  runs count as done; a finished id is never written twice.
- Tags `study.*` (strings, for equality filters): the trial's condition, `TRIAL_TAGS` below
  (`noise_seed` is the seed of the batch order), from the start; `outcome` (one of
  `TERMINAL_OK`, or failed) at the end; `launch`, and where they apply `failure`, `attempt`,
  `diverged_step`, `skip_reason`, `pack`, `pack_size` and the execution's `device`,
  `channels_last`, `compile`. A launch run has `stage` = "launch", `space` and `version`. Run
  names and descriptions (`mlflow.note.content`) say the same in words (`study.words`).
- Each fact once as a string and, where it is a number, once as a number: the condition as
  tags (strings) and `NUMBERS` as metrics; what the run trained as `trained.*` params and, for
  its steps and lr, the metrics `train_steps` and `train_lr`.
- Params: the flattened spec less the fields a trial tag holds (`study.tracking.CONDITION`: the
  dense lr is the tag `study.lr` and the metric `lr`, no param; runs recorded before also have
  them as params), its `options.*` only where set (defaults are the papers'), and
  `trained.*`, what the run actually trained: the net's hidden widths, its steps, schedule
  length and start step, base lr, schedule, warmup, optimizer and weight decay (Scratch-B's
  longer budget, fine-tuning's small lr and short schedule, small_dense's narrower net), and
  for the train-small arms `trained.mask_criterion`, how the mask was chosen.
- Metrics: the condition as numbers (`NUMBERS`), for `>`/`<` filters and numeric sorting:
  `round`, `seed`, `width` (the big net's width multiplier), `lr` (the condition's dense lr; the
  run's own is `train_lr`), `warmup`, `rewind_step`, `noise_seed`, `steps`, logged when the run
  starts. Curves `train_loss`, `val_loss`, `val_acc`,
  `test_acc` per eval step. Summaries `final_test_acc`, `best_val_acc`, `test_acc_at_best_val`,
  `early_stop_step` (LTH's early-stopping iteration: the step of minimum validation loss),
  `sparsity` (1 - remaining), `remaining` (the net's nonzero weights over the dense net's
  weights: masked-out and removed weights alike count as gone, so a structured or small_dense
  net with no zero weight has its size here), `masked_fraction` (the share of the net's own
  weights held at zero by a mask: 0 for structured and small_dense nets), `dense_weights`,
  `nonzero_params`, `total_params`, `nonzero_weights`, `total_weights`, `flops`, `train_steps`,
  `train_lr` (the base lr it trained at; trained runs only), `train_seconds`, `best_val_step`
  (where the best validation accuracy was first reached) and `converged` (1 when the validation
  loss reached its minimum within the first 90% of the steps: `study.train.converged`),
  `train_flops`, `upstream_train_flops` and `cumulative_train_flops` (the training bill,
  `study.bill`) (+ `match_error` for small_dense and small_dense_b, `budget_ratio` for
  scratch_b, small_dense_b, set_b and rigl_b; `layer_density.<weight>` for the train-small arms
  (snip, grasp, synflow, random_erk, set, rigl and their _b), and `mask_updates`, `mask_moved`,
  `mask_nonzero_min`, `mask_nonzero_max` for set and rigl, whose every update (step, drop
  fraction, weights moved, nonzero count) is the artifact `mask_updates.pt`;
  `barrier_test`, `barrier_val` and the path `path_{test,val}_{error,loss}_NN` for
  interpolation; `pruned_val_acc`, `pruned_test_acc`, `pruned_val_loss` for finetune, the
  pruned net before it is fine-tuned).
- Artifacts: `spec.json`, and tensor files (`init.pt`, `mask.pt`, `final.pt`, `bill.pt`, ...)
  whose sha256 is a tag `sha256.<file>` that every reader verifies (`bill.pt`, the training
  bill of a run others start from, is missing in runs recorded before it: OPTIONAL_ARTIFACTS).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from study.arm_registry import (  # noqa: F401 (the arms, for analysis: a run's `study.arm`)
    AT_INIT_ARMS,
    PRUNE_BIG,
    REGISTRY,
    SPARSE_ARMS,
    STABILITY_ARMS,
    TRAIN_SMALL,
    TRAIN_SMALL_ARMS,
    arms_where,
    comparisons,
)

PREFIX = "study."
TRIAL_TAGS = ("id", "stage", "arm", "round", "seed", "ticket", "dense_id", "model", "width",
              "dataset", "lr", "warmup", "granularity", "scope", "criterion", "schedule",
              "retrain", "rewind_step", "noise_seed", "steps", "version")
"""The condition of a trial: the tags (`study.<name>`) its run carries from its start
(`retrain`: rewind for an IMP chain, finetune for a fine-tune chain, none for a dense run;
`steps`: the dense budget T the trial's lineage trains with, which a budget check doubles)."""
ADDED_LATER = ("noise_seed", "version", "retrain", "steps")
"""Trial tags that runs recorded by earlier versions lack: read where present."""
NUMBERS = ("round", "seed", "width", "lr", "warmup", "rewind_step", "noise_seed", "steps")
"""The trial tags that are numbers: each is also a metric of the same name, logged when the run
starts, for `>`/`<` filters and numeric sorting (the tag is the string, for equality filters).
Analysis reads the numbers from these metrics; runs recorded before they were all logged (only
`round`, `seed`, `width`, `lr` then) are read from the tag's string instead."""
ID, STAGE, OUTCOME, LAUNCH, TUNING = (f"{PREFIX}{t}" for t in
                                      ("id", "stage", "outcome", "launch", "tuning"))
FAILURE, ATTEMPT, INVALID = (f"{PREFIX}{t}" for t in ("failure", "attempt", "invalid"))
"""Why a run ended FAILED; which attempt of its launch it is; why its artifacts were refused
(such a run is never reused)."""
DIVERGED_STEP, RESUMED_FROM_STEP, SKIP_REASON = (
    f"{PREFIX}{t}" for t in ("diverged_step", "resumed_from_step", "skip_reason"))
PACK, PACK_SIZE, NODE = (f"{PREFIX}{t}" for t in ("pack", "pack_size", "node"))
"""How a trial ran: its pack (`study.pack`), the pack's size, the Ray node of a sweep's actor."""
DEVICE, CHANNELS_LAST, COMPILE = (f"{PREFIX}{t}" for t in ("device", "channels_last", "compile"))
"""The execution a trial ran with (`study.execution.Execution`)."""
SPACE, VERSION = f"{PREFIX}space", f"{PREFIX}version"
"""A launch run's space and the study's version (`version` is a trial tag too)."""
BEST = f"{PREFIX}best."
"""A tuning experiment's tag per arm, `study.best.<arm>`: the arm's best options."""
OLD_SHA256 = f"{PREFIX}sha256."
"""Earlier versions' checksum tags, `study.sha256.<file>` (now `sha256_tag`)."""
REQUIRED = (*(PREFIX + t for t in TRIAL_TAGS if t not in ADDED_LATER), OUTCOME)
"""Tags a finished trial run must have to be analysed."""
VARIANT = f"{PREFIX}variant"
"""An at-init arm's Missing-the-Mark ablation (`options.mask_shuffle`, `options.mask_reinit`):
"shuffled", "reinit" or "shuffled+reinit"; absent on every other run. Analysis reads such a run
as its own arm, `<arm>+<variant>` (e.g. snip+shuffled), beside the arm itself."""
OPTIONAL = (*(PREFIX + t for t in ADDED_LATER), DIVERGED_STEP, SKIP_REASON, VARIANT)
STAGES = ("dense", "imp", "arm")
"""`study.stage` of a trial run; a launch run's is LAUNCH_STAGE."""
LAUNCH_STAGE = "launch"
TERMINAL_OK = ("finished", "diverged", "skipped")
"""Outcomes a FINISHED trial run is done with: it is never run again."""
DONE = "attributes.status = 'FINISHED'"  # and an outcome in TERMINAL_OK
CURVES = ("train_loss", "val_loss", "val_acc", "test_acc")
"""Metrics logged at every evaluation step."""
OPTIONAL_ARTIFACTS = ("bill.pt",)
"""Artifacts that runs recorded by earlier versions lack: a reader makes do without them."""
PAGE = 5000  # runs per search query (MLflow's largest page)
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
"""The experiment tag and value of MLflow's model-training view (not its GenAI one)."""


def tag(name: str) -> str:
    """The tag of a short name: `study.<name>`."""
    return PREFIX + name


def where(tag_name: str, value: str) -> str:
    """A search filter on one tag's value: tags.`study.id` = '...'."""
    return f"tags.`{tag_name}` = '{value}'"


def sha256_tag(name: str) -> str:
    """The tag holding an artifact's checksum (short, so the UI shows it whole)."""
    return f"sha256.{name}"


def default_uri() -> str:
    """`MLFLOW_TRACKING_URI`, else the SQLite store `mlruns/mlflow.db` in the working folder."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / 'mlruns' / 'mlflow.db').resolve()}"


def store_exists(uri: str) -> bool:
    """Whether there is a store to read (a SQLite file that is not there is not created)."""
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite store, in `artifacts/` (absolute: Ray runs trials in other
    folders); None for a tracking server, which decides (and serves) its own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None


def relocate(uri: str) -> int:
    """Point a moved or copied SQLite store's studies at the `artifacts/` folder beside it.

    MLflow keeps absolute artifact locations: a study folder moved elsewhere would look for its
    masks and weights where it was, and a copy would read (and `study analyze` write) the
    original's. Every experiment created by the study (tagged `KIND_TAG`) whose
    location is another store's `artifacts/` gets this one's, its runs' artifact URIs with it.
    Nothing happens without an `artifacts/` folder here (a store copied without its artifacts).
    Returns the number of experiments moved."""
    here = artifact_root(uri)
    if here is None or not store_exists(uri):
        return 0
    if not Path(urllib.request.url2pathname(urllib.parse.urlparse(here).path)).is_dir():
        return 0
    moved = 0
    with contextlib.closing(sqlite3.connect(uri.removeprefix("sqlite:///"), timeout=60)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if not {"experiments", "experiment_tags", "runs"} <= tables:
            return 0  # not an MLflow store yet
        elsewhere = db.execute(
            "SELECT e.experiment_id, e.artifact_location FROM experiments e JOIN experiment_tags t"
            " ON t.experiment_id = e.experiment_id AND t.key = ?"
            " WHERE e.artifact_location LIKE 'file:%/artifacts' AND e.artifact_location != ?",
            (KIND_TAG, here)).fetchall()
        with db:  # one transaction: all of a store's studies move, or none
            for experiment_id, old in elsewhere:
                db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                           (here, experiment_id))
                db.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) WHERE "
                           "experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                           (here, len(old) + 1, experiment_id, len(old) + 1, old + "/"))
                moved += 1
    return moved


def unreachable(uri: str, timeout: float = 5.0) -> str | None:
    """Why a tracking server does not answer its health check, in seconds rather than after
    MLflow's minutes of retries; None when it does, or when the store is not a server."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except (OSError, ValueError) as err:
        return str(err)
    return None


def wait_until_up(uri: str, seconds: float = 180.0) -> None:
    """Until the server at `uri` answers its health check (a busy 2-core machine can take a
    minute to start MLflow); TimeoutError naming it after `seconds`."""
    deadline = time.monotonic() + seconds
    while unreachable(uri, timeout=1.0) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no server answered at {uri} within {seconds:.0f} s")
        time.sleep(0.5)


def search_all(client, experiment_id: str, filter_string: str = "",
               call: Callable | None = None) -> list:
    """Every run of an experiment that matches `filter_string`, one query per page of PAGE
    runs (never one per run). `call(search, *args, **kwargs)` runs each query, e.g. with
    retries on a busy store; default: directly."""
    runs, token = [], None
    enabled = gc.isenabled()
    gc.disable()  # MLflow builds ~100 ORM objects a run: collections would halve the speed
    try:
        while True:
            kwargs = {"filter_string": filter_string, "max_results": PAGE, "page_token": token}
            page = (call(client.search_runs, [experiment_id], **kwargs) if call
                    else client.search_runs([experiment_id], **kwargs))
            runs += list(page)
            token = page.token
            if not token:
                return runs
    finally:
        if enabled:
            gc.enable()
