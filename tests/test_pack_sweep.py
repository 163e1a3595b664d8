"""`study sweep` packs: a Tune trial is a pack; killed, it resumes every member where it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from test_faults import _runs, _space_file
from typer.testing import CliRunner

from study.cli import app

pytestmark = pytest.mark.ray

ARMS = ("model={'name': 'mlp', 'hidden': [32, 32]}, "
        "train={'lr': 0.05, 'batch_size': 100, 'steps': 200, 'eval_every': 50}, "
        "prune={'rounds': 1, 'rate': 0.5}, arms=['reinit', 'random_prune'], "
        "seeds=[0, 1, 2], grid={'train.lr': [0.05, 0.1]}")
LONG = ("model={'name': 'mlp', 'hidden': [256, 256]}, "
        "train={'lr': 0.05, 'batch_size': 256, 'steps': 6000, 'eval_every': 1000}, "
        "prune={'rounds': 1}, arms=[], checkpoint_every=1000, seeds=[0, 1, 2]")


@pytest.mark.timeout(600)
def test_sweep_relaunch_packs_only_the_missing_trials(tmp_path, ray_local):
    space = _space_file(tmp_path, "sweptpacks", ARMS)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = CliRunner().invoke(app, ["run", str(space), "--select", "stage=imp",
                                     "--pack-size", "1", "--tracking-uri", uri])
    assert first.exit_code == 0, first.output
    swept = CliRunner().invoke(app, ["sweep", str(space), "--pack-size", "16",
                                     "--tracking-uri", uri])
    assert swept.exit_code == 0, swept.output
    assert "24 trials, 12 already done, 12 to run" in swept.output
    runs = [r for r in _runs(uri, "sweptpacks") if r.info.status == "FINISHED"]
    ids = [r.data.tags["study.id"] for r in runs]
    assert len(ids) == len(set(ids)) == 24  # no duplicate runs
    arms = [r for r in runs if r.data.tags["study.stage"] == "arm"]
    assert {r.data.tags["study.pack_size"] for r in arms} == {"12"}  # one pack of the 12
    assert len({r.data.tags["study.pack"] for r in arms}) == 1
    assert Counter(r.data.tags["study.pack_size"] for r in runs)["1"] == 12


@pytest.mark.timeout(60)
def test_a_tune_worker_starts_without_importing_torch_or_mlflow(tmp_path):
    """A pack of small nets lasts a second or two: a Tune actor must be ready sooner, so the
    trainable Ray ships to it imports the study only when its first pack runs."""
    import ray.cloudpickle

    from study.execution import Execution
    from study.space import load_space
    from study.sweep import make_trainable

    space, _ = load_space(str(_space_file(tmp_path, "light", ARMS)))
    trainable = make_trainable("light", "sqlite:///x.db", "launch", space.expand(),
                               Execution(), 1, tmp_path, 60.0, stacked=True)
    blob = tmp_path / "trainable.pkl"
    blob.write_bytes(ray.cloudpickle.dumps(trainable))
    probe = ("import sys, ray.cloudpickle as cp; f = cp.loads(open(sys.argv[1], 'rb').read()); "
             "assert callable(f); print(sorted(m for m in ('torch', 'mlflow', 'study.sweep') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe, str(blob)], capture_output=True,
                         text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _kill_the_pack_worker(driver: subprocess.Popen) -> bool:
    """SIGKILL this sweep's Tune trial worker (a descendant of the driver, no other)."""
    table = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True)
    rows = [line.split(None, 2) for line in table.stdout.splitlines()]
    parent = {int(r[0]): int(r[1]) for r in rows if len(r) >= 2}
    for row in rows:
        pid, args = int(row[0]), row[2] if len(row) == 3 else ""
        ancestor = parent.get(pid)
        while ancestor and ancestor != driver.pid:
            ancestor = parent.get(ancestor)
        if ancestor == driver.pid and "ImplicitFunc" in args:
            os.kill(pid, signal.SIGKILL)
            return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_killed_pack_resumes_every_member_where_it_was(tmp_path):
    space = _space_file(tmp_path, "longpack", LONG)
    uri = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = tmp_path / "tune"
    env = {**os.environ, "STUDY_TUNE_STORAGE": str(storage), "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "study.cli", "sweep", str(space),
                               "--select", "stage=dense", "--pack-size", "4",
                               "--tracking-uri", uri], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 400
    while not list(storage.glob("**/checkpoint_000001")) and time.monotonic() < deadline:
        time.sleep(0.2)  # wait for the pack's second checkpoint (step 2000)
    assert _kill_the_pack_worker(driver), "no pack worker to kill"
    output, _ = driver.communicate(timeout=900)
    assert driver.returncode == 0, output
    runs = _runs(uri, "longpack")
    assert len(runs) == 3 and len({r.data.tags["study.pack"] for r in runs}) == 1
    assert {r.data.tags["study.pack_size"] for r in runs} == {"3"}
    assert all(int(r.data.tags["study.resumed_from_step"]) >= 1000 for r in runs)
    reference = f"sqlite:///{tmp_path / 'run.db'}"
    result = CliRunner().invoke(app, ["run", str(space), "--select", "stage=dense",
                                      "--pack-size", "4", "--tracking-uri", reference])
    assert result.exit_code == 0, result.output
    expected = {r.data.tags["study.id"]: r.data.metrics for r in _runs(reference, "longpack")}
    for run in runs:
        for key in ("final_test_acc", "best_val_acc", "test_acc_at_best_val", "early_stop_step"):
            assert run.data.metrics[key] == expected[run.data.tags["study.id"]][key], key
