"""The stability section of an analysis, on a small synthetic store written by the Tracker.

Planted: at lr 0.01 every subnetwork is stable and beats reinit by GAP; at lr 0.1 the
barrier falls with the rewind step k and the gap rises as it falls, so stability predicts the
lottery effect (a negative correlation). The dense net's own copies and lines (round 0) ride
along, as a sweep of the `stability` space records them (their copies at k = 0 only, which is
enough to show that two copies of one cell are not taken for duplicates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import stability
from analysis.load import load_runs
from analysis.pipeline import analyze
from study.specs import DenseSpec, ModelSpec, PruneSpec, TrainSpec, TrialSpec
from study.tracking import Tracker
from study.trial import TrialRecord

SEEDS = (0, 1, 2)
KS = (0, 10, 30)
WIDTHS = (1.0,)
GAP = 0.03
NOISE = (0.002, -0.001, -0.001)  # zero-mean over seeds


def planted(lr: float, k: int) -> tuple[float, float]:
    """(barrier, lottery − reinit gap) of the subnetwork at this lr and rewind step."""
    if lr == 0.01:
        return 0.005, GAP
    barrier = {0: 0.15, 10: 0.06, 30: 0.01}[k]
    return barrier, GAP * (1 - barrier / 0.15)


def _metrics(acc: float, **extra) -> dict[str, float]:
    return {"final_test_acc": acc, "best_val_acc": acc, "test_acc_at_best_val": acc,
            "early_stop_step": 50, "sparsity": extra.pop("sparsity", 0.5),
            "nonzero_weights": 500, "total_weights": 1000, "train_steps": 60, **extra}


def _write(tracker: Tracker, launch: str, spec: TrialSpec, metrics: dict[str, float]) -> None:
    tracker.start(spec, parent=launch).finish(TrialRecord("finished", metrics, []))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('stab') / 'mlflow.db'}"
    tracker = Tracker("stab", uri)
    launch = tracker.start_launch("stab", '"""A synthetic stability study."""')
    for lr in (0.01, 0.1):
        for width in WIDTHS:
            for seed in SEEDS:
                dense = DenseSpec(model=ModelSpec(hidden=(16,), width=width),
                                  train=TrainSpec(lr=lr, steps=60), seed=seed)
                spec = TrialSpec(stage="dense", arm="dense", dense=dense)
                _write(tracker, launch, spec, _metrics(0.9, sparsity=0.0))
                for k in KS:
                    plan = PruneSpec(rounds=1, rewind_step=k)
                    barrier, gap = planted(lr, k)
                    for arm, acc in (("lottery", 0.85 + gap + NOISE[seed]),
                                     ("reinit", 0.85 - NOISE[seed] / 2)):
                        stage = "imp" if arm == "lottery" else "arm"
                        spec = TrialSpec(stage=stage, arm=arm, round=1, dense=dense, prune=plan)
                        _write(tracker, launch, spec, _metrics(acc))
                    values = (0.2 * barrier + NOISE[seed] / 4, barrier + NOISE[seed])
                    for round_, value in enumerate(values):
                        line = TrialSpec(stage="arm", arm="interpolation", round=round_,
                                         dense=dense,
                                         prune=plan if round_ else PruneSpec(rewind_step=k))
                        for copy in line.parents() if k == 0 else []:  # enough to test them
                            _write(tracker, launch, copy, _metrics(0.85))
                        _write(tracker, launch, line, _metrics(
                            0.8, barrier_test=value, barrier_val=value,
                            sparsity=0.5 if round_ else 0.0))
    tracker.end_launch(launch)
    return uri


@pytest.mark.timeout(600)
def test_copies_are_not_duplicates_and_the_split_leaves_the_chains_intact(study):
    frame, unusable, _ = load_runs("stab", study)
    assert unusable.empty  # two copies of one cell differ by their noise seed
    rest, lines = stability.split(frame)
    assert not rest.arm.isin(stability.ARMS).any()
    assert len(lines) == 2 * len(WIDTHS) * len(SEEDS) * len(KS) * 2
    copies = frame[frame.arm == "stability"]
    assert len(copies) == 2 * len(SEEDS) * 2 * 2 and copies.noise_seed.nunique() == 2 * len(SEEDS)
    # the dense net appears once per real chain, never for the dense stability's plans
    chains = set(rest.loc[rest.stage != "dense", "ticket"])
    assert set(rest.loc[rest.stage == "dense", "ticket"]) == chains


@pytest.mark.timeout(600)
def test_barrier_table_gap_join_and_correlation(study):
    frame, _, _ = load_runs("stab", study)
    rest, lines = stability.split(frame)
    summary = stability.barrier_vs_k(stability.barriers(lines))
    sub = summary[(summary["round"] == 1) & (summary.lr == 0.1) & (summary.width == 1.0)]
    assert sub.set_index("rewind_step").barrier_test.round(6).to_dict() == {
        0: 0.15, 10: 0.06, 30: 0.01}
    assert (sub.t_low < sub.barrier_test).all() and (sub.barrier_test < sub.t_high).all()
    assert set(summary.loc[summary["round"] == 0, "net"]) == {"dense"}
    joined = stability.with_gap(summary, rest, "final_test_acc")
    assert len(joined) == 2 * len(WIDTHS) * len(KS)  # every subnetwork condition matched
    expected = [planted(r.lr, r.rewind_step)[1] for r in joined.itertuples()]
    assert np.allclose(joined.gap, expected)
    corr = stability.correlation(joined)
    assert corr["n"] == 6 and corr["r"] < corr["high"] < 0
    text = " ".join(stability.sentences(joined, corr))
    assert "Stability predicts the lottery effect in this study" in text


@pytest.mark.timeout(600)
def test_the_report_has_the_stability_figures_tables_and_sentence(study, tmp_path):
    report = analyze("stab", out=tmp_path, tracking_uri=study, echo=lambda _: None)
    text = report.read_text()
    assert "Does stability predict the lottery effect?" in text
    assert "Stability predicts the lottery effect in this study" in text
    for name in ("10_barrier_vs_k.png", "11_barrier_vs_gap.pdf", "stability_barriers.csv",
                 "stability_vs_lottery.csv"):
        assert (tmp_path / name).is_file(), name
    numbers = pd.read_csv(tmp_path / "stability_vs_lottery.csv")
    assert {"barrier_test", "gap", "gap_low", "gap_high", "verdict"} <= set(numbers.columns)
    # stability runs stay out of the lottery figures and verdicts
    assert "interpolation" not in (tmp_path / "verdicts.md").read_text()


def test_too_few_conditions_are_said_so():
    joined = pd.DataFrame({"barrier_test": [0.01, 0.2], "gap": [0.02, 0.0],
                           "verdict": ["effect: lottery better", "no effect detected"]})
    corr = stability.correlation(joined)
    assert np.isnan(corr["r"])
    first, counts = stability.sentences(joined, corr)
    assert "cannot be told" in first and "only 2 condition(s)" in first
    assert counts.startswith("1 of 1 stable subnetworks")
    assert "too few seeds" not in counts
    joined["verdict"] = "too few seeds"
    assert "2 of 2 conditions have too few seeds" in stability.sentences(joined, corr)[1]
