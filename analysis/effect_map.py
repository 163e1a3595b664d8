"""The lottery-effect map over scale: lottery − reinit (paired by seed) over width x weights
remaining, a panel per learning rate and granularity, '*' where the Holm-corrected test over
every cell rejects; and the same gaps against nonzero weights, where widths meet at equal size.

Both figures draw the rows of the verdict table (`analysis.stats.compare`), so a starred cell is
exactly a row whose verdict says "effect"; the Holm family is every cell of the map.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.stats import CONDITION
from analysis.style import count_label, describe, each_panel, plan_by_regime

COMPARISON = "lottery vs reinit"


def cells(verdicts: pd.DataFrame, frame: pd.DataFrame,
          comparison: str = COMPARISON) -> pd.DataFrame:
    """The `comparison` rows (default lottery − reinit) of pruned rounds, with
    `nonzero_weights` (the lottery arm's mean) and `effect` (the Holm-corrected verdict
    favours lottery)."""
    rows = verdicts[(verdicts.comparison == comparison) & (verdicts["round"] > 0)]
    size = frame[frame.arm == "lottery"].groupby(CONDITION, dropna=False).nonzero_weights.mean()
    rows = rows.merge(size.reset_index(), on=CONDITION, how="left")
    return rows.assign(effect=rows.verdict == "effect: lottery better")


def effect_map(data: pd.DataFrame, versus: str = "reinit") -> plt.Figure | str:
    """Heatmaps of the gap lottery − `versus` (pp): rows widths (widest on top), columns IMP
    rounds labelled with the weights remaining; a panel per plan (rows) and lr (columns)."""
    if data.empty:
        return f"no matched lottery and {versus} runs"
    if data.width.nunique() < 2:
        return "only one width"
    rows, cols = plan_by_regime(data)
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False,
                             figsize=(1.2 + 0.75 * data["round"].nunique() * len(cols) + 1.4,
                                      0.9 + 0.42 * data.width.nunique() * len(rows) + 0.6))
    limit = max(float(np.nanmax(np.abs(data["mean"]))) * 100, 0.5)
    for ax, j, plan, regime, panel in each_panel(axes, rows, cols):
        gap, text = grid(panel)
        with warnings.catch_warnings():  # seaborn 0.13 calls a retiring colormap method
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(gap, annot=text.to_numpy(), fmt="", cmap="RdBu_r", vmin=-limit,
                        vmax=limit, center=0, ax=ax, cbar=j == len(cols) - 1,
                        linewidths=0.5, annot_kws={"fontsize": 7},
                        cbar_kws={"label": f"lottery − {versus} (pp)"}
                        if j == len(cols) - 1 else None)
        ax.set_title(describe({**plan, **regime}), fontsize=9)
        ax.set_xlabel("IMP round (weights remaining)")
        ax.set_ylabel("width" if j == 0 else "")
        ax.tick_params(axis="y", rotation=0)
    fig.suptitle(f"lottery − {versus} test accuracy (pp, mean over seeds); * Holm-adjusted "
                 "p < 0.05 over every cell, ? fewer than 3 seeds", fontsize=9)
    fig.tight_layout()
    return fig


def grid(panel: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gap in pp, annotation) as width (descending) x round tables for one panel; a column is
    labelled 'round (mean % remaining)'."""
    gap = panel.pivot_table(index="width", columns="round", values="mean") * 100
    mark = panel.assign(mark=np.where(panel.effect, "*", np.where(
        panel.verdict == "too few seeds", "?", "")))
    marks = mark.pivot_table(index="width", columns="round", values="mark",
                             aggfunc="first").reindex_like(gap).fillna("")
    text = gap.map(lambda v: "" if np.isnan(v) else f"{v:+.1f}") + marks
    left = panel.groupby("round").remaining_pct.mean()
    labels = [f"{r} ({left[r]:.3g}%)" for r in gap.columns]
    gap, text = gap.iloc[::-1], text.iloc[::-1]
    gap.index = text.index = [f"{w:g}" for w in gap.index]
    gap.columns = text.columns = labels
    return gap, text


def effect_vs_weights(data: pd.DataFrame) -> plt.Figure | str:
    """The gap (pp, 95% t interval) against nonzero weights, a line per width: at equal
    nonzero weights, does pruning a wider net give a larger lottery effect? Filled markers:
    Holm-significant cells."""
    if data.empty:
        return "no matched lottery and reinit runs"
    if data.width.nunique() < 2:
        return "only one width"
    rows, cols = plan_by_regime(data)
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharey=True,
                             figsize=(4.4 * len(cols), 3.3 * len(rows)))
    widths = sorted(data.width.unique())
    shades = dict(zip(widths, sns.color_palette("viridis", len(widths))))
    for i, (plan, by_plan) in enumerate(rows):
        for j, (regime, _) in enumerate(cols):
            ax = axes[i][j]
            panel = by_plan.merge(pd.DataFrame([regime]), on=list(regime))
            for width in widths:
                line = panel[panel.width == width].sort_values("nonzero_weights")
                if line.empty:
                    continue
                x, y = line.nonzero_weights, line["mean"] * 100
                ax.plot(x, y, "-", color=shades[width], lw=1.2, label=f"width {width:g}")
                ax.vlines(x, line.t_low * 100, line.t_high * 100, color=shades[width], lw=0.8)
                ax.scatter(x, y, s=22, zorder=3, edgecolors=shades[width],
                           facecolors=[shades[width] if e else "white" for e in line.effect])
            ax.axhline(0, color="0.4", lw=0.8, ls=":")
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(count_label))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("nonzero weights N (count)")
            ax.set_ylabel("lottery − reinit (pp)" if j == 0 else "")
            ax.set_title(describe({**plan, **regime}), fontsize=9)
    axes[0][-1].legend(fontsize=7, frameon=False, title="filled: Holm p < 0.05",
                       title_fontsize=7)
    fig.tight_layout()
    return fig
