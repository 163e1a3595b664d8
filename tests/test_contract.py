"""The tracking contract is one list of names: what recording writes is what analysis reads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis.load import fetch_runs, load_runs
from study import contract
from study.specs import DenseSpec, PruneSpec, TrainSpec, TrialSpec
from study.tracking import CONDITION, Tracker, condition, spec_params, tags_for
from study.trial import TrialRecord

DENSE = DenseSpec(train=TrainSpec(steps=40, eval_every=20), seed=3)
SPECS = [TrialSpec(stage="dense", arm="dense", dense=DENSE),
         TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE,
                   prune=PruneSpec(granularity="structured", criterion="l1_filter", rounds=1))]


@pytest.mark.parametrize("spec", SPECS, ids=["dense", "imp"])
def test_a_trial_run_starts_with_exactly_the_contracts_trial_tags(spec):
    assert set(tags_for(spec)) == {contract.tag(t) for t in contract.TRIAL_TAGS}
    assert set(contract.REQUIRED) - {contract.OUTCOME} <= set(tags_for(spec))


@pytest.mark.parametrize("spec", SPECS, ids=["dense", "imp"])
def test_each_condition_value_is_one_tag_and_one_number(spec):
    """The condition is tags (strings), its numbers metrics too (`contract.NUMBERS`); the spec's
    params leave out what a tag holds: the dense lr is `study.lr` and `lr`, no param."""
    tags, numbers = tags_for(spec), condition(spec)
    assert set(numbers) == set(contract.NUMBERS)
    assert all(numbers[n] == float(tags[contract.tag(n)]) for n in contract.NUMBERS)
    params = {p.key for p in spec_params(spec)}
    assert not params & set(CONDITION.values())
    assert {"dense.train.steps", "dense.train.batch_size"} <= params  # the rest of the spec
    assert (tags[contract.tag("lr")], numbers["lr"]) == ("0.1", 0.1)


@pytest.mark.timeout(120)
def test_what_recording_writes_analysis_reads(store):
    """Two trials recorded by the tracker carry every tag analysis requires and every optional
    one it reads, and load them back as typed rows under the contract's short names."""
    tracker = Tracker("contract", store)
    curves = [{"step": s, "train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.5, "test_acc": 0.5}
              for s in (20, 40)]
    for spec in SPECS:
        run = tracker.start(spec)
        run.finish(TrialRecord("finished", {"final_test_acc": 0.5, "sparsity": 0.0}, curves,
                               params={"trained.widths": "[300, 100]"}))
    runs = fetch_runs("contract", store)
    assert len(runs) == 2
    for r in runs:
        assert set(contract.REQUIRED) <= set(r.data.tags)
        only_some = {contract.DIVERGED_STEP, contract.SKIP_REASON, contract.VARIANT}
        assert set(contract.OPTIONAL) - only_some <= set(r.data.tags)
        assert set(contract.CURVES) <= set(r.data.metrics)
        assert {n: r.data.metrics[n] for n in contract.NUMBERS} == {
            n: float(r.data.tags[contract.tag(n)]) for n in contract.NUMBERS}
        assert "dense.train.lr" not in r.data.params and "dense.train.steps" in r.data.params
    frame, unusable, _ = load_runs("contract", store)
    assert unusable.empty and set(frame.id) == {s.id for s in SPECS}
    short = [t.removeprefix(contract.PREFIX) for t in contract.REQUIRED + contract.OPTIONAL]
    assert set(short) <= set(frame.columns)
    row = frame[frame.stage == "imp"].iloc[0]
    assert (row.criterion, row["round"], row.seed) == ("l1_filter", 1, 3)


def test_the_contract_and_the_reading_side_import_no_torch():
    code = ("import sys, study.contract, analysis.load, analysis.efficiency; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.timeout(120)
def test_an_at_init_ablation_is_read_as_an_arm_of_its_own(store):
    """`study.variant` on a shuffled snip run: analysis reads it as snip+shuffled, beside the
    plain snip run of the same cell (not as a duplicate of it); the description says how the
    mask was chosen."""
    from study.specs import ArmOptions
    from study.words import describe

    plan = PruneSpec(rounds=1)
    plain = TrialSpec(stage="arm", arm="snip", round=1, dense=DENSE, prune=plan)
    shuffled = plain.model_copy(update={"options": ArmOptions(mask_shuffle=True)})
    assert contract.VARIANT not in tags_for(plain)
    assert tags_for(shuffled)[contract.VARIANT] == "shuffled"
    tracker = Tracker("variant", store)
    for spec in (plain, shuffled):
        record = TrialRecord("finished", {"final_test_acc": 0.5, "sparsity": 0.8,
                                          "layer_density.layers.0.weight": 0.25},
                             [], params={"trained.widths": "[300, 100]",
                                         "trained.mask_criterion": "snip, at θ0"})
        tracker.start(spec).finish(record)
        assert "Mask: snip, at θ0; layer densities layers.0.weight 25.0%." in describe(
            spec, record)
    frame, unusable, _ = load_runs("variant", store)
    assert unusable.empty and set(frame.arm) == {"snip", "snip+shuffled"}
