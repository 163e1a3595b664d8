"""The progress line and its time estimate: unknown before any evidence, fitted after."""

from __future__ import annotations

import pytest

from study.progress import Estimate, ProgressLine, clock_text, fit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fit_recovers_overhead_and_time_per_step():
    seen = [(steps, 2.0 + 0.001 * steps) for steps in (0, 375, 1500, 3000)]
    overhead, per_step = fit(seen)
    assert overhead == pytest.approx(2.0) and per_step == pytest.approx(0.001)
    assert fit([(100, 1.0), (100, 3.0)]) == (2.0, 0.0)  # equal budgets: a mean per trial


@pytest.mark.parametrize("startup", [0.0, 30.0])
def test_estimate_is_unknown_until_warm_then_within_2x_for_a_two_slot_sweep(startup):
    """The first trial in each slot pays `startup` (worker start, imports, data): it must not
    make the estimate of the rest several times too long."""
    clock = Clock()
    steps = {f"t{i}": 1000 * (1 + i % 2) for i in range(20)}  # 1000 or 2000 steps
    cost = {t: 1.0 + 0.002 * s + (startup if t in ("t0", "t1") else 0.0)
            for t, s in steps.items()}  # 3 s or 5 s each
    estimate = Estimate(steps, clock=clock)
    slots = [0.0, 0.0]  # two trials at a time, each slot busy until its time
    events = []
    for t in steps:
        slot = min(range(2), key=lambda i: slots[i])
        events.append((slots[slot], "start", t))
        slots[slot] += cost[t]
        events.append((slots[slot], "end", t))
    end = max(slots)
    checked = 0
    for when, kind, t in sorted(events, key=lambda e: (e[0], e[1] == "start")):
        clock.now = when
        if kind == "start":
            estimate.started(t)
        else:
            estimate.finished(t)
            left = estimate.seconds_left()
            if len(estimate.seen) < 3:
                assert left is None
            elif estimate.left:
                assert 0.5 * (end - when) <= left <= 2.0 * (end - when)
                checked += 1
    assert checked > 10 and estimate.seconds_left() == 0.0


def test_plain_lines_when_not_a_terminal_name_counts_and_say_unknown_before_warmup():
    lines = []
    line = ProgressLine(lines.append, live=False)
    line.begin({"a": 10, "b": 10})
    line.started("a")
    line.finished("a", "dense r0 finished test_acc 0.6")
    assert lines == [lines[0]] and lines[0].startswith("[1/2] running 0, failed 0")
    assert "left unknown" in lines[0] and lines[0].endswith("dense r0 finished test_acc 0.6")
    line.close()


def test_clock_text():
    assert [clock_text(s) for s in (None, 5, 65, 3725)] == ["unknown", "5s", "1m05s", "1h02m"]
