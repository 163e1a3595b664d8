"""Where a pack's time goes, phase by phase: counted as it runs, read by `study bench`.

A pack spends its time in six phases: `fetch` (reading parents' artifacts), `build` (its
arms' nets, masks and schedules), `train` (the stacked steps), `evaluate` (validation and
test passes), `save` (counting the trained nets, serialising and writing artifacts) and
`record` (tracking-store writes). Phases nest (a fetch inside a build, a live curve write
inside an evaluation): the inner phase's time is its own, not the outer one's, so the six add
up to the time spent inside any of them. Two clock reads per phase entry: free beside the work.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

PHASES = ("fetch", "build", "train", "evaluate", "save", "record")


class PhaseClock:
    """Seconds per phase since the last `reset`, each phase's own time (nested ones apart)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._stack: list[list] = []  # [phase, when its current stretch began]

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:  # the outer phase pauses
            outer = self._stack[-1]
            self.seconds[outer[0]] += now - outer[1]
        self._stack.append([phase, now])
        try:
            yield
        finally:
            now = time.perf_counter()
            name, since = self._stack.pop()
            self.seconds[name] += now - since
            if self._stack:  # and resumes
                self._stack[-1][1] = now

    def reset(self) -> dict[str, float]:
        """The seconds counted so far, and a fresh count."""
        seconds, self.seconds = self.seconds, dict.fromkeys(PHASES, 0.0)
        return seconds


clock = PhaseClock()
"""The process's clock: every pack it runs adds to it."""
