"""A trial whose process crashes or stalls is reported with what ended it, and the run goes on.

Real deaths in real child processes: a segmentation fault raised in native code
(`faulthandler._sigsegv`), a SIGSEGV sent from outside to a `study run` worker in the middle of
training, and a training loop stuck in one call, which the watchdog stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.supervise import STALL_FACTOR, death_message, fatal_signal, read_report
from study.train import Heartbeat

CRASH = """
import faulthandler, sys
from study.supervise import FaultFile
with FaultFile(sys.argv[1], "trial abc (dense round 0), execution device=cpu"):
    faulthandler._sigsegv()
"""

STALL = """
import sys, time, torch
from bench.trainer import synthetic_splits
from study.models import build_model
from study.specs import TrainSpec
from study.supervise import Supervised
from study.train import train

class Stuck(torch.nn.Module):
    '''An MLP whose forward blocks forever from its sixth call on (a hung kernel).'''
    def __init__(self):
        super().__init__()
        self.net, self.calls = build_model("mlp", (40,), 10, hidden=(8,), seed=0), 0
    def forward(self, x):
        self.calls += 1
        if self.calls > 5:
            time.sleep(3600)
        return self.net(x)

spec = TrainSpec(lr=0.05, batch_size=16, steps=100, eval_every=1000)
data = synthetic_splits((40,), 64)
# warm up first (the first optimizer step imports torch._dynamo: seconds on a busy machine)
train(build_model("mlp", (40,), 10, hidden=(8,), seed=0), data, spec, seed=0, total_steps=1)
with Supervised(sys.argv[1], "trial stuck (dense round 0), execution device=cpu", 8.0):
    train(Stuck(), data, spec, seed=0, total_steps=100)
print("NOT STOPPED")
"""


def test_a_segfault_in_native_code_is_reported_with_the_signal_and_stack(tmp_path):
    path = tmp_path / "fault.txt"
    done = subprocess.run([sys.executable, "-c", CRASH, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGSEGV
    report = read_report(path)
    assert fatal_signal(report) == "SIGSEGV"
    message = death_message(report, "unused header", done.returncode)
    assert message.startswith("the trial's process died by signal SIGSEGV")
    assert "trial abc" in message and "device=cpu" in message
    assert "innermost frame" in message and "<string>" in message  # the Python stack


def test_death_without_a_report_names_the_signal_from_the_exit_code():
    message = death_message(None, "trial x, execution channels_last=True", -signal.SIGABRT)
    assert message.startswith("the trial's process died by signal SIGABRT")
    assert "channels_last=True" in message
    assert "no fatal-signal report" in death_message(None, "trial x")


@pytest.mark.timeout(120)
def test_a_stalled_training_loop_is_stopped_and_says_where(tmp_path):
    path = tmp_path / "fault.txt"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STALL, str(path)], capture_output=True,
                          text=True, timeout=100)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr[-2000:]
    assert "NOT STOPPED" not in done.stdout
    message = death_message(read_report(path), "unused", done.returncode)
    assert message.startswith("stalled: no training progress for")
    assert "at step 5" in message and "trial stuck" in message
    assert time.monotonic() - start < 90


def test_the_stall_limit_is_fifty_typical_steps_and_never_below_the_floor():
    from study.supervise import FaultFile, Watchdog

    beats = Heartbeat()
    beats.beat(1)  # an earlier trial's step in this process: not this trial's
    dog = Watchdog(FaultFile(Path(os.devnull), ""), floor_seconds=10.0, beats=beats)
    assert dog.limit() == 10.0 and dog.typical_step() is None
    beats.beat(1)
    assert dog.limit() == 10.0  # one step seen: no typical step yet
    beats.step, beats.beats, beats.last = 3, beats.beats + 2, beats.last + 1.0  # 2 steps, 1 s
    assert dog.typical_step() == pytest.approx(0.5)
    assert dog.limit() == pytest.approx(STALL_FACTOR * 0.5)  # 25 s, above the floor


def _space(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(f"from study.space import Space\nspace = Space(name={name!r}, {body})\n")
    return path


# two independent chains: the lr 0.05 one's dense run is long enough to be killed mid-training
TWO_CHAINS = ("model={'name': 'mlp', 'hidden': [128, 128]}, "
              "grid={'train': [{'lr': 0.05, 'steps': 30000}, {'lr': 0.02, 'steps': 300}]}, "
              "train={'batch_size': 128, 'eval_every': 5000}, "
              "prune={'rounds': 1}, arms=['reinit'], retries=0")


def _faults(folder: Path) -> list[tuple[int, str]]:
    """(pid, header) of every trial now running, from the fault files they keep."""
    out = []
    for path in folder.glob("**/*.txt"):
        header = path.read_text().splitlines()[:1]
        if header and "pid " in header[0]:
            out.append((int(header[0].rsplit("pid ", 1)[1]), header[0]))
    return out


def _segv_the_long_dense_trial(folder: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        for pid, header in _faults(folder):
            if "dense round 0" in header and "lr 0.05" in header:
                time.sleep(1.0)  # let it train a little
                os.kill(pid, signal.SIGSEGV)
                return header
        time.sleep(0.2)
    raise AssertionError("the long dense trial's process did not appear")


def _check_store(uri: str, experiment: str, header: str) -> None:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`study.stage` != 'launch'")
    killed = header.split()[1]
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert [r.data.tags["study.id"] for r in failed] == [killed]
    failure = failed[0].data.tags["study.failure"]
    assert "signal SIGSEGV" in failure and "channels_last=False" in failure, failure
    assert failed[0].data.tags["study.outcome"] == "failed"
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 3  # the other chain: dense, lottery round 1, reinit round 1
    assert {r.data.tags["study.dense_id"] for r in finished} != {killed}


@pytest.mark.timeout(560)
def test_study_run_records_a_worker_killed_by_sigsegv_and_finishes_the_rest(tmp_path):
    space = _space(tmp_path, "crashrun", TWO_CHAINS)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "study.cli", "run", str(space),
                               "--tracking-uri", uri], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        header = _segv_the_long_dense_trial(temp, time.monotonic() + 240)
        output, _ = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 1, output  # a failed trial: the command says so
    assert "FAILED" in output and "SIGSEGV" in output, output
    assert "2 trial(s) not run because a trial they depend on failed" in output, output
    _check_store(uri, "crashrun", header)


@pytest.mark.ray
@pytest.mark.timeout(620)
def test_sweep_records_a_worker_killed_by_sigsegv_and_finishes_the_rest(tmp_path):
    space = _space(tmp_path, "crashsweep", TWO_CHAINS)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = tmp_path / "tune"
    env = {**os.environ, "STUDY_TUNE_STORAGE": str(storage), "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "study.cli", "sweep", str(space),
                               "--tracking-uri", uri], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        header = _segv_the_long_dense_trial(storage / "faults", time.monotonic() + 300)
        output, _ = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 1, output
    assert "SIGSEGV" in output and "not run because a trial they depend on failed" in output
    _check_store(uri, "crashsweep", header)
