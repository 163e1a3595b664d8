"""The new criteria and the weight-agnostic arm inside real trials (tiny MNIST-1D chains), and the
`criteria` search space."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from study.arms import ARM_SETUPS
from study.context import TrialContext
from study.pruning import agnostic
from study.pruning.registry import CRITERIA
from study.space import load_space
from study.specs import DenseSpec, ModelSpec, PruneSpec, TrainSpec, TrialSpec
from study.trial import run_trial

DENSE = DenseSpec(model=ModelSpec(name="mlp", hidden=(32, 32)),
                  train=TrainSpec(lr=0.05, batch_size=100, steps=60, eval_every=30), seed=4)
CASES = [("unstructured", "obd"), ("unstructured", "fisher"), ("unstructured", "taylor"),
         ("structured", "apoz"), ("structured", "taylor")]


class MemoryStore:
    """Upstream artifacts by trial id: the tracking store's role, in memory."""

    def __init__(self) -> None:
        self.artifacts: dict[str, dict] = {}

    def fetch(self, spec: TrialSpec, name: str) -> dict[str, torch.Tensor]:
        return self.artifacts[spec.id][name]

    def run(self, spec: TrialSpec):
        record = run_trial(spec, self.fetch)
        self.artifacts[spec.id] = record.artifacts
        return record


@pytest.fixture(scope="module")
def store() -> MemoryStore:
    store = MemoryStore()
    store.run(TrialSpec(stage="dense", arm="dense", dense=DENSE))
    return store


def plan(granularity: str, criterion: str, schedule: str) -> PruneSpec:
    """Two rounds at 50%; data criteria read 3 batches (the others may not name the field)."""
    few = {"saliency_batches": 3} if CRITERIA[criterion].data else {}
    return PruneSpec(granularity=granularity, criterion=criterion, rate=0.5, rounds=2,
                     schedule=schedule, **few)


def imp(p: PruneSpec, r: int) -> TrialSpec:
    return TrialSpec(stage="imp", arm="lottery", round=r, dense=DENSE, prune=p)


@pytest.mark.parametrize("granularity,criterion", CASES)
@pytest.mark.parametrize("schedule", ["iterative", "oneshot"])
def test_criterion_prunes_in_a_trial_with_nested_masks(store, granularity, criterion, schedule):
    p = plan(granularity, criterion, schedule)
    records = [store.run(imp(p, r)) for r in (1, 2)]
    assert all(r.outcome == "finished" and r.metrics["final_test_acc"] > 0.1 for r in records)
    first, second = (store.fetch(imp(p, r), "mask.pt") for r in (1, 2))
    for name in first:  # one-shot too: every round scores the dense net on the same batches
        assert not (second[name] & ~first[name]).any(), name
    layer = "layers.0" if granularity == "structured" else "layers.0.weight"
    assert second[layer].float().mean() == pytest.approx(0.25, abs=0.01)


def test_schedules_differ_and_a_trial_is_deterministic(store):
    masks = {}
    for schedule in ("iterative", "oneshot"):
        p = plan("unstructured", "fisher", schedule)
        store.run(imp(p, 1))
        masks[schedule] = store.run(imp(p, 2)).artifacts["mask.pt"]["layers.1.weight"]
    assert not torch.equal(masks["iterative"], masks["oneshot"])  # pruned different nets
    again = run_trial(imp(plan("unstructured", "fisher", "oneshot"), 2), store.fetch)
    assert torch.equal(again.artifacts["mask.pt"]["layers.1.weight"], masks["oneshot"])


@pytest.mark.parametrize("granularity,criterion", [("unstructured", "magnitude"),
                                                   ("structured", "l1_filter")])
def test_weight_agnostic_sweeps_w_and_reports_the_validation_choice(store, granularity,
                                                                    criterion):
    p = plan(granularity, criterion, "iterative")
    store.run(imp(p, 1))
    spec = TrialSpec(stage="arm", arm="weight_agnostic", round=1, dense=DENSE, prune=p)
    record = run_trial(spec, store.fetch)
    m, ws = record.metrics, agnostic.SHARED_WEIGHTS
    assert m["train_steps"] == 0 and len(record.curves) == 1
    for signs in agnostic.SIGNS:
        vals = {w: m[agnostic.key(signs, "val", w)] for w in ws}
        assert m[f"wa_{signs}_val_acc"] == max(vals.values())  # chosen on validation
        best = m[f"wa_{signs}_best_w"]
        assert m[f"wa_{signs}_test_acc"] == m[agnostic.key(signs, "test", best)]
        # zero biases at θ0: logits scale as w^depth for w > 0, so every positive w ties
        assert len({vals[w] for w in ws if w > 0}) == 1
    assert m["final_test_acc"] == m["wa_signed_test_acc"] == record.curves[0]["test_acc"]


def test_weight_agnostic_sets_survivors_to_signed_shared_values(store):
    p = plan("unstructured", "magnitude", "iterative")
    store.run(imp(p, 1))
    spec = TrialSpec(stage="arm", arm="weight_agnostic", round=1, dense=DENSE, prune=p)
    ctx = TrialContext(spec, store.fetch)
    setup = ARM_SETUPS["weight_agnostic"](ctx)
    theta0, name = ctx.fetch_dense("init.pt"), "layers.1.weight"
    w, mask = setup.model.state_dict()[name], setup.masks[name]
    alpha, best = theta0[name].std(), setup.metrics["wa_signed_best_w"]
    assert torch.all(w[~mask] == 0)
    expected = torch.sign(theta0[name][mask]) * best * alpha
    torch.testing.assert_close(w[mask], expected)


def test_the_criteria_space_crosses_criteria_schedules_and_datasets_on_shared_dense_nets():
    space, _ = load_space("criteria")
    trials = space.expand()
    plans = {(t.prune.granularity, t.prune.criterion, t.prune.schedule) for t in trials
             if t.prune}
    assert {c for g, c, s in plans if g == "unstructured"} == {
        "magnitude", "magnitude_increase", "random", "obd", "fisher", "taylor"}
    assert {c for g, c, s in plans if g == "structured"} == {"l1_filter", "apoz", "taylor",
                                                              "random"}
    assert len(plans) == 20 and {s for *_, s in plans} == {"iterative", "oneshot"}
    by_arm = Counter((t.stage, t.arm) for t in trials)
    assert by_arm[("dense", "dense")] == 6  # 2 datasets x 3 seeds, shared by all 20 plans
    assert by_arm[("arm", "weight_agnostic")] == by_arm[("imp", "lottery")] == 2 * 20 * 3 * 3
    assert {t.dense.data.name for t in trials} == {"mnist1d", "digits"}
    assert sorted({t.dense.seed for t in trials}) == [0, 1, 2]
    oneshot = [t for t in trials if t.prune and t.prune.schedule == "oneshot"]
    assert all(math.isclose(t.prune.rate, 0.6) or t.prune.granularity == "structured"
               for t in oneshot)


def test_weight_agnostic_choice_breaks_ties_towards_one_and_never_looks_at_test():
    flat = {agnostic.key("signed", "val", w): 0.5 for w in agnostic.SHARED_WEIGHTS}
    assert agnostic._choose(flat, "signed") == 1.0  # all tied: |w| nearest 1, positive
    flat[agnostic.key("signed", "val", -0.1)] = 0.6
    assert agnostic._choose(flat, "signed") == -0.1
    no_val = {k: math.nan for k in flat}  # val_fraction 0: the default w, not the test split
    assert agnostic._choose(no_val, "signed") == 1.0
