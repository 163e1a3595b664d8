"""The lecture section of an analysis (fine-tune chains), on a small synthetic store written by
the Tracker.

Planted: every iterative round loses 5 points to its cut and fine-tuning wins them back; a
one-shot cut to round r's sparsity loses 5 + 10·(r-1) points (round 1 is the same cut in both).
After fine-tuning, one cut ends GAP·(r-1) below small steps for unstructured magnitude pruning,
and level with them for structured l1_filter pruning; the seed noise has mean 0, so a gap of 0
must not read as an effect.
"""

from __future__ import annotations

import pytest
from test_analysis_stability import _write

from analysis import lecture
from analysis.load import load_runs
from analysis.pipeline import analyze
from analysis.style import theme
from study.specs import DenseSpec, ModelSpec, PruneSpec, TrainSpec, TrialSpec, same_as_another
from study.tracking import Tracker

SEEDS = (0, 1, 2, 3)
NOISE = (0.002, -0.002, 0.001, -0.001)
ROUNDS = (1, 2, 3)
GAP = {"unstructured": 0.01, "structured": 0.0}
CHAINS = {gran: {s: PruneSpec(granularity=gran, criterion=crit, rate=0.3, rounds=3,
                               retrain="finetune", schedule=s) for s in ("iterative", "oneshot")}
          for gran, crit in (("unstructured", "magnitude"), ("structured", "l1_filter"))}
IMP = PruneSpec(rate=0.3, rounds=3)  # IMP beside the unstructured chains only


def planted(gran: str, schedule: str, r: int, seed: int) -> tuple[float, float]:
    """(accuracy right after the cut, after fine-tuning)."""
    after = 0.85 - 0.01 * r + NOISE[seed]
    if schedule == "oneshot" and r > 1:
        after -= GAP[gran] * (r - 1) + NOISE[(seed + 1) % 4] / 2
        return after - 0.05 - 0.10 * (r - 1), after
    return after - 0.05, after


def _metrics(acc: float, r: int, **extra) -> dict[str, float]:
    return {"final_test_acc": acc, "best_val_acc": acc, "test_acc_at_best_val": acc,
            "early_stop_step": 50, "sparsity": 1 - 0.7 ** r, "nonzero_weights": 500,
            "total_weights": 1000, "train_steps": 60, **extra}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('lecture') / 'mlflow.db'}"
    tracker = Tracker("lecture", uri)
    launch = tracker.start_launch("lecture", '"""A synthetic lecture study."""')
    for seed in SEEDS:
        dense = DenseSpec(model=ModelSpec(hidden=(16, 16)), train=TrainSpec(lr=0.1, steps=60),
                          seed=seed)
        _write(tracker, launch, TrialSpec(stage="dense", arm="dense", dense=dense),
               _metrics(0.86, 0))
        for gran, plans in CHAINS.items():
            for schedule, plan in plans.items():
                for r in ROUNDS:
                    before, after = planted(gran, schedule, r, seed)
                    spec = TrialSpec(stage="imp", arm="finetune", round=r, dense=dense,
                                     prune=plan)
                    _write(tracker, launch, spec, _metrics(after, r, pruned_test_acc=before,
                                                           pruned_val_acc=before))
                    for arm, acc in (("reinit", after - 0.03), ("scratch_b", after - 0.01),
                                     ("small_dense", after - 0.05)):
                        if same_as_another(arm, plan, dense):  # the neuron chain's: reinit's
                            continue
                        spec = TrialSpec(stage="arm", arm=arm, round=r, dense=dense, prune=plan)
                        _write(tracker, launch, spec, _metrics(acc, r))
        for r in ROUNDS:
            for stage, arm, acc in (("imp", "lottery", 0.86), ("arm", "reinit", 0.80)):
                spec = TrialSpec(stage=stage, arm=arm, round=r, dense=dense, prune=IMP)
                _write(tracker, launch, spec, _metrics(acc + NOISE[seed], r))
    tracker.end_launch(launch)
    return uri


@pytest.fixture(scope="module")
def frame(store):
    return load_runs("lecture", store)[0]


def test_damage_and_recovery_per_round_and_schedule(frame):
    table = lecture.damage_recovery(frame).set_index(["granularity", "schedule", "round"])
    assert len(table) == 2 * 2 * 4  # granularity x schedule x (dense + 3 rounds)
    row = table.loc[("unstructured", "oneshot", 3)]
    assert row.n == len(SEEDS)
    assert row.before == pytest.approx(0.85 - 0.03 - 0.02 - 0.05 - 0.20, abs=1e-3)
    assert row.after == pytest.approx(0.85 - 0.03 - 0.02, abs=1e-3)
    assert row.before_low < row.before < row.before_high
    assert row.recovered == pytest.approx(0.25, abs=1e-9)
    it = table.loc[("structured", "iterative")]
    assert it.recovered.tolist() == pytest.approx([0.0, 0.05, 0.05, 0.05])
    assert table.loc[("structured", "iterative", 0)].after == pytest.approx(0.86)
    assert table.loc[("unstructured", "iterative", 2)].remaining_pct == pytest.approx(49.0)


def test_small_steps_beat_one_cut_only_where_planted(frame):
    table = lecture.small_steps(frame).set_index(["granularity", "round"])
    assert len(table) == 2 * 2  # rounds 2 and 3: round 1 is the same cut in both schedules
    for r in ROUNDS[1:]:
        beaten = table.loc[("unstructured", r)]
        assert beaten["mean"] == pytest.approx(0.01 * (r - 1), abs=1e-3)
        assert beaten.verdict == "effect: small steps better", r
        assert beaten.damage_gap == pytest.approx(0.11 * (r - 1), abs=1e-3)
        assert table.loc[("structured", r)].verdict == "no effect detected", r
    assert (table.n == len(SEEDS)).all() and (table.p_holm >= table.p).all()
    lines = lecture.sentences(lecture.small_steps(frame))
    assert lines[0].startswith("structured, l1_filter: small steps beat one cut at 0 of 2")
    assert lines[1].startswith("unstructured, magnitude: small steps beat one cut at 2 of 2 "
                               "sparsities (49%, 34% remaining)")


def test_the_chain_is_drawn_beside_imp_and_training_small(frame):
    theme()
    fig = lecture.versus_remaining(frame)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["unstructured, magnitude", "structured, l1_filter"]
    labels = {ax.get_title(): [ln.get_label() for ln in ax.lines] for ax in fig.axes}
    assert labels["unstructured, magnitude"] == [
        "dense (unpruned)", "lottery (IMP: rewind to θk, retrain)",
        "fine-tuned, small steps (iterative)", "fine-tuned, one cut (one-shot)",
        "Scratch-E on the fine-tune masks", "Scratch-B on the fine-tune masks",
        "small dense (as many weights)"]
    assert "lottery (IMP: rewind to θk, retrain)" not in labels["structured, l1_filter"]
    small_steps = fig.axes[0].lines[2]
    assert list(small_steps.get_ydata()) == pytest.approx([84.0, 83.0, 82.0], abs=0.1)
    damage = lecture.damage_figure(lecture.damage_recovery(frame))
    assert [ax.get_title() for ax in damage.axes] == titles


@pytest.mark.timeout(300)
def test_analyze_writes_the_lecture_section_and_skips_it_without_a_chain(store, tmp_path):
    report = analyze("lecture", tmp_path / "lecture", tracking_uri=store, echo=lambda _: None)
    text = report.read_text()
    for name in ("12_damage_recovery.png", "13_finetune_chain.pdf", "damage_recovery.csv",
                 "small_steps.csv"):
        assert (tmp_path / "lecture" / name).exists(), name
    assert "## Do small steps beat one cut?" in text
    assert "unstructured, magnitude: small steps beat one cut at 2 of 2" in text
    assert "finetune vs scratch_b" in text  # Rethinking's comparison on the chain's masks
    tracker = Tracker("imp_only", store)
    launch = tracker.start_launch("imp_only", '"""IMP alone."""')
    dense = DenseSpec(model=ModelSpec(hidden=(16, 16)), train=TrainSpec(lr=0.1, steps=60))
    _write(tracker, launch, TrialSpec(stage="dense", arm="dense", dense=dense), _metrics(0.9, 0))
    for stage, arm in (("imp", "lottery"), ("arm", "reinit")):
        _write(tracker, launch, TrialSpec(stage=stage, arm=arm, round=1, dense=dense, prune=IMP),
               _metrics(0.85, 1))
    tracker.end_launch(launch)
    plain = analyze("imp_only", tmp_path / "imp", tracking_uri=store, echo=lambda _: None)
    text = plain.read_text()
    assert "Damage and recovery" not in text and "small steps" not in text.lower()
    assert "damage_recovery" not in text and "13_finetune_chain" not in text
    assert not (tmp_path / "imp" / "damage_recovery.csv").exists()
