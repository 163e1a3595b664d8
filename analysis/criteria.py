"""The `criteria` study: accuracy vs remaining weights per criterion, where the lottery effect
appears per criterion, and whether gradual pruning beats one-shot.

Input is the tidy runs frame of `analysis.load.load_runs` (one row per run: arm, criterion,
granularity, schedule, round, seed, ticket, remaining_pct, final_test_acc, ...); statistics are
`analysis.stats`'s paired t intervals and Holm correction, so every table here reads like the
main report's. Every function returns a Figure or a DataFrame and writes nothing.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from analysis.stats import ALPHA, CONDITION, MIN_SEEDS, compare, holm, t_interval  # noqa: E402

CELL = CONDITION  # dataset, model, width, lr, warmup, granularity, scope, criterion, schedule,
# rewind_step, round: a table row never pools two of these


def _panels(frame: pd.DataFrame):
    rows = sorted(frame["dataset"].dropna().unique())
    cols = sorted(frame["granularity"].dropna().unique())
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharey=True,
                             figsize=(4.6 * len(cols), 3.4 * len(rows)))
    return fig, axes, rows, cols


def accuracy_vs_remaining(frame: pd.DataFrame, arm: str = "lottery",
                          metric: str = "final_test_acc") -> plt.Figure:
    """One panel per dataset x granularity: `arm`'s accuracy (mean and 95% band over seeds) vs
    the percentage of weights remaining, log x reversed (sparser to the right, as in LTH), one
    colour per criterion, solid iterative / dashed one-shot; the dense net starts each curve."""
    rows = frame[frame.arm.isin([arm, "dense"]) & frame.granularity.isin(
        ["unstructured", "structured"])].copy()
    if not (rows.arm == arm).any():
        raise ValueError(f"no {arm!r} runs with a granularity in the frame")
    rows["accuracy (%)"] = 100.0 * rows[metric].astype(float)

    def axis(ax: plt.Axes) -> None:
        _percent_axis(ax, rows.remaining_pct)
        ax.set_xlabel("weights remaining (%)")

    return _criterion_lines(rows, "remaining_pct", "schedule",
                            {"iterative": "", "oneshot": (4, 2)}, axis,
                            f"{arm}: accuracy vs weights remaining, by pruning criterion")


def _criterion_lines(rows: pd.DataFrame, x: str, style: str, dashes: dict, axis,
                     title: str) -> plt.Figure:
    """One panel per dataset x granularity, "accuracy (%)" against `x`: a colour per criterion,
    `style` drawn with `dashes`, mean and 95% band over seeds; `axis(ax)` sets each x axis."""
    fig, axes, datasets, grans = _panels(rows)
    criteria = sorted(rows.criterion.dropna().unique())
    palette = dict(zip(criteria, sns.color_palette("colorblind", len(criteria)), strict=True))
    for i, dataset in enumerate(datasets):
        for j, gran in enumerate(grans):
            ax, cell = axes[i][j], rows[(rows.dataset == dataset) & (rows.granularity == gran)]
            if not cell.empty:
                sns.lineplot(cell, x=x, y="accuracy (%)", hue="criterion", style=style,
                             dashes=dashes, palette=palette, markers=True,
                             errorbar=("ci", 95), ax=ax, legend=False)
            axis(ax)
            ax.set_title(f"{dataset}, {gran}")
    _legend(fig, palette, dashes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _legend(fig: plt.Figure, palette: dict, dashes: dict) -> None:
    """One legend for all panels (each panel may lack some criteria): colours, then dashes."""
    handles = [Line2D([], [], color=colour, label=c) for c, colour in palette.items()]
    handles += [Line2D([], [], color="black", dashes=d or (None, None), label=s)
                for s, d in dashes.items()]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def _percent_axis(ax: plt.Axes, values: pd.Series) -> None:
    """Log scale, reversed (sparser to the right, as in LTH), ticks at round percentages."""
    ax.set_xscale("log")
    ticks = [t for t in (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1)
             if values.min() * 0.8 <= t <= values.max() * 1.25]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    if not ax.xaxis_inverted():
        ax.invert_xaxis()


def lottery_effect(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """Per dataset x granularity x criterion x schedule x round: lottery - reinit paired by seed
    within ticket and round; mean gap, paired t 95% interval, Holm-adjusted p; `effect` when the
    t interval excludes zero, `effect_holm` when the Holm-corrected test also rejects."""
    table = compare(frame, "lottery", "reinit", metric)
    if table.empty:
        return pd.DataFrame(columns=[*CELL, "remaining_pct", "n", "mean_gap", "t_low", "t_high",
                                     "p_holm", "effect", "effect_holm"])
    table = table.rename(columns={"mean": "mean_gap"})
    table["effect"] = (table.n >= 2) & ((table.t_low > 0) | (table.t_high < 0))
    table["effect_holm"] = table.p_holm < ALPHA
    keep = [*CELL, "remaining_pct", "n", "mean_gap", "t_low", "t_high", "p_holm", "effect",
            "effect_holm"]
    return table[keep].sort_values(CELL).reset_index(drop=True)


def which_criteria(effects: pd.DataFrame) -> pd.DataFrame:
    """Summary of `lottery_effect`: per dataset x granularity x criterion x schedule, at how many
    sparsity levels the lottery effect appears, the mean gap, and the sparsest such level."""
    def summary(group: pd.DataFrame) -> pd.Series:
        hits = group[group.effect & (group.mean_gap > 0)]
        return pd.Series({"levels": len(group), "levels_with_effect": len(hits),
                          "mean_gap": group.mean_gap.mean(),
                          "sparsest_effect_pct": hits.remaining_pct.min() if len(hits) else np.nan,
                          "shows_effect": len(hits) > 0})
    keys = [c for c in CELL if c != "round"]
    return effects.groupby(keys, dropna=False).apply(summary, include_groups=False).reset_index()


def schedule_effect(frame: pd.DataFrame, arm: str = "lottery",
                    metric: str = "final_test_acc") -> pd.DataFrame:
    """Iterative - one-shot at the same sparsity, paired by seed (both prune the same dense
    net): "pruning a lot at once hurts more than pruning gradually" predicts a positive gap.
    Beside the gap: each schedule's mean and the iterative chain's weights remaining."""
    key = [c for c in CELL if c != "schedule"] + ["seed"]
    runs = [frame[(frame.arm == arm) & (frame.schedule == s)][key + [metric, "remaining_pct"]]
            for s in ("iterative", "oneshot")]
    wide = runs[0].merge(runs[1], on=key, suffixes=("_it", "_os"))  # NaN keys match NaN
    wide["gap"] = wide[f"{metric}_it"] - wide[f"{metric}_os"]
    wide = wide.dropna(subset=["gap"])
    if wide.empty:
        return pd.DataFrame(columns=[*key[:-1], "remaining_pct", "n", "mean_iterative",
                                     "mean_oneshot", "mean_gap", "t_low", "t_high", "p",
                                     "p_holm", "effect"])
    out = []
    for cell, group in wide.groupby(key[:-1], dropna=False):
        gaps = group.gap.to_numpy(dtype=float)
        low, high, p = t_interval(gaps) if len(gaps) > 1 else (np.nan, np.nan, np.nan)
        out.append({**dict(zip(key[:-1], cell, strict=True)),
                    "remaining_pct": group.remaining_pct_it.mean(), "n": len(gaps),
                    "mean_iterative": group[f"{metric}_it"].mean(),
                    "mean_oneshot": group[f"{metric}_os"].mean(),
                    "mean_gap": gaps.mean(), "t_low": low, "t_high": high, "p": p})
    table = pd.DataFrame(out)
    testable = table.n >= MIN_SEEDS
    table["p_holm"] = np.nan
    if testable.any():
        table.loc[testable, "p_holm"] = holm(table.loc[testable, "p"].fillna(1.0).to_numpy())
    table["effect"] = (table.t_low > 0) | (table.t_high < 0)
    return table

