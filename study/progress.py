"""What a running launch shows: one live line on a terminal, a plain line per trial otherwise,
and a time estimate that says "unknown" until finished trials give it something to go on.

The estimate is fitted, not guessed: a trial costs a fixed overhead (start, set-up, evaluation,
record) plus a time per training step, both fitted on the trials that have finished here; the
parallelism actually reached (busy trial-seconds per wall second) divides what is left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.text import Text

WARMUP = 3
"""Finished trials before any estimate is shown (the first ones pay for process start-up)."""


def fit(seen: list[tuple[int, float]]) -> tuple[float, float]:
    """(overhead seconds, seconds per step) by least squares on (steps, seconds), both >= 0."""
    n = len(seen)
    mean_x = sum(x for x, _ in seen) / n
    mean_y = sum(y for _, y in seen) / n
    var = sum((x - mean_x) ** 2 for x, _ in seen)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in seen) / var if var else 0.0
    if slope <= 0.0:
        return mean_y, 0.0
    intercept = mean_y - slope * mean_x
    if intercept < 0.0:  # through the origin instead
        return 0.0, sum(x * y for x, y in seen) / sum(x * x for x, _ in seen)
    return intercept, slope


class Estimate:
    """Seconds left of a launch whose trials train `steps` ({trial id: training steps}).

    Trials that started before the first one finished are left out of the fit: they paid for
    starting workers, imports and data loading, which later trials find done."""

    def __init__(self, steps: dict[str, int], clock: Callable[[], float] = time.monotonic,
                 warmup: int = WARMUP) -> None:
        self.left, self.clock, self.warmup = dict(steps), clock, warmup
        self.running: dict[str, float] = {}  # trial id -> start time
        self.seen: list[tuple[int, float]] = []  # (steps, seconds) of finished, warm trials
        self.warm_from: float | None = None  # when the first trial finished
        self.busy = 0.0  # trial-seconds spent since then by trials that have finished

    def started(self, trial_id: str) -> None:
        self.running[trial_id] = self.clock()

    def finished(self, trial_id: str) -> None:
        start = self.running.pop(trial_id, None)
        steps = self.left.pop(trial_id, 0)
        now = self.clock()
        if self.warm_from is None:
            self.warm_from = now
        elif start is not None:
            self.busy += now - max(start, self.warm_from)
            if start >= self.warm_from:
                self.seen.append((steps, now - start))

    def seconds_left(self) -> float | None:
        """None until `warmup` warm trials have finished."""
        if len(self.seen) < self.warmup:
            return None
        now = self.clock()
        overhead, per_step = fit(self.seen)
        busy = self.busy + sum(now - max(t, self.warm_from) for t in self.running.values())
        parallel = max(1.0, busy / max(now - self.warm_from, 1e-9))
        work = sum(overhead + per_step * steps for steps in self.left.values())
        work -= sum(min(now - self.running[i], overhead + per_step * self.left[i])
                    for i in self.running if i in self.left)
        return max(0.0, work) / parallel


def clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else (
        f"{secs}s")


class ProgressLine:
    """Counts, elapsed time and the estimate: redrawn in place on a terminal (rich), printed
    once per finished trial elsewhere (logs, CI, pipes). Messages and failures get their own
    line either way; with no `echo` nothing is shown."""

    def __init__(self, echo: Callable[[str], object] | None = print,
                 live: bool | None = None) -> None:
        self.echo = echo
        self.console = (Console() if echo is not None and (
            sys.stdout.isatty() if live is None else live) else None)
        self.live: Live | None = None
        self.begin({})

    def begin(self, steps: dict[str, int]) -> None:
        """Start counting the trials of `steps` ({trial id: training steps})."""
        self.total, self.estimate = len(steps), Estimate(steps)
        self.done = self.failed = 0
        self.start, self.last = time.monotonic(), "starting"
        if self.console is not None and steps and self.live is None:
            self.live = Live(console=self.console, refresh_per_second=2,
                             get_renderable=lambda: Text(self._text()))  # the clock ticks
            self.live.start()

    def say(self, message: str) -> None:
        if self.console is not None:
            self.console.print(Text(message))
        elif self.echo is not None:
            self.echo(message)

    def started(self, trial_id: str) -> None:
        self.estimate.started(trial_id)
        self._redraw()

    def finished(self, trial_id: str, summary: str, failed: bool = False) -> None:
        self.estimate.finished(trial_id)
        self.done += 1
        self.failed += failed
        self.last = summary
        if self.live is None:
            self.say(self._text())
            return
        if failed:
            self.say(f"failed: {summary}")
        self._redraw()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _redraw(self) -> None:
        if self.live is not None:
            self.live.refresh()

    def _text(self) -> str:
        running = len(self.estimate.running)
        elapsed = time.monotonic() - self.start
        return (f"[{self.done}/{self.total}] running {running}, failed {self.failed}, "
                f"elapsed {clock_text(elapsed)}, left {clock_text(self.estimate.seconds_left())}"
                f" | {self.last}")

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the experiment state
        return {**self.__dict__, "echo": None, "console": None, "live": None}
