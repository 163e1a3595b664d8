"""What `study ui` puts on screen: each study's own saved views of its runs table, the links
that open them in MLflow's model-training view, and the MLflow UI served quietly on loopback.

MLflow 3 (3.17 read here) opens an experiment in its GenAI view unless the link says
`workflowType=machine_learning`, and shows a runs table with columns that say nothing about a
study (Source, Models, Dataset) until configured by hand. What a tracking client can shape is
the runs page's saved views: an experiment tag `mlflow.sharedViewState.<key>` holding
`{"name", "createdAt", "updatedAt", "state"}` (state: the JSON of the table's search facets and
UI state) is listed in the page's "Views" menu and opened by `?viewStateShareKey=<key>`. The
study writes four, and every trial run carries its arm's colour (`mlflow.runColor`), so charts
of individual runs are coloured by arm.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from study.contract import KIND, KIND_TAG, LAUNCH_STAGE, STAGE, search_all, tag
from study.specs import ARMS

VIEW_TAG = "mlflow.sharedViewState."
"""Prefix of the experiment tags the runs page reads as saved views (MLflow >= 3.17)."""
SHARE_KEY = "viewStateShareKey"
ML_VIEW = "workflowType=machine_learning"
COLOR_TAG = "mlflow.runColor"
TRIALS = f"tags.`{STAGE}` != '{LAUNCH_STAGE}'"
"""The search that keeps a study's launch runs out of the trials' table and charts."""
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39", "#7b4173")
"""One colour per arm, in `specs.ARMS` order (lottery and reinit far apart)."""


def arm_color(arm: str) -> dict[str, str]:
    """The run tag that colours a trial's run by its arm in MLflow's tables and charts."""
    return {COLOR_TAG: PALETTE[ARMS.index(arm) % len(PALETTE)]} if arm in ARMS else {}


def _column(kind: str, name: str) -> str:
    return f"{kind}.`{name}`"


COLUMNS = (_column("tags", tag("arm")), _column("tags", tag("granularity")),
           *(_column("metrics", m) for m in ("round", "width", "lr", "seed", "remaining",
                                              "final_test_acc")))
"""The runs table's columns in every view: arm, granularity, round, width, lr, seed, remaining
and test accuracy (the condition as numbers: `study.tracking.condition`)."""
CURVES = ("test_acc", "val_acc", "train_loss", "val_loss")


@dataclass(frozen=True)
class View:
    key: str
    name: str
    state: dict
    charts: bool = False  # opens on the chart view, not the table

    def link(self, base: str, experiment_id: str) -> str:
        mode = "&compareRunsMode=CHART" if self.charts else ""
        return (f"{base}/#/experiments/{experiment_id}/runs?{ML_VIEW}&{SHARE_KEY}={self.key}"
                f"{mode}")


def _state(**ui) -> dict:
    return {"searchFilter": TRIALS, "orderByKey": _column("metrics", "round"),
            "orderByAsc": True, "selectedColumns": list(COLUMNS), "columnOrder": list(COLUMNS),
            "runsHiddenMode": "SHOW_ALL", "hideEmptyCharts": True, **ui}


def _section(uuid: str, name: str, columns: int, height: int) -> dict:
    return {"uuid": uuid, "name": name, "display": True, "isReordered": False,
            "deleted": False, "isGenerated": False, "columns": columns, "cardHeight": height}


def _chart(uuid: str, kind: str, section: str, **fields) -> dict:
    return {"uuid": uuid, "type": kind, "deleted": False, "isGenerated": False,
            "metricSectionId": section, **fields}


VIEWS = (
    View("study-trials", "Trials: arm, round, width, lr, seed, remaining, test acc", _state()),
    View("study-by-arm", "Trials by arm, granularity and round (means)", _state(groupBy={
        "aggregateFunction": "average", "groupByKeys": [
            {"mode": "tag", "groupByData": tag(k)} for k in ("arm", "granularity", "round")]})),
    View("study-acc-vs-remaining", "Test accuracy vs remaining weights, by arm", _state(
        compareRunSections=[_section("study-acc", "Accuracy vs remaining (colour: arm)", 1, 560)],
        compareRunCharts=[_chart("acc-vs-remaining", "SCATTER", "study-acc",
                                 xaxis={"key": "remaining", "type": "METRIC"},
                                 yaxis={"key": "final_test_acc", "type": "METRIC"},
                                 runsCountToCompare=100_000)]), charts=True),
    View("study-curves", "Curves of the visible runs (eye icon): test acc, val acc, losses",
         _state(runsHiddenMode="FIRST_10_RUNS",
                compareRunSections=[_section("study-curves", "Curves", 2, 360)],
                compareRunCharts=[_chart(f"curve-{m}", "LINE", "study-curves", metricKey=m,
                                         selectedMetricKeys=[m], xAxisKey="step",
                                         scaleType="linear", lineSmoothness=0,
                                         runsCountToCompare=10) for m in CURVES]),
         charts=True),
)
"""The study's saved views: the runs table, the same grouped into cells, accuracy against
remaining weights coloured by arm, and the learning curves of the runs shown."""
SEARCH = f"{TRIALS} and tags.`{tag('arm')}` = 'lottery'"
"""A ready search for the runs table (also where the views are missing)."""


def write_views(client, experiment_id: str) -> None:
    """(Re)write the study's saved views on one experiment, with the model-training kind."""
    now = int(time.time() * 1000)
    client.set_experiment_tag(experiment_id, KIND_TAG, KIND)
    for view in VIEWS:
        envelope = {"name": view.name, "createdAt": now, "updatedAt": now,
                    "state": json.dumps(view.state)}
        client.set_experiment_tag(experiment_id, VIEW_TAG + view.key, json.dumps(envelope))


def color_runs(client, experiment_id: str) -> int:
    """Colour by arm the trial runs recorded before runs carried their colour; how many."""
    missing = [r for r in search_all(client, experiment_id, TRIALS)
               if COLOR_TAG not in r.data.tags and tag("arm") in r.data.tags]
    for run in missing:
        for key, value in arm_color(run.data.tags[tag("arm")]).items():
            client.set_tag(run.info.run_id, key, value)
    return len(missing)


def studies(client, name: str | None = None) -> list:
    """The store's study experiments (those with a trial or launch run), or the one named."""
    found = [e for e in client.search_experiments()
             if client.search_runs([e.experiment_id], f"tags.`{STAGE}` != ''", max_results=1)]
    if name is not None:
        found = [e for e in found if e.name == name]
    return sorted(found, key=lambda e: e.name)


def links(base: str, experiments: list) -> list[str]:
    """What `study ui` prints: each study's views, by name and link."""
    lines = []
    for e in experiments:
        lines.append(f"{e.name}:")
        lines += [f"  {v.name}\n    {v.link(base, e.experiment_id)}" for v in VIEWS]
    if experiments:
        lines.append(f"Or on any runs table: Columns > {tag('arm')}, {tag('granularity')}, "
                     "round, width, lr, seed, remaining, final_test_acc; search\n"
                     f"  {SEARCH}")
    return lines


QUIET = ("ignore::DeprecationWarning", "ignore:starlette.middleware.wsgi is deprecated")
"""Warnings MLflow's server raises at start about its own imports (Starlette's is a
UserWarning): nothing a user of the UI can act on."""


def server_command(python: str, uri: str, host: str, port: int,
                   artifact_root: str | None) -> list[str]:
    """`mlflow ui` on one worker, the registry in the same store (no notice about it), and no
    access log: the terminal shows the links and errors, not one line per request."""
    command = [python, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--registry-store-uri", uri, "--host", host, "--port", str(port),
               "--workers", "1", "--uvicorn-opts", "--no-access-log --log-level warning"]
    return command + (["--default-artifact-root", artifact_root] if artifact_root else [])


def server_env() -> dict[str, str]:
    """The server's environment: telemetry off (inherited from `study`), no GenAI job runner
    (a pool of workers, ~1 GB, that browsing runs never uses and that outlives a stopped
    server), no deprecation warnings about MLflow's own imports (`QUIET`)."""
    env = {**os.environ}
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env["PYTHONWARNINGS"] = ",".join(filter(None, (env.get("PYTHONWARNINGS"), *QUIET)))
    return env


class _Stop(Exception):
    """SIGTERM arrived: stop the server as Ctrl-C would."""


def serve(command: list[str], env: dict[str, str], grace: float = 20.0) -> int:
    """Run the server in a session of its own until it ends, Ctrl-C or SIGTERM; then stop the
    whole session (server and workers) and wait until none of it is left. Its exit code, or 0
    when stopped."""
    server = subprocess.Popen(command, start_new_session=True, env=env)

    def stop(_signum, _frame):
        raise _Stop

    previous = signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        code = server.wait()
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal: still clean up
        _stop_session(server, grace)
        signal.signal(signal.SIGTERM, previous)
    return code


def _stop_session(server: subprocess.Popen, grace: float) -> None:
    """SIGTERM to every process of the server's session, SIGKILL to what is left after
    `grace` seconds; returns when none is left."""
    group = server.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if server.poll() is not None and not _alive(group):
                return
            time.sleep(0.1)
    server.wait()


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
