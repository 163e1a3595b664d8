"""A trial whose process crashes or stalls is reported, not silent.

Native code can end a trial's process outright (a segmentation fault or an abort inside a
kernel) or hang it inside one call, and Python cannot catch either in that process. So every
trial process (a `study run` worker, a Ray Tune actor) keeps a *fault file* while a trial runs:
a header naming the trial, its process and how it runs, then `faulthandler`'s report of any
fatal signal with the Python stack of every thread. Whoever watches the process (the
`study run` parent, the sweep's driver) reads it when the process dies and records the trial
FAILED with the signal named. A `Watchdog` thread turns a stall into such a death: it writes
what stalled to the fault file and kills its own process (the stuck call never returns, so
nothing gentler can stop it).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from pathlib import Path

from study.train import Heartbeat, heartbeat

STALL_FACTOR = 50
"""A stall is this many typical steps without progress (and at least the space's floor)."""

# faulthandler's words for the fatal signals it reports
_FATAL = {"Segmentation fault": "SIGSEGV", "Aborted": "SIGABRT", "Bus error": "SIGBUS",
          "Floating-point exception": "SIGFPE", "Floating point exception": "SIGFPE",
          "Illegal instruction": "SIGILL"}
STALLED = "stalled:"


class FaultFile:
    """`with FaultFile(path, header):` the trial's fault file; removed if the trial ends."""

    def __init__(self, path: Path, header: str) -> None:
        self.path, self.header = Path(path), header
        self._file = None

    def __enter__(self) -> FaultFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._previous = faulthandler.is_enabled()
        self._file = open(self.path, "w")  # noqa: SIM115 - must outlive this call
        self._file.write(f"{self.header.rstrip()}, pid {os.getpid()}\n")
        self._file.flush()
        faulthandler.enable(self._file, all_threads=True)
        return self

    def note(self, text: str) -> None:
        """Append a line that survives the process's death (written through at once)."""
        self._file.write(text.rstrip() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *exc) -> None:
        faulthandler.disable()
        if self._previous:  # give the report back to whoever had it (pytest: stderr)
            faulthandler.enable(sys.__stderr__, all_threads=True)
        self._file.close()
        self.path.unlink(missing_ok=True)


def read_report(path: Path) -> str | None:
    """The fault file a dead trial process left behind, or None (it ended normally)."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def fatal_signal(report: str | None) -> str | None:
    """The fatal signal a fault file reports ('SIGSEGV', ...), or None."""
    for line in (report or "").splitlines():
        if line.startswith("Fatal Python error: "):
            words = line.removeprefix("Fatal Python error: ").strip()
            return _FATAL.get(words, words)
    return None


def death_message(report: str | None, header: str, exitcode: int | None = None,
                  detail: str = "") -> str:
    """One paragraph for the FAILED run: what ended the process, where, and how it ran.

    `header` names the trial and its execution options, for when no fault file was left."""
    lines = (report or "").splitlines()
    stall = next((line for line in lines if line.startswith(STALLED)), None)
    name = fatal_signal(report)
    if name is None and exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
    if stall:
        cause = stall
    elif name:
        cause = f"the trial's process died by signal {name}"
    elif exitcode is not None:
        cause = f"the trial's process exited with code {exitcode}"
    else:
        cause = ("the trial's process died (no fatal-signal report: killed by SIGKILL, e.g. by "
                 "the OOM killer, or its node was lost)")
    where = _innermost_frame(lines)
    parts = [cause, lines[0] if lines else header, f"innermost frame: {where}" if where else "",
             detail.strip()]
    return "; ".join(p for p in parts if p)


def _innermost_frame(lines: list[str]) -> str | None:
    """The first frame of the crashing thread in faulthandler's dump (most recent call first)."""
    for i, line in enumerate(lines):
        if line.startswith(("Current thread", "Thread ")) and i + 1 < len(lines):
            return lines[i + 1].strip()
    return None


class Watchdog(threading.Thread):
    """Stops a process whose training makes no progress for max(floor, 50 x typical step).

    The typical step is measured from this trial's own steps, from the first one it sees on;
    until then only the floor applies (the first step also pays for warm-up).
    """

    def __init__(self, fault: FaultFile, floor_seconds: float, beats: Heartbeat = heartbeat,
                 poll_seconds: float = 1.0) -> None:
        super().__init__(daemon=True, name="study-watchdog")
        self.fault, self.floor, self.beats, self.poll = fault, floor_seconds, beats, poll_seconds
        self._stop = threading.Event()
        self.started_at = time.perf_counter()
        self.first_beat = beats.beats  # beats of earlier trials in this process do not count
        self._mark: tuple[int, float] | None = None  # (beats, time) when first seen stepping

    def typical_step(self) -> float | None:
        """Mean seconds per step since the first step seen (evaluations included)."""
        if self._mark is None and self.beats.beats > self.first_beat:
            self._mark = (self.beats.beats, self.beats.last)
        if self._mark is None or self.beats.beats <= self._mark[0]:
            return None
        return (self.beats.last - self._mark[1]) / (self.beats.beats - self._mark[0])

    def limit(self) -> float:
        typical = self.typical_step()
        return max(self.floor, STALL_FACTOR * typical) if typical else self.floor

    def idle(self) -> float:
        last = self.beats.last if self.beats.beats > self.first_beat else None
        return time.perf_counter() - max(last or 0.0, self.started_at)

    def run(self) -> None:
        while not self._stop.wait(self.poll):
            idle, limit = self.idle(), self.limit()
            if idle > limit:
                typical = self.typical_step()
                step = self.beats.step if self.beats.beats > self.first_beat else 0
                self.fault.note(
                    f"{STALLED} no training progress for {idle:.0f} s at step {step} (limit "
                    f"{limit:.0f} s = max({self.floor:g} s, {STALL_FACTOR} x typical step "
                    f"{f'{typical:.3f} s' if typical else 'unknown'})); process stopped")
                os.kill(os.getpid(), signal.SIGKILL)

    def stop(self) -> None:
        self._stop.set()


class Supervised:
    """`with Supervised(path, header, floor):` a fault file and a watchdog around one trial."""

    def __init__(self, path: Path, header: str, floor_seconds: float) -> None:
        self.fault = FaultFile(path, header)
        self.floor = floor_seconds

    def __enter__(self) -> Supervised:
        self.fault.__enter__()
        self.watchdog = Watchdog(self.fault, self.floor)
        self.watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self.watchdog.stop()
        self.fault.__exit__(*exc)

