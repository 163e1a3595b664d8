"""`study run`'s trial process: trials run one after another in a child process that the
parent watches, so a trial that crashes or hangs in native code is recorded FAILED, with the
signal and how it ran, and the run goes on with a fresh child (`study.supervise`).

The child comes from a fork server that has imported the study once, so a fresh child costs a
fork, not a second start of torch and MLflow.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from pathlib import Path

import torch

from study.errors import ArtifactError, UpstreamNotReady
from study.execution import Execution
from study.recording import record_pack
from study.specs import TrialSpec
from study.supervise import Supervised, death_message, read_report
from study.tracking import Tracker
from study.words import header


class WorkerDied(RuntimeError):
    """The trial's process died or was stopped by its watchdog; the message says how."""


def _context() -> mp.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["study.worker"])
        return ctx
    return mp.get_context("spawn")


class TrialWorker:
    """Runs and records packs of trials in a supervised child process, one at a time."""

    def __init__(self, experiment: str, uri: str, execution: Execution, threads: int,
                 fault_dir: Path, stall_seconds: float) -> None:
        self.args = (experiment, uri, execution, threads, str(fault_dir), stall_seconds)
        self.fault_dir = Path(fault_dir)
        self.process, self.conn = None, None

    def _start(self) -> None:
        ctx = _context()
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, *self.args, dict(os.environ)),
                                   daemon=True, name="study-trial")
        self.process.start()
        child.close()

    def run(self, specs: list[TrialSpec], launch: str,
            stacked: bool = False) -> dict[str, tuple[str, dict[str, float]] | Exception]:
        """{id: (outcome, metrics) of the recorded trial, or the ArtifactError /
        UpstreamNotReady that failed it} for one pack; WorkerDied when the child did not live
        to answer (the pack's fault file is named after its first trial)."""
        if self.process is None:
            self._start()
        self.conn.send(([s.model_dump_json() for s in specs], launch, stacked))
        while True:
            reply = self._answer()
            if reply is not None:
                kind, *payload = reply
                if kind == "recorded":
                    errors = {"artifact": ArtifactError, "not_ready": UpstreamNotReady}
                    return {i: errors[r[0]](r[1]) if r[0] in errors else (r[1], r[2])
                            for i, r in payload[0].items()}
                raise RuntimeError(f"pack of {specs[0].id} raised in its worker:\n{payload[0]}")
            if not self.process.is_alive():
                self.process.join()
                code, self.process = self.process.exitcode, None
                path = self.fault_dir / f"{specs[0].id}.txt"
                report = read_report(path)
                path.unlink(missing_ok=True)
                raise WorkerDied(death_message(report, pack_header(specs, self.args[2]), code))

    def _answer(self) -> tuple | None:
        """The child's reply if one came within 0.2 s; None if none (or the pipe closed)."""
        try:
            return self.conn.recv() if self.conn.poll(0.2) else None
        except EOFError:  # the child is gone: its exit code says why
            self.process.join(timeout=5)
            return None

    def close(self) -> None:
        if self.process is not None:
            self.conn.send(None)
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
            self.process = None


def _serve(conn, experiment: str, uri: str, execution: Execution, threads: int, fault_dir: str,
           stall_seconds: float, env: dict[str, str]) -> None:
    """The child: run each trial it is sent under a fault file and a watchdog, record it."""
    os.environ.update(env)
    torch.set_num_threads(threads)
    tracker = Tracker(experiment, uri, probe=False)
    while (message := conn.recv()) is not None:
        texts, launch, stacked = message
        specs = [TrialSpec.model_validate_json(text) for text in texts]
        try:
            with Supervised(Path(fault_dir) / f"{specs[0].id}.txt",
                            pack_header(specs, execution), stall_seconds):
                outcomes = record_pack(specs, tracker, execution, launch, stacked=stacked)
            conn.send(("recorded", {i: _reply(r) for i, r in outcomes.items()}))
        except Exception:
            conn.send(("error", traceback.format_exc()))


def _reply(record) -> tuple:
    if isinstance(record, ArtifactError):
        return ("artifact", str(record))
    if isinstance(record, UpstreamNotReady):
        return ("not_ready", str(record))
    return ("recorded", record.outcome, record.metrics)


def pack_header(specs: list[TrialSpec], execution: Execution) -> str:
    """The fault file's header: the first trial, and how many more share its process."""
    more = f" (+ {len(specs) - 1} more trials packed with it)" if len(specs) > 1 else ""
    return header(specs[0], execution) + more
