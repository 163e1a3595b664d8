"""Shared fixtures: a throwaway tracking store, and Ray started once per session on loopback."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def ray_local():
    """Ray on 2 CPUs, loopback only, no dashboard: started once for every test that needs it."""
    import ray

    from study.sweep import connect

    connect(None, num_cpus=2)
    yield ray
    ray.shutdown()
