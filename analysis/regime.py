"""The regime map: where the lottery effect lives, as the mean lottery-minus-reinit gap over
learning rate x granularity, with the Holm-adjusted verdicts marked.

Rethinking found the effect only at a small learning rate with unstructured pruning; this is
the one picture that says whether this study agrees. One panel column per IMP round that every
cell has (at most MAX_ROUNDS of them, spread evenly and always including the deepest), one
panel row per value of whatever else the study varies within a granularity (width, rewind
step, scope, ...).
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from analysis.style import describe, facets, rank

MAX_ROUNDS = 4
OTHER = ["dataset", "model", "width", "warmup", "scope", "criterion", "schedule", "retrain",
         "rewind_step"]


def regime_map(verdicts: pd.DataFrame) -> plt.Figure | str:
    """Heatmap per chosen round; '*' marks a Holm-adjusted effect, '?' too few seeds."""
    data = verdicts[verdicts.comparison == "lottery vs reinit"]
    if data.empty:
        return "no matched lottery and reinit runs"
    if data.lr.nunique() * data.granularity.nunique() < 2:
        return "a single learning rate and a single granularity"
    keys = [k for k in OTHER if (data.groupby("granularity")[k].nunique() > 1).any()]
    rows = [(facet, part, chosen_rounds(part)) for facet, part in facets(data, keys)]
    ncols = max(len(r) for _, _, r in rows)
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False,
                             figsize=(3.6 * ncols + 1, 2.6 * len(rows) + 0.6))
    limit = max(float(np.nanmax(np.abs(data["mean"]))) * 100, 0.5)
    for i, (facet, part, rounds) in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(rounds):
                ax.set_axis_off()
                continue
            _heatmap(ax, part[part["round"] == rounds[j]], limit, cbar=j == len(rounds) - 1)
            here = part[part["round"] == rounds[j]].groupby("granularity").remaining_pct.mean()
            left = ", ".join(f"{g} {here[g]:.1f}%" for g in sorted(
                here.index, key=lambda g: rank("granularity", g)))
            head = describe(facet) + ": " if facet else ""
            ax.set_title(f"{head}round {rounds[j]} ({left} left)", fontsize=8)
    fig.suptitle("lottery − reinit test accuracy (pp, mean over seeds); * Holm-adjusted "
                 "p < 0.05, ? fewer than 3 seeds", fontsize=9)
    fig.tight_layout()
    return fig


def chosen_rounds(part: pd.DataFrame) -> list[int]:
    """Rounds present in every (granularity, lr) cell, thinned to MAX_ROUNDS; if no round is
    common, the deepest round overall."""
    sets = [set(g["round"]) for _, g in part.groupby(["granularity", "lr"])]
    common = sorted(set.intersection(*sets))
    if not common:
        return [int(part["round"].max())]
    picks = np.linspace(0, len(common) - 1, min(MAX_ROUNDS, len(common))).round().astype(int)
    return [int(common[k]) for k in sorted(set(picks))]


def cells(part: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gap in pp, annotation text) as granularity x lr tables for one round."""
    gap = part.pivot_table(index="granularity", columns="lr", values="mean") * 100
    gap = gap.loc[sorted(gap.index, key=lambda g: rank("granularity", g))]
    mark = part.assign(mark=np.where(part.verdict.str.startswith("effect"), "*",
                                     np.where(part.verdict == "too few seeds", "?", "")))
    marks = mark.pivot_table(index="granularity", columns="lr", values="mark",
                             aggfunc="first").reindex_like(gap).fillna("")
    text = gap.map(lambda v: "" if np.isnan(v) else f"{v:+.1f}") + marks
    return gap, text


def _heatmap(ax: plt.Axes, part: pd.DataFrame, limit: float, cbar: bool) -> None:
    gap, text = cells(part)
    gap.columns = text.columns = [f"{lr:g}" for lr in gap.columns]
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib retires
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(gap, annot=text.to_numpy(), fmt="", cmap="RdBu_r", vmin=-limit, vmax=limit,
                    center=0, ax=ax, cbar=cbar, linewidths=0.5,
                    cbar_kws={"label": "gap (pp)"} if cbar else None)
    ax.tick_params(axis="y", rotation=0)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("granularity")
