"""Specs: canonical ids (pinned), and a clear message for every bad value."""

import pytest
from pydantic import ValidationError

from study.specs import DataSpec, DenseSpec, ModelSpec, PruneSpec, TrainSpec, TrialSpec

DENSE = DenseSpec(train=TrainSpec(lr=0.1, steps=1000))
PLAN = PruneSpec(rate=0.2, rounds=3)


def test_ids_are_pinned_so_refactors_cannot_orphan_old_results():
    assert DENSE.id == PINNED["dense"]
    assert TrialSpec(stage="imp", arm="lottery", round=2, dense=DENSE, prune=PLAN).id == \
        PINNED["imp"]


PINNED = {"dense": "6d456071309dba13", "imp": "df05b7e37c4f497b"}


def test_defaults_do_not_enter_the_id():
    explicit = DenseSpec(data=DataSpec(name="mnist1d", val_fraction=0.1),
                         train=TrainSpec(lr=0.1, steps=1000, optimizer="sgd"))
    assert explicit.id == DENSE.id
    assert DenseSpec(train=TrainSpec(lr=0.01, steps=1000)).id != DENSE.id


def test_parents_name_the_upstream_trials():
    arm = TrialSpec(stage="arm", arm="reinit", round=2, dense=DENSE, prune=PLAN)
    dense, imp = arm.parents()
    assert (dense.stage, imp.stage, imp.round) == ("dense", "imp", 2)
    imp1 = TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE, prune=PLAN)
    assert [p.stage for p in imp1.parents()] == ["dense"]
    oneshot = PLAN.model_copy(update={"schedule": "oneshot"})
    imp3 = TrialSpec(stage="imp", arm="lottery", round=3, dense=DENSE, prune=oneshot)
    assert [p.stage for p in imp3.parents()] == ["dense"]
    assert arm.ticket == imp.ticket != dense.ticket


def _message(build) -> str:
    with pytest.raises((ValidationError, ValueError)) as err:
        build()
    return str(err.value)


@pytest.mark.parametrize("build,needles", [
    (lambda: ModelSpec(name="alexnet"), ["model.name", "alexnet", "mlp", "resnet20"]),
    (lambda: DataSpec(name="imagenet"), ["data.name", "imagenet", "mnist1d"]),
    (lambda: PruneSpec(rate=1.5), ["rate", "less than 1"]),
    (lambda: PruneSpec(rate=0.0), ["rate", "greater than 0"]),
    (lambda: PruneSpec(granularity="unstructured", criterion="l1_filter"),
     ["prune.criterion", "l1_filter", "unstructured", "magnitude"]),
    (lambda: PruneSpec(granularity="structured", criterion="magnitude"),
     ["prune.criterion", "structured", "l1_filter"]),
    (lambda: TrainSpec(lr=0.1), ["exactly one of steps or epochs"]),
    (lambda: TrainSpec(lr=0.1, steps=10, milestones=(0.8, 0.2)), ["train.milestones"]),
    (lambda: TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE,
                       prune=PruneSpec(rewind_step=5000)),
     ["prune.rewind_step", "5000", "past the end of training", "1000"]),
    (lambda: TrialSpec(stage="imp", arm="lottery", round=9, dense=DENSE, prune=PLAN),
     ["round", "1..3"]),
    (lambda: TrialSpec(stage="arm", arm="reinit", round=1, dense=DENSE,
                       prune=PruneSpec(granularity="structured", criterion="bn_scale")),
     ["bn_scale", "BatchNorm", "mlp"]),
    (lambda: DenseSpec(model=ModelSpec(name="mlp"), train=TrainSpec(lr=0.1, steps=1, bn_l1=1e-4)),
     ["train.bn_l1", "BatchNorm"]),
    (lambda: ModelSpec(name="vgg16", hidden=(10,)), ["model.hidden", "vgg16"]),
])
def test_each_bad_spec_gets_its_message(build, needles):
    message = _message(build)
    for needle in needles:
        assert needle in message, (needle, message)


def test_epochs_budget_resolves_with_the_training_split():
    dense = DenseSpec(train=TrainSpec(lr=0.1, epochs=2, batch_size=100))
    assert dense.total_steps() == 2 * dense.data.train_size() // 100
