"""Faults injected: a killed trial resumes, divergence is recorded, corrupt artifacts are
recomputed, a burst of concurrent trials loses no metric row."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from study.cli import app

pytestmark = pytest.mark.ray


def _space_file(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(f"from study.space import Space\nspace = Space(name={name!r}, {body})\n")
    return path


def _runs(uri: str, experiment: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], "tags.`study.stage` != 'launch'",
                              max_results=5000)


LONG = ("model={'name': 'mlp', 'hidden': [256, 256]}, "
        "train={'lr': 0.05, 'batch_size': 256, 'steps': 6000, 'eval_every': 1000}, "
        "prune={'rounds': 1}, arms=[], checkpoint_every=1000")


def test_killed_trial_resumes_from_its_checkpoint_with_the_same_numbers(tmp_path):
    space = _space_file(tmp_path, "longtrial", LONG)
    uri = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = tmp_path / "tune"
    env = {**os.environ, "STUDY_TUNE_STORAGE": str(storage), "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "study.cli", "sweep", str(space),
                               "--select", "stage=dense", "--tracking-uri", uri], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not list(storage.glob("**/checkpoint_000001")) and time.monotonic() < deadline:
        time.sleep(0.2)  # wait for the second checkpoint (step 2000)
    killed = subprocess.run(["pkill", "-KILL", "-f", "ray::ImplicitFunc"], check=False)
    assert killed.returncode == 0, "no trial worker to kill"
    output, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, output
    (run,) = _runs(uri, "longtrial")
    assert int(run.data.tags["study.resumed_from_step"]) >= 1000
    reference = f"sqlite:///{tmp_path / 'run.db'}"
    result = CliRunner().invoke(app, ["run", str(space), "--select", "stage=dense",
                                      "--tracking-uri", reference])
    assert result.exit_code == 0, result.output
    (expected,) = _runs(reference, "longtrial")
    for key in ("final_test_acc", "best_val_acc", "test_acc_at_best_val", "early_stop_step"):
        assert run.data.metrics[key] == expected.data.metrics[key], key


def test_divergence_is_recorded_and_the_sweep_goes_on(tmp_path, ray_local):
    body = ("model={'name': 'mlp', 'hidden': [32]}, prune={'rounds': 1}, arms=['reinit'], "
            "train={'steps': 200, 'eval_every': 50, 'momentum': 0.99, 'nesterov': True}, "
            "grid={'train.lr': [0.05, 10.0]}")
    space = _space_file(tmp_path, "diverging", body)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["sweep", str(space), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    runs = _runs(uri, "diverging")
    outcome = {(r.data.tags["study.lr"], r.data.tags["study.arm"]): r.data.tags["study.outcome"]
               for r in runs}
    assert outcome[("10.0", "dense")] == "diverged"
    assert outcome[("10.0", "lottery")] == outcome[("10.0", "reinit")] == "skipped"
    assert {outcome[("0.05", a)] for a in ("dense", "lottery", "reinit")} == {"finished"}
    dense = next(r for r in runs if r.data.tags["study.lr"] == "10.0"
                 and r.data.tags["study.arm"] == "dense")
    assert 0 < int(dense.data.tags["study.diverged_step"]) <= 200


def test_corrupt_artifact_is_detected_named_and_recomputed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    chain = ["--select", "granularity=unstructured", "--select", "round=1"]
    first = CliRunner().invoke(app, ["run", "smoke", *chain, "--select", "stage=imp",
                                     "--tracking-uri", uri])
    assert first.exit_code == 0, first.output
    (imp,) = [r for r in _runs(uri, "smoke") if r.data.tags["study.stage"] == "imp"]
    mask = next((tmp_path / "artifacts").glob(f"**/{imp.info.run_id}/artifacts/mask.pt"))
    mask.write_bytes(mask.read_bytes()[:100])  # truncated
    broken = CliRunner().invoke(app, ["run", "smoke", *chain, "--tracking-uri", uri])
    assert broken.exit_code == 1
    assert "mask.pt" in broken.output and imp.info.run_id in broken.output
    assert MlflowClient(uri).get_run(imp.info.run_id).info.status == "FAILED"
    fixed = CliRunner().invoke(app, ["run", "smoke", *chain, "--tracking-uri", uri])
    assert fixed.exit_code == 0, fixed.output
    finished = [r.data.tags["study.id"] for r in _runs(uri, "smoke")
                if r.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) == 1 + 1 + 7  # dense, imp round 1, 7 arms


def test_32_concurrent_trials_logging_every_step_lose_no_metric_row(tmp_path, ray_local):
    steps = 40
    body = ("model={'name': 'mlp', 'hidden': [8]}, prune={'rounds': 1}, arms=[], "
            f"train={{'steps': {steps}, 'eval_every': 1, 'batch_size': 50}}, "
            "seeds=list(range(16)), grid={'train.lr': [0.01, 0.02]}")
    space = _space_file(tmp_path, "load", body)
    db = tmp_path / "mlflow.db"
    start = time.monotonic()
    result = CliRunner().invoke(app, ["sweep", str(space), "--select", "stage=dense",
                                      "--tracking-uri", f"sqlite:///{db}"])
    wall = time.monotonic() - start
    assert result.exit_code == 0, result.output
    assert "database is locked" not in result.output.lower()
    runs = _runs(f"sqlite:///{db}", "load")
    assert len(runs) == 32
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("select run_uuid, count(*) from metrics group by run_uuid"))
    for run in runs:
        summary = len([k for k in run.data.metrics if k not in
                       ("train_loss", "val_loss", "val_acc", "test_acc")])
        assert rows[run.info.run_id] == 4 * steps + summary
    print(f"\n32 trials x {steps} logged steps: {sum(rows.values())} metric rows, wall {wall:.1f}s")


NODE_LOSS = """
import os, sys, threading, time
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import ray
from ray.cluster_utils import Cluster
from study.space import load_space, select
from study.sweep import run_sweep
from study.tracking import Tracker

cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
ray.init(address=cluster.address)
space, source = load_space("smoke")
trials = select(space.expand(), ["granularity=structured"])
tracker = Tracker("smoke", sys.argv[1])

def lose_the_worker():
    while len(tracker.done()) < 4:
        time.sleep(0.5)
    cluster.remove_node(worker)
    print("REMOVED", flush=True)

threading.Thread(target=lose_the_worker, daemon=True).start()
print("COUNTS", run_sweep(space, source, trials, tracker), flush=True)
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.slow
def test_losing_a_node_mid_sweep_the_head_finishes_it(tmp_path):
    script = tmp_path / "node_loss.py"
    script.write_text(NODE_LOSS)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, str(script), uri], capture_output=True, text=True,
                          timeout=900)
    assert "REMOVED" in done.stdout and "COUNTS" in done.stdout, done.stdout + done.stderr[-3000:]
    runs = [r for r in _runs(uri, "smoke") if r.info.status == "FINISHED"]
    ids = [r.data.tags["study.id"] for r in runs]
    assert len(ids) == len(set(ids)) == 17


@pytest.mark.slow
def test_driver_killed_at_random_points_five_times_loses_and_duplicates_nothing(tmp_path):
    """SIGKILL `study sweep` during expansion, while trials run and while one is recorded;
    each relaunch finishes the rest: every expected id ends FINISHED exactly once."""
    import random

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    subset = ["--select", "granularity=unstructured"]
    rng = random.Random(0)
    kills = [0.5, *(rng.uniform(5, 25) for _ in range(4))]  # the first during expansion
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for delay in kills:
        driver = subprocess.Popen([sys.executable, "-m", "study.cli", "sweep", "smoke", *subset,
                                   "--tracking-uri", uri], env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.killpg(driver.pid, 9)
        driver.wait()
        time.sleep(2)
    final = subprocess.run([sys.executable, "-m", "study.cli", "sweep", "smoke", *subset,
                            "--tracking-uri", uri], env=env, capture_output=True, text=True,
                           timeout=900)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    runs = _runs(uri, "smoke")
    finished = [r.data.tags["study.id"] for r in runs if r.info.status == "FINISHED"]
    from study.space import load_space, select

    space, _ = load_space("smoke")
    expected = {t.id for t in select(space.expand(), ["granularity=unstructured"])}
    assert sorted(finished) == sorted(expected)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    closed = [r for r in runs if r.info.status in ("KILLED", "FAILED")]
    print(f"\nkills survived: {len(kills)}, runs lost: 0, duplicates: "
          f"{len(finished) - len(set(finished))}, runs closed as killed/failed: {len(closed)}")




@pytest.mark.slow
def test_sweep_survives_a_tracking_server_outage(tmp_path):
    """Stop the remote tracking server for a few seconds mid-sweep: logging retries with
    backoff, every trial is recorded once and no metric row is lost."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
               str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
               "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"]

    def start():
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1).close()
                return server
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("tracking server did not start")

    server = start()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "study.cli", "sweep", "smoke", "--select",
                               "granularity=structured", "--tracking-uri", uri], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in driver.stdout:
        if line.startswith("[3/"):
            break
    os.killpg(server.pid, 9)
    server.wait()
    time.sleep(5)
    server = start()
    output = driver.communicate(timeout=900)[0]
    try:
        assert driver.returncode == 0, output[-3000:]
        runs = [r for r in _runs(uri, "smoke") if r.info.status == "FINISHED"]
        ids = [r.data.tags["study.id"] for r in runs]
        assert len(ids) == len(set(ids)) == 17
        client = MlflowClient(uri)
        for run in runs:  # one curve row per evaluation (every 100 steps and at the end)
            steps = int(run.data.metrics["train_steps"])
            expected = max(1, steps // 100 + (steps % 100 != 0))
            assert len(client.get_metric_history(run.info.run_id, "val_acc")) == expected
    finally:
        os.killpg(server.pid, 9)
