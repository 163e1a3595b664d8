"""`study sweep` on Ray Tune: the same runs as `study run`, idempotent, resumable, multi-node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from study.cli import app
from study.space import load_space

pytestmark = pytest.mark.ray
SUBSET = ["--select", "granularity=unstructured"]  # dense + one chain of smoke: 17 trials


def _finished(uri, experiment="smoke"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`study.stage` != 'launch'",
                              max_results=5000)
    return runs


def _expected_ids(filters):
    from study.space import select

    space, _ = load_space("smoke")
    return {t.id for t in select(space.expand(), [f for f in filters if f != "--select"])}


@pytest.fixture(scope="module")
def swept(tmp_path_factory, ray_local):
    uri = f"sqlite:///{tmp_path_factory.mktemp('sweep') / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["sweep", "smoke", *SUBSET, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return uri


def test_sweep_produces_exactly_the_runs_study_run_would(swept, tmp_path):
    runs = _finished(swept)
    ids = [r.data.tags["study.id"] for r in runs]
    assert sorted(ids) == sorted(_expected_ids(SUBSET))  # every id once, no duplicates
    assert all(r.info.status == "FINISHED" for r in runs)
    dense_runs = [r for r in runs if r.data.tags["study.stage"] == "dense"]
    assert len(dense_runs) == 1  # the dense net is trained once, shared by every arm
    reference = f"sqlite:///{tmp_path / 'run.db'}"
    sample = ["--select", "granularity=unstructured", "--select", "round=1",
              "--select", "arm=reinit"]
    result = CliRunner().invoke(app, ["run", "smoke", *sample, "--tracking-uri", reference])
    assert result.exit_code == 0, result.output
    by_id = {r.data.tags["study.id"]: r.data.metrics for r in runs}
    for run in _finished(reference):
        swept_metrics = by_id[run.data.tags["study.id"]]
        for key in ("final_test_acc", "best_val_acc", "early_stop_step", "nonzero_params"):
            assert run.data.metrics[key] == swept_metrics[key], key


def test_relaunch_adds_no_run_and_is_quick(swept):
    before = len(_finished(swept))
    start = time.monotonic()
    result = CliRunner().invoke(app, ["sweep", "smoke", *SUBSET, "--tracking-uri", swept])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start < 60
    assert "0 to run" in result.output
    assert len(_finished(swept)) == before


def _study(*args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "study.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kwargs)


def test_driver_killed_mid_sweep_then_relaunched_ends_with_every_id_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = _study("sweep", "smoke", *SUBSET, "--tracking-uri", uri)
    deadline = time.monotonic() + 120
    for line in driver.stdout:  # kill once a few trials are recorded
        if line.startswith("[4/") or time.monotonic() > deadline:
            break
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(3)
    again = _study("sweep", "smoke", *SUBSET, "--tracking-uri", uri)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output
    runs = _finished(uri)
    finished = [r.data.tags["study.id"] for r in runs if r.info.status == "FINISHED"]
    assert sorted(finished) == sorted(_expected_ids(SUBSET))
    assert not [r for r in runs if r.info.status == "RUNNING"]


TWO_NODES = textwrap.dedent("""
    import os
    import sys
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # both nodes on loopback
    import ray
    from ray.cluster_utils import Cluster
    from study.space import load_space, select
    from study.sweep import run_sweep
    from study.tracking import Tracker

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address)
    space, source = load_space("smoke")
    trials = select(space.expand(), ["granularity=structured"])
    counts = run_sweep(space, source, trials, Tracker("smoke", sys.argv[1]))
    print("COUNTS", counts)
    ray.shutdown()
    cluster.shutdown()
""")


@pytest.mark.slow  # ~150 s on 2 CI cores: two Ray nodes start and sweep the smoke space
@pytest.mark.timeout(960)
def test_two_node_cluster_on_loopback_shares_artifacts(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "two_nodes.py"
    script.write_text(TWO_NODES)
    done = subprocess.run([sys.executable, str(script), uri], capture_output=True, text=True,
                          timeout=900)
    assert "COUNTS" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    runs = _finished(uri)
    nodes = {r.data.tags["study.node"] for r in runs}
    assert len(nodes) == 2  # trials ran on both nodes, reading each other's artifacts
    assert sorted(r.data.tags["study.id"] for r in runs) == sorted(
        _expected_ids(["--select", "granularity=structured"]))


def test_sweep_logs_to_a_remote_tracking_server(tracking_server, ray_local):
    select = ["--select", "granularity=structured", "--select", "round=1"]
    result = CliRunner().invoke(app, ["sweep", "smoke", *select, "--tracking-uri",
                                      tracking_server])
    assert result.exit_code == 0, result.output
    runs = _finished(tracking_server)
    assert sorted(r.data.tags["study.id"] for r in runs) == sorted(_expected_ids(select))
    curves = MlflowClient(tracking_server).get_metric_history(runs[0].info.run_id, "val_acc")
    assert len(curves) >= 1


def test_unreachable_tracking_server_fails_fast_with_exit_code_2():
    start = time.monotonic()
    result = CliRunner().invoke(app, ["run", "smoke", "--tracking-uri", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "unreachable" in result.output and time.monotonic() - start < 30
