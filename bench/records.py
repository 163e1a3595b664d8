"""Records per second: how many trial runs a tracking store takes from concurrent writers.

Every node of a sweep writes its trials' runs to one store. Each writer here is a process that
records packs of 16 trials the way a sweep's worker does (`Tracker.start_pack`: the runs
RUNNING with their condition; `Tracker.finish_pack`: spec.json and a 20 KB tensor artifact,
summaries, an 11-point curve, FINISHED), as fast as it can, without training. Timed against a
local SQLite store (the writers share its file) and against `scripts/tracking_server.sh` on
loopback (SQLite behind the server, 4 server processes by default), with 2 and 8 writers. On a
small machine the writers and the server share the cores: the figure is what the store takes
when nothing else runs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from study.contract import DEVICE, wait_until_up

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "tracking_server.sh"
PACK = 16


def _trials(writer: int, packs: int):
    from study.specs import DenseSpec, TrainSpec, TrialSpec

    train = TrainSpec(steps=1000, eval_every=100)
    return [TrialSpec(stage="dense", arm="dense",
                      dense=DenseSpec(train=train, seed=10_000 * writer + i))
            for i in range(packs * PACK)]


def _record(seed: int):
    from study.trial import TrialRecord

    curves = [{"step": s, "train_loss": 1.0 / s, "val_loss": 1.5, "val_acc": 0.5,
               "test_acc": 0.5} for s in range(100, 1200, 100)]
    gen = torch.Generator().manual_seed(seed)
    weights = {"w": torch.randn(50, 100, generator=gen)}  # 20 KB, as a quickstart net's
    params = {"trained.widths": "[50, 50]", "trained.steps": "1000",
              "trained.schedule_steps": "1000", "trained.start_step": "0", "trained.lr": "0.1",
              "trained.schedule": "cosine", "trained.warmup_steps": "0",
              "trained.optimizer": "sgd", "trained.weight_decay": "0"}
    metrics = {f"summary_{i}": 0.5 for i in range(20)}
    return TrialRecord("finished", metrics, curves, {"final.pt": weights}, {}, params)


def _writer(uri: str, writer: int, packs: int, start: float) -> float:
    """One writer process: its packs recorded as a sweep's worker records them."""
    from study.tracking import Tracker

    tracker = Tracker("records-bench", uri, probe=False)
    trials = _trials(writer, packs)
    while time.time() < start:  # every writer starts at once
        time.sleep(0.01)
    begin = time.perf_counter()
    for i in range(0, len(trials), PACK):
        pack = trials[i:i + PACK]
        runs = tracker.start_pack(pack, parent=None, tags={DEVICE: "cpu"})
        tracker.finish_pack([(runs[s.id], _record(s.dense.seed)) for s in pack])
    return time.perf_counter() - begin


def runs_per_second(uri: str, writers: int, packs: int) -> float:
    """Runs recorded per second by `writers` processes of `packs` packs each, all at once."""
    from study.tracking import Tracker

    Tracker("records-bench", uri, probe=False)  # the experiment, made once
    start = time.time() + 5.0 + 1.0 * writers  # after every writer has imported the study
    with ProcessPoolExecutor(writers, mp_context=mp.get_context("spawn")) as pool:
        times = list(pool.map(_writer, [uri] * writers, range(writers), [packs] * writers,
                              [start] * writers))
    return writers * packs * PACK / max(times)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server(root: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "STUDY_MLFLOW_ROOT": str(root), "MLFLOW_PORT": str(port),
           "MLFLOW_HOST": "127.0.0.1"}
    proc = subprocess.Popen(["bash", str(SCRIPT)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(uri)
    except TimeoutError:
        proc.terminate()
        raise
    return proc, uri


def bench_records(writers: tuple[int, ...] = (2, 8), packs: int = 4, echo=print) -> list[dict]:
    """Runs per second into a local SQLite store and a loopback tracking server, per number of
    concurrent writers."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="study-records-") as folder:
        stores = {"sqlite": lambda n: f"sqlite:///{folder}/sqlite-{n}/mlflow.db"}
        server = None
        if SCRIPT.exists():
            server, uri = _server(Path(folder) / "server")
            stores["server"] = lambda n: uri
        try:
            for store, uri_for in stores.items():
                for n in writers:
                    rate = runs_per_second(uri_for(n), n, packs)
                    rows.append({"store": store, "writers": n, "runs_per_s": rate,
                                 "runs": n * packs * PACK})
                    echo(f"  records {store:<7} {n} writers: {rate:,.0f} runs/s "
                         f"({n * packs * PACK} runs, packs of {PACK})")
        finally:
            if server is not None:
                os.killpg(server.pid, 15)
                server.wait(timeout=30)
    if not SCRIPT.exists():
        echo(f"  records: {SCRIPT} not found (an installed package): no server timed")
    return rows
