"""Browsing a study: `study ui` serves the store on loopback, quietly, with the study's saved
views and their links, and stops leaving no server; a store moved or copied keeps its
artifacts; a dry run writes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from servers import free_port
from typer.testing import CliRunner

from analysis.load import resolve_uri
from study import browse
from study.cli import app
from study.contract import relocate, wait_until_up
from study.space import load_space
from study.tracking import Tracker

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_prints_the_plan_and_creates_no_store(tmp_path):
    db = tmp_path / "nowhere" / "mlflow.db"
    result = CliRunner().invoke(app, ["sweep", "smoke", "--dry-run", "--tracking-uri",
                                      f"sqlite:///{db}"])
    assert result.exit_code == 0, result.output
    assert "space smoke: 29 trials, 0 done, 29 to run" in result.output
    assert "training steps" in result.output
    assert not db.parent.exists()  # not the file, not even its folder


def test_dry_run_counts_what_an_existing_store_has_done(store):
    Tracker("other", store)  # a store without the experiment: read, not written to
    result = CliRunner().invoke(app, ["sweep", "smoke", "--dry-run", "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    from mlflow.tracking import MlflowClient

    assert MlflowClient(store).get_experiment_by_name("smoke") is None


def test_ui_refuses_a_missing_store_and_a_busy_port(tmp_path, store):
    missing = CliRunner().invoke(app, ["ui", "--tracking-uri", f"sqlite:///{tmp_path}/no.db"])
    assert missing.exit_code == 2 and "no tracking store there" in missing.output
    assert not (tmp_path / "no.db").exists()
    Tracker("x", store)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--tracking-uri", store, "--port", str(port)])
    assert result.exit_code == 2 and f"--port {port}" in result.output
    down = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["ui", "--tracking-uri", down])
    assert result.exit_code == 2 and "tracking server unreachable" in result.output


def _study(store: str, name: str = "browse") -> tuple[Tracker, list]:
    """A study in `store`: a launch run and a trial run of each of the smoke space's arms."""
    tracker = Tracker(name, store)
    launch = tracker.start_launch("smoke", "space = None\n")
    specs = list({s.arm: s for s in load_space("smoke")[0].expand()}.values())
    return tracker, [tracker.start(spec, launch) for spec in specs]


def _session(leader: int) -> list[str]:
    """The processes left in the session `leader` started."""
    return subprocess.run(["ps", "-o", "pid=,args=", "-s", str(leader)], capture_output=True,
                          text=True).stdout.splitlines()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ui_serves_the_study_quietly_and_stops_leaving_no_server(store, stop):
    tracker, _ = _study(store)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    ui = subprocess.Popen([sys.executable, "-m", "study.cli", "ui", "--tracking-uri", store,
                           "--port", str(port)], env=env, start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    server = []
    try:
        wait_until_up(base)
        for _ in range(5):  # requests: none of them may print a line
            request = urllib.request.Request(
                f"{base}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=browse")
            with urllib.request.urlopen(request, timeout=10) as answer:
                found = json.load(answer)["experiment"]
        assert found["experiment_id"] == tracker.experiment_id
        tags = {t["key"]: t["value"] for t in found.get("tags", [])}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        assert {browse.VIEW_TAG + v.key for v in browse.VIEWS} <= set(tags)
        server = subprocess.run(["ps", "-o", "pid=", "--ppid", str(ui.pid)],
                                capture_output=True, text=True).stdout.split()
        environ = Path(f"/proc/{server[0]}/environ").read_bytes().split(b"\0")
        assert b"MLFLOW_DISABLE_TELEMETRY=true" in environ
        assert _session(int(server[0])), "the server runs in a session of its own"
    finally:
        os.killpg(ui.pid, stop)
        try:
            output, _ = ui.communicate(timeout=90)
        except subprocess.TimeoutExpired:  # never leave the servers running
            os.killpg(ui.pid, signal.SIGKILL)
            output, _ = ui.communicate()
            raise AssertionError(f"study ui ignored {stop.name} for 90 s:\n{output}") from None
        left = _session(int(server[0])) if server else []
        for line in left:  # never leave them behind, even when the test fails
            os.kill(int(line.split()[0]), signal.SIGKILL)
    assert ui.returncode == 0 and "Traceback" not in output, output
    assert not left, f"{stop.name} left {left}"
    assert f"MLflow UI for {store} at {base}/#/experiments?workflowType=machine_learning" in (
        output)
    trials = f"{base}/#/experiments/{tracker.experiment_id}/runs?workflowType=machine_learning"
    assert f"{trials}&viewStateShareKey=study-trials" in output
    for noise in ("GET /", "POST /", "Registry store URI", "Deprecat", "INFO"):
        assert noise not in output, f"{noise!r} in the terminal:\n{output}"


def test_views_are_written_colour_runs_by_arm_and_name_the_study(store):
    tracker, runs = _study(store)
    Tracker("empty", store)  # no runs: not a study
    client = MlflowClient(store)
    assert [e.name for e in browse.studies(client)] == ["browse"]
    colours = {client.get_run(r.run_id).data.tags["study.arm"]:
               client.get_run(r.run_id).data.tags[browse.COLOR_TAG] for r in runs}
    assert len(set(colours.values())) == len(colours) == len({s.arm for s in _smoke()})
    result = CliRunner().invoke(app, ["ui", "nope", "--tracking-uri", store, "--port",
                                      str(free_port())])
    assert result.exit_code == 2 and "nope: no such study" in result.output
    assert "studies there: browse" in result.output

    browse.write_views(client, tracker.experiment_id)
    tags = client.get_experiment(tracker.experiment_id).tags
    for view in browse.VIEWS:
        envelope = json.loads(tags[browse.VIEW_TAG + view.key])
        assert envelope["name"] == view.name and isinstance(envelope["createdAt"], int)
        state = json.loads(envelope["state"])
        assert state["searchFilter"] == browse.TRIALS and state["selectedColumns"] == list(
            browse.COLUMNS)
    # the views' search keeps the launch run out and every trial in
    shown = client.search_runs([tracker.experiment_id], browse.TRIALS)
    assert {r.info.run_id for r in shown} == {r.run_id for r in runs}
    lines = "\n".join(browse.links("http://h:1", browse.studies(client)))
    assert f"http://h:1/#/experiments/{tracker.experiment_id}/runs?workflowType=" in lines
    assert client.search_runs([tracker.experiment_id], browse.SEARCH)  # a valid search


def _smoke():
    return load_space("smoke")[0].expand()


def _bundle() -> str:
    import mlflow.server

    js = Path(mlflow.server.__file__).parent / "js" / "build" / "static" / "js"
    return "".join(f.read_text(errors="replace") for f in sorted(js.glob("*.js")))


def _js_list(bundle: str, *first: str) -> list[str]:
    """The JavaScript array literal of strings that starts with `first`."""
    start = ",".join(f'"{f}"' for f in first)
    found = re.search(r"\[" + re.escape(start) + r'(?:,"[\w.]+")*\]', bundle)
    assert found, f"no list starting with {start} in MLflow's UI bundle"
    return json.loads(found.group(0))


def test_the_installed_mlflow_ui_reads_the_views_the_study_writes():
    """What the views rely on, in the installed MLflow's UI bundle (pyproject: mlflow < 3.18):
    saved views as experiment tags `mlflow.sharedViewState.<key>` in a {name, createdAt,
    state} envelope, opened by `viewStateShareKey`; which keys of a state it restores; run
    colours, the model-training view and the chart mode as URL parameters."""
    bundle = _bundle()
    for text in (f'"{browse.VIEW_TAG}"', f'"{browse.SHARE_KEY}"', f'"{browse.COLOR_TAG}"',
                 '"workflowType"', 'MACHINE_LEARNING="machine_learning"',
                 '"compareRunsMode"', "string `name`, number `createdAt`, and string `state`",
                 'SCATTER="SCATTER"', 'LINE="LINE"', "cardHeight", 'e.Tag="tag"',
                 'ATTRIBUTES:"attributes",PARAMS:"params",METRICS:"metrics",TAGS:"tags"',
                 'e+".`"+t+"`"'):  # a column's key: metrics.`name`
        assert text in bundle, f"MLflow's UI no longer has {text}"
    facets = _js_list(bundle, "searchFilter", "orderByKey")
    ui_keys = _js_list(bundle, "selectedColumns", "columnOrder")
    not_shared = _js_list(bundle, "runsExpanded", "runsPinned", "runsHidden")
    for view in browse.VIEWS:
        restored = set(facets) | set(ui_keys) - set(not_shared)
        assert set(view.state) <= restored, set(view.state) - restored


def test_a_moved_or_copied_store_reads_its_own_artifacts(tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    uri = f"sqlite:///{first / 'mlruns' / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["run", "smoke", "--select", "arm=dense", "--tracking-uri",
                                      uri])
    assert result.exit_code == 0, result.output
    dense = next(s for s in _smoke() if s.arm == "dense")
    expected = Tracker("smoke", uri).load(dense, "init.pt")

    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    first.rename(moved)  # the original is gone: only a relocated store finds its artifacts
    opened = {moved: lambda uri: None, copy: resolve_uri}  # a Tracker; `study analyze`
    for folder, open_ in opened.items():
        uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
        open_(uri)
        loaded = Tracker("smoke", uri).load(dense, "init.pt")
        assert all(torch.equal(loaded[k], v) for k, v in expected.items())
        client = MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])[0]
        assert run.info.artifact_uri.startswith((folder / "mlruns" / "artifacts").as_uri())
        assert relocate(uri) == 0  # done once, on opening


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (apt-get install "
                    "-y chromium)")
def test_the_printed_link_opens_the_runs_table_in_chromium(tmp_path):
    """scripts/ui_screenshots.py in headless Chromium, a fresh profile: the trials view opens
    in the model-training view with the study's columns, the launch run filtered out."""
    store = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["run", "smoke", "--select", "arm=reinit",
                                      "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id],
                              browse.TRIALS)
    out = tmp_path / "shots"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "ui_screenshots.py"),
                           "--tracking-uri", store, "--out", str(out), "--views",
                           "study-trials", "--wait", "25"], capture_output=True, text=True,
                          timeout=540)
    assert done.returncode == 0, done.stdout + done.stderr
    (page,) = out.glob("*-study-trials.html")
    dom = page.read_text()
    assert (out / page.name.replace(".html", ".png")).stat().st_size > 20_000
    assert "Model training" in dom and "Trials: arm, round, width, lr, seed" in dom
    for column in ("study.arm", "study.granularity", "remaining", "final_test_acc"):
        assert f">{column}<" in dom, column
    assert re.search(rf">{len(runs)}</[^>]*>\s*matching runs|{len(runs)} matching runs", dom)
    assert "launch-" not in dom  # the launch run's name
