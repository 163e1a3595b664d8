"""The LTH figures: accuracy and early-stop step vs weights remaining, and training curves.

Each function takes the tidy frame (one network: dataset, model, width) and returns a Figure, or
a one-line string saying why the experiment lacks the data (the caller reports the line instead
of drawing an empty plot).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.style import (
    PLAN_KEYS,
    REGIME_KEYS,
    UNTRAINED,
    color,
    describe,
    facet_keys,
    facets,
    label,
    legend_above,
    ordered_arms,
    percent_axis,
    summarise,
)

Result = plt.Figure | str
GRANULARITIES = ("unstructured", "structured")


def accuracy_vs_remaining(frame: pd.DataFrame, metric: str = "final_test_acc") -> Result:
    """LTH's figure: a line per arm (mean and 95% band over seeds) over % weights remaining,
    the dense net as a dashed reference; a panel per pruning plan (rows: granularity, and
    criterion/scope/schedule/rewind where varied) and learning rate (columns)."""
    name = "test accuracy" if "test" in metric else metric.replace("_", " ")
    return _versus_remaining(frame, metric, f"{name} (%)", 100.0)


def early_stop_vs_remaining(frame: pd.DataFrame) -> Result:
    """LTH's early-stopping figure: iteration of minimum validation loss; untrained arms left
    out (they have no training to stop)."""
    trained = frame[~frame.arm.isin(UNTRAINED)]
    return _versus_remaining(trained, "early_stop_step", "early-stop step (iterations)", 1.0)


def _versus_remaining(frame: pd.DataFrame, y: str, ylabel: str, scale: float) -> Result:
    data = frame[frame.granularity.isin(GRANULARITIES)].dropna(subset=[y])
    if not (data.stage != "dense").any():
        return f"no finished pruned runs with {y}"
    rows = facets(data, facet_keys(data, "granularity", PLAN_KEYS))
    cols = facets(data, facet_keys(data, "lr", REGIME_KEYS))
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharey=True,
                             figsize=(4.2 * len(cols), 3.2 * len(rows)))
    for i, (plan, by_plan) in enumerate(rows):
        for j, (regime, _) in enumerate(cols):
            ax = axes[i][j]
            panel = by_plan.merge(pd.DataFrame([regime]), on=list(regime))
            _panel(ax, panel, y, scale)
            percent_axis(ax, max(panel.remaining_pct.min(), 0.1) if len(panel) else 1.0)
            ax.set_title(describe({**plan, **regime}), fontsize=9)
            ax.set_ylabel(ylabel if j == 0 else "")
    legend_above(fig, axes)
    fig.tight_layout()
    return fig


def _panel(ax: plt.Axes, panel: pd.DataFrame, y: str, scale: float) -> None:
    """Dense as a dashed line with its band; every other arm as mean line + band by round."""
    dense = panel[panel.stage == "dense"].drop_duplicates("run_id")
    if len(dense):
        mean = summarise(dense.assign(k=0), ["k"], y).iloc[0]
        ax.axhline(mean["mean"] * scale, color=color("dense"), ls="--", lw=1.2,
                   label=label("dense"))
        ax.axhspan(mean.low * scale, mean.high * scale, color=color("dense"), alpha=0.12, lw=0)
    for arm in ordered_arms(panel.arm):
        if arm == "dense":
            continue
        line = summarise(panel[panel.arm == arm], ["round"], y, "remaining_pct")
        ax.plot(line.remaining_pct, line["mean"] * scale, marker="o", ms=3.5, lw=1.5,
                color=color(arm), label=label(arm))
        ax.fill_between(line.remaining_pct, line.low * scale, line.high * scale, alpha=0.2,
                        color=color(arm), lw=0)


def pick_curve_runs(frame: pd.DataFrame, ticket: str | None = None, round_: int | None = None,
                    seed: int | None = None) -> pd.DataFrame:
    """Figure 6's matched runs: by default the deepest round of the first ticket (in condition
    order) and its first seed, plus that ticket's dense run. Empty if nothing matches."""
    pruned = frame[frame.stage != "dense"]
    if pruned.empty:
        return pruned
    if ticket is None:
        order = ["dataset", "model", "width", "lr", "warmup", *PLAN_KEYS, "seed", "ticket"]
        ticket = pruned.sort_values(order).ticket.iloc[0]
    mine = frame[frame.ticket == ticket]
    round_ = int(mine["round"].max()) if round_ is None else round_
    seed = int(mine.seed.min()) if seed is None else seed
    return mine[mine["round"].isin([0, round_]) & (mine.seed == seed)]


def training_curves(curves: pd.DataFrame, runs: pd.DataFrame, metric: str = "val_acc") -> Result:
    """`metric` vs training step for matched arms (same ticket, round and seed)."""
    if runs.empty:
        return "no pruned runs to show training curves for"
    data = curves.dropna(subset=[metric]).merge(runs[["run_id", "arm"]].drop_duplicates(),
                                                on="run_id")
    if data.empty:
        return f"no {metric} curves recorded for the chosen runs"
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    for arm in ordered_arms(data.arm):
        mine = data[data.arm == arm].sort_values("step")
        ax.plot(mine.step, mine[metric] * 100, color=color(arm), label=label(arm), lw=1.4,
                ls="--" if arm == "dense" else "-")
    without = sorted(set(runs.arm) - set(data.arm))
    first = runs[runs.stage != "dense"].iloc[0]
    ax.set_title(describe({k: first[k] for k in ("model", "lr", "granularity")})
                 + f", round {first['round']} ({first.remaining_pct:.1f}% remaining), "
                 + f"seed {first.seed}" + (f"\nno curve: {', '.join(without)}" if without
                                           else ""), fontsize=9)
    ax.set_xlabel("training step (iterations)")
    ax.set_ylabel(metric.replace("_acc", " accuracy").replace("val", "validation") + " (%)")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def nets(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(file-name suffix, part) per network (dataset, model, width); '' when there is one."""
    keys = ["dataset", "model", "width"]
    groups = list(frame.groupby(keys, sort=True))
    if len(groups) == 1:
        return [("", frame)]
    return [("_" + "_".join(f"{v:g}" if isinstance(v, float) else str(v) for v in key), part)
            for key, part in groups]


def points(ax: plt.Axes) -> dict[str, int]:
    """Number of plotted points per labelled line of an axes (tests and sanity checks)."""
    return {ln.get_label(): int(np.size(ln.get_xdata())) for ln in ax.lines
            if not ln.get_label().startswith("_")}
