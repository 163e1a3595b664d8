"""Packs: trials whose nets train as one stacked model, each still its own trial.

A trial is the unit of identity and record; a pack is the unit of execution. Trials pack
together when one stacked loop can train them: the same data, the same architecture (family and
widths; masks may differ), the TrainSpec fields a loop shares (`study.stacked.SHARED_FIELDS`),
the same budget and start step. Members keep their spec, id, seed, mask, lr and record; the
pack is recorded only as tags (`study.pack`, `study.pack_size`). Packing changes speed, not the
experiment, so it is not part of any id.

Grouping happens twice: `pack_key` predicts, from the specs alone, which pending trials will fit
one loop (the scheduler needs that before any artifact exists); `run_pack` then sets the trials
up and groups them by their exact shapes, so a wrong prediction costs speed, never correctness.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from study.arm_registry import REGISTRY
from study.arms import steps
from study.context import Fetch
from study.contract import PACK, PACK_SIZE, SKIP_REASON
from study.errors import ArtifactError, UpstreamFailed, UpstreamNotReady
from study.execution import Execution
from study.phases import clock
from study.plan import budget
from study.specs import TrialSpec
from study.stacked import SHARED_FIELDS
from study.train import Checkpointer, train_members
from study.trial import Prepared, TrialRecord, finish, prepare, untrained_result

OnEval = Callable[[TrialSpec], Callable[[dict[str, float]], None] | None]


def pack_key(spec: TrialSpec) -> str:
    """Trials with equal keys are predicted to fit one stacked loop (from the specs alone)."""
    d, rule = spec.dense, REGISTRY[spec.arm].pack  # the arm's pack rule (`arm_registry.Pack`)
    if rule == "alone":  # evaluated, never trained: alone (as `exact_key` runs them)
        return f"untrained:{spec.id}"
    shape: object = d.model.canonical()
    if rule == "mask_widths" or (spec.prune and spec.prune.granularity == "structured"):
        # widths follow from the round's mask: predicted equal for the same plan and round
        shape = [shape, rule == "mask_widths", spec.prune.canonical(), spec.round]
    total, start = steps(spec)  # the arms' own budget rule (Scratch-B: at its cap)
    if rule == "mask_budget":  # its budget follows its mask's FLOPs
        shape = [shape, spec.arm, spec.prune.canonical(), spec.round]
    shared = {f: getattr(d.train, f) for f in SHARED_FIELDS}
    if not spec.trains_with_bn_l1:  # Network Slimming's penalty only where the protocol has it
        shared["bn_l1"] = 0.0
    return json.dumps([d.data.canonical(), shape, shared, total, start], sort_keys=True)


_PREDICTED: dict[str, tuple[str, int, tuple[str, ...]]] = {}
"""Trial id: its `pack_key`, `budget` and parent ids, all functions of the spec alone, worked
out once: `next_pack` reads those of every pending trial at every call, and the plan of a
launch (`study.estimate.planned_packs`) calls it once per pack over thousands of trials."""


def _predicted(spec: TrialSpec) -> tuple[str, int, tuple[str, ...]]:
    if (found := _PREDICTED.get(spec.id)) is None:
        found = (pack_key(spec), budget(spec), tuple(p.id for p in spec.parents()))
        _PREDICTED[spec.id] = found
    return found


SHORT_STEPS = 600
"""Training steps per pack slot under which a pack takes further groups: a full pack of 600-step
MLP trials lasts a few seconds on a CPU core, about as long as a Ray worker takes to start."""


def next_pack(pending: list[TrialSpec], done: set[str],
              size: int | Callable[[TrialSpec], int]) -> list[TrialSpec]:
    """Up to `size` ready trials (parents done; `size` may be a function of the first ready
    trial: `study.packing.PackSizes`), in order: the first ready trial and up to
    `size` - 1 more with its key; then, while the pack is short (at most `size` x
    `SHORT_STEPS` member-steps in all), further whole groups of ready trials of other keys
    that fit; [] when none is ready. `run_pack` trains each group as its own stacked loop, one
    after the other. A group of a few short trials (a fine-tune round, a round's arms over 5
    seeds) lasts a second or two alone, less than a Ray worker takes to start: released one by
    one they kept a 2-core sweep on one core (see `study.sweep.make_trainable`). A long group
    never takes a short one along, whose children would wait for it."""
    groups: dict[str, list[TrialSpec]] = {}
    work: dict[str, int] = {}  # a group's member-steps
    for spec in pending:
        key, steps, parents = _predicted(spec)
        if all(p in done for p in parents):
            groups.setdefault(key, []).append(spec)
            work[key] = work.get(key, 0) + steps
    if not groups:
        return []
    (_, first), *others = groups.items()
    size = size(first[0]) if callable(size) else size
    pack = first[:size]
    total = sum(_predicted(s)[1] for s in pack)
    for key, group in others:
        if len(pack) + len(group) <= size and total + work[key] <= size * SHORT_STEPS:
            pack, total = pack + group, total + work[key]
    return pack


def pack_id(specs: list[TrialSpec]) -> str:
    return hashlib.sha256(",".join(sorted(s.id for s in specs)).encode()).hexdigest()[:12]


class _Scoped(Checkpointer):
    """The one checkpoint slot of a released pack, shared by the groups it trains in turn:
    each group loads only a checkpoint its own members wrote."""

    def __init__(self, inner: Checkpointer, ids: list[str]) -> None:
        super().__init__()
        self.inner, self.ids = inner, ids

    def due(self, step: int) -> bool:
        return self.inner.due(step)

    def load(self) -> dict | None:
        saved = self.inner.load()
        return saved if saved is not None and saved.get("ids") == self.ids else None

    def save(self, state: dict) -> None:
        self.inner.save({**state, "ids": self.ids})


def exact_key(prepared: Prepared) -> tuple:
    """What one stacked loop needs equal, read from the set-up nets themselves."""
    setup, spec = prepared.setup, prepared.train_spec
    return (type(setup.model).__name__,
            tuple(tuple(p.shape) for p in setup.model.parameters()),
            prepared.spec.dense.data.canonical_json(),
            tuple(getattr(spec, f) for f in SHARED_FIELDS),
            setup.total_steps, setup.start_step, setup.trains or prepared.spec.id)


def run_pack(specs: list[TrialSpec], fetch: Fetch, execution: Execution | None = None,
             checkpointer: Checkpointer | None = None, on_eval: OnEval | None = None,
             stacked: bool = True) -> dict[str, TrialRecord | Exception]:
    """Set up, train and count every trial of a pack; {id: its record, or the error that
    failed it}. A trial whose upstream artifact is bad or missing fails alone; one whose
    parent diverged or was skipped is recorded skipped. `stacked=False` trains each member as
    a plain module (a pack of one: today's loop exactly)."""
    execution = execution or Execution()
    out: dict[str, TrialRecord | Exception] = {}
    groups: dict[tuple, list[Prepared]] = {}
    for spec in specs:
        try:
            with clock("build"):
                prepared = prepare(spec, fetch, execution)
        except UpstreamFailed as err:
            out[spec.id] = TrialRecord("skipped", {}, [],
                                       tags={SKIP_REASON: str(err)[:500]})
            continue
        except (ArtifactError, UpstreamNotReady) as err:
            out[spec.id] = err
            continue
        groups.setdefault(exact_key(prepared), []).append(prepared)
    for group in groups.values():
        ids = [p.spec.id for p in group]
        tags = {PACK: pack_id([p.spec for p in group]), PACK_SIZE: str(len(group))}
        first = group[0]
        if not first.setup.trains:
            with clock("evaluate"):
                results = [untrained_result(first)]
        else:
            scoped = _Scoped(checkpointer, ids) if checkpointer is not None else None
            members = [p.member(on_eval(p.spec) if on_eval else None) for p in group]
            with clock("train"):
                results = train_members(members, first.ctx.data,
                                        total_steps=first.setup.total_steps,
                                        start_step=first.setup.start_step,
                                        checkpointer=scoped, execution=execution,
                                        stacked=stacked)
        with clock("save"):
            for prepared, result in zip(group, results):
                out[prepared.spec.id] = finish(prepared, result, execution, tags)
    return {s.id: out[s.id] for s in specs}
