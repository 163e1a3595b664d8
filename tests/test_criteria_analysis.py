"""analysis.criteria on a small synthetic tidy frame with planted effects (and absent ones)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.criteria import (
    accuracy_vs_remaining,
    lottery_effect,
    schedule_effect,
    which_criteria,
)

SEEDS = range(4)
NOISE = [0.01, -0.01, 0.004, -0.004]  # mean 0: a planted gap of 0 must not read as an effect
PLANS = [("unstructured", "magnitude"), ("unstructured", "random"), ("structured", "l1_filter")]
LOTTERY_GAP = {"magnitude": 0.05, "random": 0.0, "l1_filter": 0.0}
GRADUAL_GAP = {"magnitude": 0.02, "random": 0.0, "l1_filter": 0.01}


def synthetic() -> pd.DataFrame:
    """The tidy frame `analysis.load.load_runs` makes, for 3 plans x 2 schedules x 3 rounds."""
    rows = []
    base = {"dataset": "mnist1d", "model": "mlp", "width": 1.0, "lr": 0.05, "warmup": 0,
            "scope": "layerwise", "retrain": "rewind", "rewind_step": 0}
    for gran, crit in PLANS:
        for schedule in ("iterative", "oneshot"):
            for seed in SEEDS:
                ticket = f"{crit}-{schedule}-{seed}"
                cond = {**base, "granularity": gran, "criterion": crit, "schedule": schedule,
                        "seed": seed, "ticket": ticket}
                rows.append({**cond, "arm": "dense", "stage": "dense", "round": 0,
                             "remaining_pct": 100.0, "final_test_acc": 0.9})
                for r in (1, 2, 3):
                    reinit = 0.85 - 0.05 * r + (GRADUAL_GAP[crit] if schedule == "iterative"
                                                else 0.0)
                    for arm, acc in (("reinit", reinit),
                                     ("lottery", reinit + LOTTERY_GAP[crit] + NOISE[seed])):
                        rows.append({**cond, "arm": arm, "round": r, "final_test_acc": acc,
                                     "stage": "imp" if arm == "lottery" else "arm",
                                     "remaining_pct": 100 * 0.4**r})
    return pd.DataFrame(rows)


def test_accuracy_figure_has_a_log_reversed_axis_per_granularity():
    fig = accuracy_vs_remaining(synthetic())
    axes = fig.axes[:2]
    assert [ax.get_title() for ax in axes] == ["mnist1d, structured", "mnist1d, unstructured"]
    assert all(ax.get_xscale() == "log" and ax.xaxis_inverted() for ax in axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]  # one legend for all panels
    assert labels == ["l1_filter", "magnitude", "random", "iterative", "oneshot"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["100", "50", "20", "10"]
    with pytest.raises(ValueError, match="supermask"):
        accuracy_vs_remaining(synthetic(), arm="supermask")


def test_lottery_effect_is_a_paired_t_interval_per_criterion_and_level():
    table = lottery_effect(synthetic())
    assert len(table) == 3 * 2 * 3  # criterion x schedule x round
    magnitude = table[table.criterion == "magnitude"]
    assert magnitude.effect.all() and magnitude.effect_holm.all()
    assert magnitude.mean_gap.to_numpy() == pytest.approx(0.05)
    diffs = 0.05 + np.array(NOISE)  # by hand: mean ± t(0.975, 3) · sd / √4
    half = sps.t.ppf(0.975, 3) * diffs.std(ddof=1) / 2
    assert magnitude.t_low.to_numpy() == pytest.approx(0.05 - half)
    assert magnitude.t_high.to_numpy() == pytest.approx(0.05 + half)
    assert not table[table.criterion != "magnitude"].effect.any()


def test_which_criteria_summarises_the_levels_with_an_effect():
    summary = which_criteria(lottery_effect(synthetic())).set_index(["criterion", "schedule"])
    assert summary.loc[("magnitude", "iterative"), "levels_with_effect"] == 3
    assert bool(summary.loc[("magnitude", "oneshot"), "shows_effect"])
    assert summary.loc[("magnitude", "oneshot"), "sparsest_effect_pct"] == pytest.approx(6.4)
    assert not summary.loc["random"].shows_effect.any()
    assert not summary.loc["l1_filter"].shows_effect.any()


def test_schedule_effect_pairs_iterative_and_oneshot_by_seed():
    table = schedule_effect(synthetic()).set_index(["criterion", "round"])
    assert table.loc[("magnitude", 2), "mean_gap"] == pytest.approx(0.02)
    assert table.loc[("magnitude", 2), "n"] == len(SEEDS)
    assert bool(table.loc[("magnitude", 2), "effect"])
    assert not table.loc["random"].effect.any()
    assert (table.p_holm >= table.p).all()



def test_the_pipeline_draws_figure_7_or_says_why_not(tmp_path):
    """A criteria study gets figure 7 through the figure registry; without IMP chains, the
    line saying why it is missing."""
    from analysis.pipeline import Book, _criteria

    book, lines = Book(tmp_path), []
    _criteria(book, synthetic(), "final_test_acc", lines.append)
    assert [p.name for p in book.figures] == ["7_criteria.png", "7_criteria.pdf"]
    no_chain = synthetic().query("arm != 'lottery'")
    book = Book(tmp_path)
    _criteria(book, no_chain, "final_test_acc", lines.append)
    assert not book.figures and book.skipped == lines == [
        "criteria figure (7_criteria) skipped: no IMP chain (lottery runs) to compare the "
        "criteria on"]
