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
    (lambda: TrialSpec(stage="arm", arm="supermask", round=1, dense=DENSE,
                       prune=PruneSpec(granularity="structured", criterion="l1_filter")),
     ["arms", "supermask", "structured", "large_final_same_sign", "unstructured"]),
])
def test_each_bad_spec_gets_its_message(build, needles):
    message = _message(build)
    for needle in needles:
        assert needle in message, (needle, message)


def test_epochs_budget_resolves_with_the_training_split():
    dense = DenseSpec(train=TrainSpec(lr=0.1, epochs=2, batch_size=100))
    assert dense.total_steps() == 2 * dense.data.train_size() // 100


def test_ids_change_exactly_where_the_fair_arms_fixes_change_a_computation():
    """A content-addressed store must not serve a result computed the old way: the specs whose
    computation the fixes changed carry `revision` in their id, and no other id moves."""
    arm = lambda name, **kw: TrialSpec(stage="arm", arm=name, round=2, dense=DENSE,  # noqa: E731
                                       prune=PLAN, **kw)
    assert "revision" not in arm("reinit").canonical()
    assert arm("finetune").canonical()["revision"] == 1  # constant lr: the lr rule changed
    assert arm("finetune").id != arm("finetune").model_copy(update={"round": 1}).id
    step = DenseSpec(train=TrainSpec(lr=0.1, steps=1000, schedule="cosine"))
    first = TrialSpec(stage="arm", arm="finetune", round=1, dense=step, prune=PLAN)
    assert first.canonical()["revision"] == 2  # cosine: lr x 0.01 became lr x 0.146
    rethinking = DenseSpec(train=TrainSpec(lr=0.1, steps=1000, schedule="step"))
    last = TrialSpec(stage="arm", arm="finetune", round=1, dense=rethinking, prune=PLAN)
    assert last.canonical()["revision"] == 1  # step: the last lr, as in revision 1
    vgg = DenseSpec(model=ModelSpec(name="vgg11"), train=TrainSpec(lr=0.1, steps=1000))
    imp = TrialSpec(stage="imp", arm="lottery", round=1, dense=vgg, prune=PLAN)
    assert imp.canonical()["dense"]["revision"] == 1  # a new θ0 reaches every descendant
    slim = DenseSpec(model=ModelSpec(name="vgg11"),
                     train=TrainSpec(lr=0.1, steps=1000, bn_l1=1e-4))
    structured = PruneSpec(granularity="structured", criterion="bn_scale", rounds=2)
    for stage, arm_, expected in (("imp", "lottery", None), ("arm", "reinit", 1)):
        spec = TrialSpec(stage=stage, arm=arm_, round=2, dense=slim, prune=structured)
        assert spec.canonical().get("revision") == expected, arm_
    assert PruneSpec(scope="global", output_rate=0.1).canonical()["revision"] == 1
    assert "revision" not in PruneSpec(scope="global").canonical()  # one pool, as before


def test_a_copied_spec_has_its_own_id_and_parents():
    """Ids and parents are cached on the instance; a copy with other fields must not keep the
    original's (pydantic's model_copy copies the instance dict)."""
    dense = DenseSpec(train=TrainSpec(steps=10))
    spec = TrialSpec(stage="imp", arm="lottery", round=2, dense=dense, prune=PruneSpec(rounds=2))
    assert spec.id and spec.parents()  # cached now
    other = spec.model_copy(update={"dense": dense.model_copy(update={"seed": 5})})
    rebuilt = TrialSpec(**other.model_dump())
    assert other.id == rebuilt.id != spec.id
    assert [p.id for p in other.parents()] == [p.id for p in rebuilt.parents()]
