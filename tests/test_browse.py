"""Browsing a study: `study ui` serves the store on loopback; a dry run writes nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from servers import free_port, wait_until_up
from typer.testing import CliRunner

from study.cli import app
from study.tracking import Tracker


def test_dry_run_prints_the_plan_and_creates_no_store(tmp_path):
    db = tmp_path / "nowhere" / "mlflow.db"
    result = CliRunner().invoke(app, ["sweep", "smoke", "--dry-run", "--tracking-uri",
                                      f"sqlite:///{db}"])
    assert result.exit_code == 0, result.output
    assert "space smoke: 33 trials, 0 done, 33 to run" in result.output
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


@pytest.mark.timeout(180)
def test_ui_serves_the_store_on_loopback_with_telemetry_off(store):
    tracker = Tracker("browse", store)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    ui = subprocess.Popen([sys.executable, "-m", "study.cli", "ui", "--tracking-uri", store,
                           "--port", str(port)], env=env, start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base)
        request = urllib.request.Request(
            f"{base}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=browse")
        with urllib.request.urlopen(request, timeout=10) as answer:
            found = json.load(answer)["experiment"]
        assert found["experiment_id"] == tracker.experiment_id
        tags = {t["key"]: t["value"] for t in found.get("tags", [])}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        server = subprocess.run(["ps", "-o", "pid=", "--ppid", str(ui.pid)],
                                capture_output=True, text=True).stdout.split()
        environ = Path(f"/proc/{server[0]}/environ").read_bytes().split(b"\0")
        assert b"MLFLOW_DISABLE_TELEMETRY=true" in environ
    finally:
        os.killpg(ui.pid, signal.SIGINT)
        try:
            output, _ = ui.communicate(timeout=90)
        except subprocess.TimeoutExpired:  # never leave the servers running
            os.killpg(ui.pid, signal.SIGKILL)
            output, _ = ui.communicate()
            raise AssertionError(f"study ui ignored Ctrl-C for 90 s:\n{output}") from None
    assert f"MLflow UI for {store} at {base}/#/experiments?workflowType=machine_learning" in (
        output)
    assert ui.returncode == 0 and "Traceback" not in output
