"""The plan a sweep shows before it starts: trials per stage and arm, steps, estimated time."""

from __future__ import annotations

import time
from collections import Counter

import torch

from study.arms import steps
from study.models import build_model
from study.progress import clock_text
from study.space import Space
from study.specs import TrialSpec

CALIBRATION_STEPS = 30
WARMUP_STEPS = 10
"""Untimed steps first: a process's first steps pay for allocation and kernel selection (on a
fresh install they made the estimate 20x too long)."""


def threads_for(space: Space) -> int:
    """Torch threads of one trial: its CPUs (the same in `run` and `sweep`, so the same numbers)."""
    return max(1, int(space.resources.cpu))


def budget(spec: TrialSpec, flops_ratio: float | None = None) -> int:
    """Training steps a trial takes, by the arms' own rule (`study.arms.steps`); Scratch-B's
    FLOPs ratio is known only once its mask exists: without it, the cap (an upper bound)."""
    total, start = steps(spec, flops_ratio)
    return total - start


def seconds_per_step(spec: TrialSpec, threads: int = 1) -> float:
    """Time training steps of the dense model on random data of the right shape, with a trial's
    torch threads, after a warm-up; the fastest of three timed blocks (a busy machine only ever
    makes a block slower)."""
    info = spec.dense.data.info()
    model = build_model(spec.dense.model.name, info.input_shape, info.num_classes,
                        width=spec.dense.model.width, hidden=spec.dense.model.hidden)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(spec.dense.train.batch_size, *info.input_shape)
    y = torch.randint(0, info.num_classes, (len(x),))

    def steps(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return time.perf_counter() - start

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        steps(WARMUP_STEPS)
        return min(steps(CALIBRATION_STEPS) for _ in range(3)) / CALIBRATION_STEPS
    finally:
        torch.set_num_threads(previous)


def describe(space: Space, trials: list[TrialSpec], done: set[str]) -> str:
    todo = [t for t in trials if t.id not in done]
    by_arm = Counter((t.stage, t.arm) for t in todo)
    steps = sum(budget(t) for t in todo)
    lines = [f"space {space.name}: {len(trials)} trials, {len(trials) - len(todo)} done, "
             f"{len(todo)} to run"]
    lines += [f"  {stage:<6} {arm:<14} {n}" for (stage, arm), n in sorted(by_arm.items())]
    if todo:
        per_model = {}
        for t in todo:
            key = (t.dense.model, t.dense.data.name, t.dense.train.batch_size)
            if key not in per_model:
                per_model[key] = seconds_per_step(t, threads_for(space))
        compute = sum(budget(t) * per_model[(t.dense.model, t.dense.data.name,
                                             t.dense.train.batch_size)] for t in todo)
        lines.append(f"  {steps:,} training steps: {clock_text(compute)} of bare training steps "
                     f"at {space.resources.cpu:g} CPU per trial, timed here; start-up, "
                     "evaluation and records come on top, so the time left is shown once the "
                     "first trials have finished")
    return "\n".join(lines)
