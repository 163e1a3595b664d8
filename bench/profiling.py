"""Profiles behind the ratios: what a slow number is made of, counted rather than guessed.

- `aten_ops`: the torch operators one run dispatches, per training step. Unlike time, the count
  is the same on a busy machine and a quiet one, so it says whether the library's loop does
  more work than the bare loop even where the timing noise hides a 2% difference.
- `cprofiled`: a part of the benchmark under cProfile, its top functions by cumulative time
  written as text (`study bench --profile`).
"""

from __future__ import annotations

import cProfile
import io
import pstats
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from torch.utils._python_dispatch import TorchDispatchMode


class _OpCounter(TorchDispatchMode):
    """Counts every aten operator dispatched below autograd (forward, backward, optimizer)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[f"aten.{func.overloadpacket.__name__}"] += 1
        return func(*args, **(kwargs or {}))


def aten_ops(fn: Callable[[], object], steps: int) -> Counter:
    """{aten operator: calls per step} of one call of `fn` that trains `steps` steps."""
    with _OpCounter() as counter:
        fn()
    return Counter({name: n / steps for name, n in counter.calls.items()})


def op_difference(library: Counter, bare: Counter, top: int = 6) -> dict[str, float]:
    """The operators whose per-step count differs most (positive: the library calls more)."""
    diff = {n: library[n] - bare[n] for n in set(library) | set(bare)
            if abs(library[n] - bare[n]) > 1e-9}
    return dict(sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:top])


def cprofiled(fn: Callable[[], object], path: Path, top: int = 40):
    """Run `fn` under cProfile; write its top functions (cumulative time) to `path`."""
    profiler = cProfile.Profile()
    try:
        return profiler.runcall(fn)
    finally:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.getvalue())
