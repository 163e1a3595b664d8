"""What a launch will cost, before it starts: the plan `study sweep` and `study run` print.

The estimate follows how the trials will run: pending trials released in the packs the
scheduler releases (`planned_packs`: `study.pack.next_pack` itself, whole short groups merged
into one pack as a launch merges them), each of a pack's stacked loops (one per `pack_key`)
timed here on the real training loop (`study.train.train_members`, stacked as in a sweep, on
random data of the dataset's shape) at the pack's size, evaluations priced as forward passes
over the validation and test splits, a per-trial cost for set-up and records, and the packs
shared among the slots that run at once. Nets are timed at the dense net's width: pruned
structured rounds and small_dense nets are narrower, so the estimate leans long.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import torch

from study.data.registry import random_splits
from study.execution import Execution
from study.models import build_model
from study.pack import next_pack, pack_key
from study.packing import PackSizes
from study.plan import budget, threads_for
from study.progress import clock_text
from study.space import Space
from study.specs import TrialSpec
from study.train import Member, train_members

CALIBRATION_STEPS = 20
WARMUP_STEPS = 5
"""Untimed steps first: a process's first steps pay for allocation and kernel selection (on a
fresh install they made the estimate 20x too long)."""
TRIAL_OVERHEAD_S = 0.03
"""CPU seconds a trial costs beyond its training steps: building its nets, reading its parents'
artifacts, computing its mask, starting and finishing its run (0.16 before a pack's runs were
written in one transaction each). Measured by `study bench --part efficiency`'s pack profile
(72 quickstart trials: 27 ms a trial of set-up and records on an AMD EPYC family 26, Zen 5)."""
STARTUP_S = 10.0
"""Starting Ray and Tune on this machine, and the first trials' imports."""
EVAL_COST = 1 / 3
"""A forward pass over a batch, as a share of a training step (forward plus backward)."""


@dataclass(frozen=True)
class Estimate:
    trials: int
    packs: int
    steps: int
    training_s: float  # CPU seconds of packed training steps and evaluations
    overhead_s: float  # CPU seconds of per-trial set-up and records
    slots: int  # packs running at once
    wall_s: float


def planned_packs(todo: list[TrialSpec], pack_size: int | PackSizes) -> list[list[TrialSpec]]:
    """The packs a launch of `todo` releases, in order: `pack.next_pack` asked again each time a
    pack has finished, as `study run` asks it (a sweep asks whenever a slot is free, so with
    packs running side by side it may find fewer trials ready). A parent outside `todo` counts
    as done.

    `next_pack` is shown only the trials it could take: the ready ones, and of a group of one
    `pack_key` only its first `most + 1` (a group longer than any pack is never merged whole,
    and a first group is cut to the pack size), so a plan of thousands of trials takes a second.
    """
    sizes = PackSizes.of(pack_size)
    cap = sizes.most(todo) + 1
    order = {t.id: i for i, t in enumerate(todo)}
    done = {p.id for t in todo for p in t.parents()} - set(order)
    waiting = {t.id: sum(p.id not in done for p in t.parents()) for t in todo}
    children: dict[str, list[TrialSpec]] = defaultdict(list)
    for t in todo:
        for p in t.parents():
            children[p.id].append(t)
    ready: dict[str, list[tuple[int, TrialSpec]]] = defaultdict(list)  # key: by launch order

    def becomes_ready(spec: TrialSpec) -> None:
        bisect.insort(ready[pack_key(spec)], (order[spec.id], spec), key=lambda e: e[0])

    for t in todo:
        if not waiting[t.id]:
            becomes_ready(t)
    packs = []
    while ready:
        shown = sorted((e for group in ready.values() for e in group[:cap]), key=lambda e: e[0])
        pack = next_pack([spec for _, spec in shown], done, sizes)
        packs.append(pack)
        done |= {s.id for s in pack}
        for spec in pack:
            group = ready[pack_key(spec)]
            group.remove((order[spec.id], spec))
            if not group:
                del ready[pack_key(spec)]
        for spec in pack:
            for child in children[spec.id]:
                waiting[child.id] -= 1
                if not waiting[child.id]:
                    becomes_ready(child)
    return packs


def estimate(space: Space, todo: list[TrialSpec], pack_size: int | PackSizes, slots: int,
             device: str = "cpu") -> Estimate:
    """Wall time of running `todo` on `slots` packs at a time, in the packs a launch releases
    (`planned_packs`); a pack trains its `pack_key` groups one after the other."""
    packs = planned_packs(todo, pack_size)
    timer = _PackTimer(threads_for(space), device)
    training = 0.0
    for pack in packs:
        loops: dict[str, list[TrialSpec]] = defaultdict(list)
        for spec in pack:
            loops[pack_key(spec)].append(spec)
        for members in loops.values():
            first = members[0]
            step = timer.seconds_per_step(first, len(members))
            steps = budget(first)
            train = first.dense.train
            evals = math.ceil(steps / train.eval_every) if train.eval_every else 0
            eval_batches = 2 * first.dense.data.info().test_size / train.batch_size
            training += step * (steps + EVAL_COST * evals * eval_batches)
    slots = max(1, min(slots, len(packs)))
    overhead = TRIAL_OVERHEAD_S * len(todo)
    wall = STARTUP_S + (training + overhead) / slots if todo else 0.0
    return Estimate(len(todo), len(packs), sum(budget(t) for t in todo), training, overhead,
                    slots, wall)


class _PackTimer:
    """Seconds per step of a pack of k members, per net shape: timed at k = 1 and at the
    largest k asked for, linear in k between (a pack's step is a fixed cost plus k nets'
    arithmetic)."""

    def __init__(self, threads: int, device: str) -> None:
        self.threads, self.device = threads, device
        self.timed: dict[tuple, dict[int, float]] = {}

    def seconds_per_step(self, spec: TrialSpec, k: int) -> float:
        key = (spec.dense.model, spec.dense.data.name, spec.dense.train.batch_size)
        points = self.timed.setdefault(key, {})
        for size in {1, k}:
            if size not in points:
                points[size] = self._time(spec, size)
        if k in points:
            return points[k]
        big = max(points)
        if big < k:  # beyond the largest timed: time this one too
            points[k] = self._time(spec, k)
            return points[k]
        return points[1] + (points[big] - points[1]) * (k - 1) / (big - 1)

    def _time(self, spec: TrialSpec, k: int) -> float:
        """The fastest of two timed blocks (a busy machine only ever makes a block slower)."""
        d = spec.dense
        info = d.data.info()
        data = random_splits(info.input_shape, info.num_classes, 4 * d.train.batch_size,
                             device=self.device)
        train = d.train.model_copy(update={"eval_every": 10**9})  # steps only
        members = [Member(build_model(d.model.name, info.input_shape, info.num_classes,
                                      width=d.model.width, hidden=d.model.hidden,
                                      seed=i).to(self.device), train, i) for i in range(k)]
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            def block(n: int) -> float:
                start = time.perf_counter()
                train_members(members, data, total_steps=n,
                              execution=Execution(device=self.device), stacked=k > 1)
                return time.perf_counter() - start

            block(WARMUP_STEPS)
            return min(block(CALIBRATION_STEPS) for _ in range(2)) / CALIBRATION_STEPS
        finally:
            torch.set_num_threads(previous)


def local_slots(space: Space, max_concurrent: int | None = None) -> int:
    """Packs a local sweep runs at once: this machine's CPUs over a trial's."""
    slots = max(1, int((os.cpu_count() or 1) // max(space.resources.cpu, 0.01)))
    return min(slots, max_concurrent) if max_concurrent else slots


def plan_text(space: Space, trials: list[TrialSpec], done: set[str], pack_size: int | PackSizes,
              slots: int, device: str = "cpu") -> str:
    """The plan: trials per stage and arm, training steps and the estimated wall time."""
    todo = [t for t in trials if t.id not in done]
    by_arm = Counter((t.stage, t.arm) for t in todo)
    lines = [f"space {space.name}: {len(trials)} trials, {len(trials) - len(todo)} done, "
             f"{len(todo)} to run"]
    lines += [f"  {stage:<6} {arm:<14} {n}" for (stage, arm), n in sorted(by_arm.items())]
    if todo:
        e = estimate(space, todo, pack_size, slots, device)
        sizes = PackSizes.of(pack_size).summary(todo)
        lines.append(
            f"  {e.steps:,} training steps in {e.packs} packs {sizes}, {e.slots} at "
            f"a time: about {clock_text(e.wall_s)} (training {clock_text(e.training_s)} and "
            f"set-up and records {clock_text(e.overhead_s)} of CPU time, timed here; the "
            "analysis comes on top)")
    return "\n".join(lines)
