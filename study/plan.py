"""The plan a sweep shows before it starts: trials per stage and arm, steps, estimated time."""

from __future__ import annotations

import time
from collections import Counter

import torch

from study.arms import steps
from study.models import build_model
from study.space import Space
from study.specs import TrialSpec

CALIBRATION_STEPS = 30


def budget(spec: TrialSpec, flops_ratio: float | None = None) -> int:
    """Training steps a trial takes, by the arms' own rule (`study.arms.steps`); Scratch-B's
    FLOPs ratio is known only once its mask exists: without it, the cap (an upper bound)."""
    total, start = steps(spec, flops_ratio)
    return total - start


def seconds_per_step(spec: TrialSpec) -> float:
    """Time a few training steps of the dense model on random data of the right shape."""
    info = spec.dense.data.info()
    model = build_model(spec.dense.model.name, info.input_shape, info.num_classes,
                        width=spec.dense.model.width, hidden=spec.dense.model.hidden)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(spec.dense.train.batch_size, *info.input_shape)
    y = torch.randint(0, info.num_classes, (len(x),))
    start = time.perf_counter()
    for _ in range(CALIBRATION_STEPS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / CALIBRATION_STEPS


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
                per_model[key] = seconds_per_step(t)
        compute = sum(budget(t) * per_model[(t.dense.model, t.dense.data.name,
                                             t.dense.train.batch_size)] for t in todo)
        lines.append(f"  {steps:,} training steps; ~{compute / 60:.1f} CPU-minutes of training "
                     f"(calibrated here, {space.resources.cpu:g} CPU per trial; evaluation and "
                     "recording add to it)")
    return "\n".join(lines)
