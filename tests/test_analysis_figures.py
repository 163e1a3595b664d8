"""The figures hold the data they claim: one line per arm with a point per round, bars per arm
and round, a heatmap cell per lr x granularity with its mark, fits that recover the planted
power laws, and a reason instead of an empty plot when the data is missing."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from test_analysis_store import EFFECT_LR, LRS, PLANS, ROUNDS, SMALL, arms_of
from test_analysis_store import synthetic_store as store

from analysis import figures, regime, rethinking, scaling
from analysis.load import load_curves, load_runs
from analysis.stats import all_comparisons
from analysis.style import COLORS, LABELS


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    uri, _ = store(tmp_path_factory)
    frame, _, _ = load_runs("synthetic", uri)
    yield uri, frame
    plt.close("all")


def width_one(frame):
    return dict(figures.nets(frame))["_mnist1d_mlp_1"]


def labelled(ax) -> dict[str, object]:
    return {ln.get_label(): ln for ln in ax.lines if not ln.get_label().startswith("_")}


def test_every_arm_has_a_fixed_colour_and_a_science_name():
    assert len(set(COLORS.values())) == len(COLORS) == len(LABELS)
    assert LABELS["reinit"].startswith("reinit") and LABELS["scratch_b"] == "Scratch-B"


def test_accuracy_figure_has_a_line_per_arm_and_a_point_per_round(study):
    _, frame = study
    part = width_one(frame)
    fig = figures.accuracy_vs_remaining(part)
    assert len(fig.axes) == len(PLANS) * len(LRS)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"{g}, {PLANS[g][0]}, lr {lr:g}" for g in PLANS for lr in LRS]
    for ax, (gran, lr) in zip(fig.axes, [(g, lr) for g in PLANS for lr in LRS]):
        lines = labelled(ax)
        arms = arms_of(1.0, gran)
        assert set(lines) == {LABELS[a] for a in ["dense", *arms]}
        assert figures.points(ax) == {**{LABELS[a]: len(ROUNDS) for a in arms},
                                      LABELS["dense"]: 2}  # dense: a horizontal reference
        assert len(ax.collections) == len(arms)  # a 95% band per arm
        assert ax.get_xscale() == "log" and ax.xaxis_inverted()
        lottery = lines[LABELS["lottery"]]
        runs = part[(part.arm == "lottery") & (part.granularity == gran) & (part.lr == lr)]
        by_round = runs.groupby("round")
        assert lottery.get_xdata() == pytest.approx(by_round.remaining_pct.mean().to_numpy())
        assert lottery.get_ydata() == pytest.approx(by_round.final_test_acc.mean() * 100)
        assert lottery.get_color() == pytest.approx(COLORS["lottery"])


def test_early_stop_figure_uses_the_early_stop_step(study):
    _, frame = study
    fig = figures.early_stop_vs_remaining(width_one(frame))
    lottery = labelled(fig.axes[0])[LABELS["lottery"]]
    assert lottery.get_ydata() == pytest.approx([400 + 50 * r for r in ROUNDS])
    assert fig.axes[0].get_ylabel() == "early-stop step (iterations)"


def test_rethinking_bars_per_round_and_arm(study):
    _, frame = study
    fig = rethinking.figure(frame)
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == len(PLANS) * len(LRS)  # width 2.0 ran no fine-tuning
    for ax in panels:
        assert len(ax.patches) == len(ROUNDS) * len(rethinking.ARMS)
    table = rethinking.table(frame)
    assert len(table) == len(PLANS) * len(LRS) * len(ROUNDS)
    assert (table["unpruned count"] == 5).all() and (table["Scratch-B count"] == 5).all()
    unpruned = frame[(frame.arm == "dense") & (frame.width == 1.0)].drop_duplicates("run_id")
    assert table["unpruned mean"].iloc[0] == pytest.approx(
        unpruned[unpruned.lr == table.lr.iloc[0]].final_test_acc.mean() * 100)
    assert "±" in rethinking.display(table)["Scratch-E"].iloc[0]
    assert isinstance(rethinking.figure(frame[frame.arm != "finetune"]), str)


def test_regime_map_marks_the_planted_effect(study):
    _, frame = study
    verdicts = all_comparisons(frame)
    fig = regime.regime_map(verdicts)
    maps = [ax for ax in fig.axes if ax.texts]
    assert len(maps) == len(ROUNDS)  # reinit ran at one width: one row of panels
    for ax, rnd in zip(maps, ROUNDS):
        assert f"round {rnd} (" in ax.get_title()
        texts = [t.get_text() for t in ax.texts]
        assert len(texts) == len(PLANS) * len(LRS)
        assert sum(t.endswith("*") for t in texts) == len(PLANS)  # lr 0.01 column only
        assert {t for t in texts if t.endswith("*")} == {"+3.0*"}
    gap, marks = regime.cells(verdicts[(verdicts.comparison == "lottery vs reinit")
                                       & (verdicts["round"] == 1)])
    assert list(gap.index) == list(PLANS) and list(gap.columns) == list(LRS)
    assert (marks[EFFECT_LR].str.endswith("*")).all()
    single = verdicts[verdicts.lr == EFFECT_LR]
    assert isinstance(regime.regime_map(single[single.granularity == "structured"]), str)


def test_scaling_figure_draws_each_family_across_widths(study):
    _, frame = study
    fits, small = scaling.law_fits(frame), scaling.dense_fits(frame)
    cross = scaling.crossings(frame, resamples=20)
    fig = scaling.figure(frame, fits, small, cross)
    assert len([ax for ax in fig.axes if ax.lines]) == 1  # only unstructured lr 0.1 has 2 widths
    ax = fig.axes[0]
    points = {c.get_label(): c.lines[0] for c in ax.containers}  # means with 95% bars
    assert set(points) == {"lottery, width 1", "lottery, width 2", LABELS["small_dense"]}
    assert len(points["lottery, width 2"].get_xdata()) == len(ROUNDS)
    assert any(name.startswith("small dense: err = ") for name in labelled(ax))
    by = small.set_index("arm")
    assert by.loc["small_dense", "b"] == pytest.approx(SMALL[1], abs=0.03)  # a pure power law
    assert by.loc["small_dense", "c"] == pytest.approx(0.0, abs=0.01)
    assert set(fits.arm) == {"lottery"} and np.isnan(fits.extrapolation_mean_abs).all()
    assert "dense" not in set(small.arm)  # two dense widths: too few sizes for a 3-constant law


def test_scaling_is_skipped_with_one_width(study):
    _, frame = study
    one = frame[frame.width == 1.0]
    assert scaling.figure(one, scaling.law_fits(one), scaling.dense_fits(one),
                          scaling.crossings(one)) == "only one width (1)"
    assert scaling.law_fits(one).empty and scaling.crossings(one).empty


def test_training_curves_of_matched_arms(study):
    uri, frame = study
    runs = figures.pick_curve_runs(frame)
    assert runs.ticket.nunique() == 1 and runs.seed.nunique() == 1
    assert set(runs["round"]) == {0, max(ROUNDS)}
    curves = load_curves(uri, list(runs.run_id), ("val_acc",))
    fig = figures.training_curves(curves, runs)
    lines = labelled(fig.axes[0])
    assert set(lines) == {LABELS[a] for a in ["dense", *arms_of(1.0, runs.granularity.iloc[0])]}
    assert all(len(line.get_xdata()) == 3 for line in lines.values())
    assert isinstance(figures.training_curves(curves.iloc[0:0], runs), str)
