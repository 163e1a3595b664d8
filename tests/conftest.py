"""Shared fixtures: a throwaway tracking store, and Ray started once per session on loopback."""

from __future__ import annotations

import pytest

import study  # noqa: F401  (MLflow telemetry off before any test module imports mlflow)


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
