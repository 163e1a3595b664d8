"""Shared fixtures: a throwaway tracking store, and Ray started once per session on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest

import study  # noqa: F401  (MLflow telemetry off before any test module imports mlflow)

# Every MLflow server a test starts inherits this: MLflow 3's GenAI job runner (a pool of
# workers, ~1 GB, slow to start on 2 busy cores) is of no use to the study's runs.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
# Pack-size calibrations (`study.packing`) of this session's nets, not the user's cache.
os.environ["STUDY_CACHE_DIR"] = tempfile.mkdtemp(prefix="study-cache-")


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite MLflow store in tmp_path; returns its URI."""
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


@pytest.fixture
def tracking_server(tmp_path):
    """`mlflow server` on 127.0.0.1 with a SQLite backend and a local artifact root."""
    from servers import free_port

    from study.contract import wait_until_up

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    wait_until_up(uri)
    yield uri
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.fixture(scope="session")
def ray_local():
    """Ray on 2 CPUs, loopback only, no dashboard: started once for every test that needs it."""
    import ray

    from study.sweep import connect

    connect(None, num_cpus=2)
    yield ray
    ray.shutdown()
