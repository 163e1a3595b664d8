"""A trial in words: one reading of its spec, and every view a person sees printed from it."""

from __future__ import annotations

from study import words
from study.execution import Execution
from study.specs import DenseSpec, PruneSpec, TrainSpec, TrialSpec

DENSE = DenseSpec(train=TrainSpec(steps=40, eval_every=20, lr=0.05), seed=3)
IMP = TrialSpec(stage="imp", arm="lottery", round=2, dense=DENSE,
                prune=PruneSpec(granularity="structured", criterion="l1_filter", rounds=2))


def test_every_view_names_the_trial_the_same_way():
    w = words.words(IMP)
    assert (w.arm, w.round, w.seed, w.where, w.lr, w.width) == (
        "lottery", 2, 3, "structured", "0.05", "1")
    name = words.run_name(IMP)
    assert name == f"lottery-r2-struct-lr0.05-w1-s3-{IMP.id[:6]}"
    assert words.outcome_line(IMP, "finished", 0.51234) == f"{name} finished, test_acc 0.5123"
    assert words.outcome_line(IMP, "blocked: a parent failed") == (
        f"{name} blocked: a parent failed")
    assert words.one_line(IMP) == (f"lottery       round 2 seed 3 structured   lr 0.05 width 1 "
                                   f"({IMP.id})")
    assert words.header(IMP, Execution()) == (
        f"trial {IMP.id} (lottery round 2 seed 3 structured, mlp width 1 lr 0.05), execution "
        "device=cpu channels_last=False compile=False")
    assert words.describe(IMP).startswith(
        f"**lottery**, round 2 of the structured l1_filter ticket (layerwise, iterative, "
        f"`{IMP.ticket}`): mlp at width 1 on mnist1d, dense lr 0.05, seed 3.")


def test_a_dense_trial_reads_dense():
    dense = TrialSpec(stage="dense", arm="dense", dense=DENSE)
    assert words.words(dense).where == "dense"
    assert words.run_name(dense).startswith("dense-r0-dense-lr0.05-w1-s3-")
