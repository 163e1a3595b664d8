"""A trial's budget and threads: the numbers `study run`, `study sweep` and the plan share."""

from __future__ import annotations

from study.arms import steps
from study.space import Space
from study.specs import TrialSpec


def threads_for(space: Space) -> int:
    """Torch threads of one trial: its CPUs (the same in `run` and `sweep`, so the same numbers)."""
    return max(1, int(space.resources.cpu))


def budget(spec: TrialSpec, flops_ratio: float | None = None) -> int:
    """Training steps a trial takes, by the arms' own rule (`study.arms.steps`); Scratch-B's
    FLOPs ratio is known only once its mask exists: without it, the cap (an upper bound)."""
    total, start = steps(spec, flops_ratio)
    return total - start
