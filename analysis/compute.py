"""The bill of each arm: accuracy against the training compute everything it needed cost.

"Prune big is ahead at equal nonzero weights" is half of the question: lottery at round r
descends from r + 1 full trainings of the big net, small_dense trains once. Every trained run
records `cumulative_train_flops` (`study.bill`): its own training and that of everything it
started from. Per lr and plan, each arm's cells (mean over seeds) are placed at their mean
cumulative compute; the Pareto front is the cells no other cell beats at no more compute. At
equal compute, each prune-big cell is compared with the best train-small cell that cost no
more: who is ahead when train-small gets the compute prune-big spent?
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.style import (
    color,
    describe,
    each_panel,
    label,
    legend_above,
    ordered_arms,
    plan_by_regime,
)
from study.contract import PRUNE_BIG, TRAIN_SMALL  # the registry's prune-big, train-small

PANEL = ["dataset", "model", "granularity", "criterion", "scope", "schedule", "retrain",
         "rewind_step", "lr", "warmup"]
COLUMNS = [*PANEL, "arm", "width", "round", "seeds", "compute", "accuracy", "pareto"]


def cells(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """Per panel, arm, width and round: seeds, mean cumulative training FLOPs, mean accuracy
    and whether the cell is on its panel's Pareto front (trained arms with a bill only)."""
    runs = frame[frame.cumulative_train_flops.notna() & (frame.cumulative_train_flops > 0)]
    runs = runs[runs.granularity != "none"]
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    table = (runs.groupby([*PANEL, "arm", "width", "round"], dropna=False, sort=True)
             .agg(seeds=("seed", "nunique"), compute=("cumulative_train_flops", "mean"),
                  accuracy=(metric, "mean")).reset_index())
    table["pareto"] = False
    for _, index in table.groupby(PANEL, dropna=False).groups.items():
        part = table.loc[index].sort_values(["compute", "accuracy"], ascending=[True, False])
        accuracy = part.accuracy.to_numpy()
        best = np.maximum.accumulate(accuracy)  # no cheaper cell is as accurate
        front = np.r_[True, accuracy[1:] > best[:-1]]
        table.loc[part.index[front], "pareto"] = True
    return table[COLUMNS]


def equal_compute(table: pd.DataFrame) -> pd.DataFrame:
    """Per prune-big cell: the best train-small cell of its panel that cost at most as much
    (its arm, width, round, compute and accuracy) and the gap prune-big − train-small."""
    rows = []
    for _, part in table.groupby(PANEL, dropna=False):
        small = part[part.arm.isin(TRAIN_SMALL)]
        for _, big in part[part.arm.isin(PRUNE_BIG) & (part["round"] > 0)].iterrows():
            cheaper = small[small.compute <= big.compute]
            if cheaper.empty:
                continue
            rival = cheaper.loc[cheaper.accuracy.idxmax()]
            rows.append({**{k: big[k] for k in [*PANEL, "arm", "width", "round"]},
                         "compute": big.compute, "accuracy": big.accuracy,
                         "rival": rival.arm, "rival_width": rival.width,
                         "rival_round": rival["round"], "rival_compute": rival.compute,
                         "rival_accuracy": rival.accuracy,
                         "gap": big.accuracy - rival.accuracy})
    return pd.DataFrame(rows)


def sentence(matched: pd.DataFrame, table: pd.DataFrame) -> str | None:
    """At equal compute, per arm of prune-big: how often it is ahead of the best train-small
    cell that cost no more; and which family the Pareto fronts hold."""
    if matched.empty:
        return None
    parts = []
    for arm in ordered_arms(matched.arm.unique()):
        mine = matched[matched.arm == arm]
        ahead = int((mine.gap > 0).sum())
        parts.append(f"{arm} ahead at {ahead} of {len(mine)} cells (median "
                     f"{mine.gap.median() * 100:+.1f} pp)")
    front = table[table.pareto]
    share = front.arm.isin(TRAIN_SMALL).mean() * 100 if len(front) else float("nan")
    return ("At equal training compute (each prune-big cell against the best train-small cell "
            "trained with no more cumulative FLOPs: a small dense net, a mask chosen at θ0 or "
            "sparse training, at any width; means over seeds, no test): " + "; ".join(parts)
            + f". The Pareto fronts of accuracy against cumulative compute are {share:.0f}% "
              "train-small cells [tables equal_compute and compute].")


def figure(table: pd.DataFrame) -> plt.Figure | str:
    """Accuracy against cumulative training FLOPs, a panel per plan (rows) and lr (columns),
    every arm a colour, each width a point per round, the Pareto front as a black line."""
    if table.empty:
        return "no run recorded its training compute"
    rows, cols = plan_by_regime(table)
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharey="row",
                             figsize=(4.2 * len(cols), 3.9 * len(rows)))
    fig.subplots_adjust(hspace=0.45)
    for ax, j, plan, regime, panel in each_panel(axes, rows, cols):
        for arm in ordered_arms(panel.arm.unique()):
            mine = panel[panel.arm == arm]
            ax.scatter(mine.compute, mine.accuracy * 100, s=14, color=color(arm),
                       label=label(arm), alpha=0.85)
        front = panel[panel.pareto].sort_values("compute")
        ax.step(front.compute, front.accuracy * 100, where="post", color="black", lw=1,
                label="Pareto front")
        ax.set_xscale("log")
        ax.set_title(describe({**plan, **regime}), fontsize=9)
        ax.set_xlabel("cumulative training FLOPs (MACs)")
        if j == 0:
            ax.set_ylabel("test accuracy (%)")
    legend_above(fig, axes)
    return fig
