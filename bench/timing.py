"""Side-by-side timing: every number the benchmark reports is a ratio of two things timed in turn.

On a machine shared with other work, absolute times drift by tens of percent within a minute;
a ratio of runs timed back to back does not. `interleaved` runs the cases A, B, A, B, ...
(alternating which goes first, so neither always gets the warmer cache or the quieter moment),
and `paired_ratio` takes the median of the per-round ratios.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch

Case = Callable[[], object]
Times = dict[str, dict[str, list[float]]]
"""{case name: {"wall": [seconds per round], "cpu": [process CPU seconds per round]}}."""


def timed(fn: Case) -> tuple[float, float]:
    """(wall, CPU) seconds of one call of `fn`, garbage collector paused (as `timeit` does;
    no full collection first: with torch loaded one takes a quarter of a second).

    CPU time counts only the cycles this process got: on a machine shared with other jobs a
    descheduled moment inflates the wall time of one run by up to 3x, its CPU time hardly.
    """
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()


def interleaved(names: list[str], reps: int, make: Callable[[str], Case]) -> Times:
    """Time each named case `reps` times, round-robin, reversing the order every other round.

    `make(name)` builds the case's callable each round (a fresh model copy, say), outside the
    timed region; pass `cases.__getitem__` to reuse ready callables.
    """
    out: Times = {n: {"wall": [], "cpu": []} for n in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            fn = make(name)
            wall, cpu = timed(fn)
            out[name]["wall"].append(wall)
            out[name]["cpu"].append(cpu)
    return out


def race(names: list[str], steps: int, reps: int,
         make: Callable[[str, int], Case]) -> tuple[dict[str, float], Times]:
    """The one way the benchmark times training loops against each other.

    `make(name, steps)` builds loop `name` for `steps` steps. Each loop's first call (one step:
    imports, allocations, kernel choice) is timed on its own and returned as wall seconds,
    then `interleaved` times `reps` rounds of every loop at `steps`.
    """
    first = {name: timed(make(name, 1))[0] for name in names}
    return first, interleaved(names, reps, lambda name: make(name, steps))


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator[i] / denominator[i] (times from the same round)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def ratio_interval(numerator: list[float], denominator: list[float], level: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of `paired_ratio`: how far the machine's noise moves the median."""
    ratios = torch.tensor([a / b for a, b in zip(numerator, denominator)], dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(ratios), (resamples, len(ratios)), generator=gen)
    medians = ratios[picks].median(dim=1).values
    tail = (1.0 - level) / 2
    return float(medians.quantile(tail)), float(medians.quantile(1.0 - tail))


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` intra-op threads, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_average() -> float | None:
    """The 1-minute load average (how busy the shared machine was), where the OS reports it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
