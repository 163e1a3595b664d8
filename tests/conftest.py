"""Shared fixtures: a throwaway tracking store, and Ray started once per session on loopback."""

from __future__ import annotations

import pytest


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite MLflow store in tmp_path; returns its URI."""
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


@pytest.fixture(scope="session")
def ray_local():
    """Ray on 2 CPUs, loopback only, no dashboard: started once for every test that needs it."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
