"""Paper figures (seaborn style, colour-blind-safe, one fixed colour per arm), PNG and PDF.

Each function takes the tidy frame and returns a Figure, or a string saying why the experiment
lacks the data for it (the caller writes that line instead of an empty plot).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

ARMS = ["dense", "lottery", "reinit", "scratch_b", "finetune", "sign_constant", "random_prune",
        "small_dense", "supermask"]
LABELS = {"dense": "dense", "lottery": "lottery (θ0 rewind)", "reinit": "reinit (Scratch-E)",
          "scratch_b": "Scratch-B", "finetune": "fine-tuned", "sign_constant": "sign constant",
          "random_prune": "random prune", "small_dense": "small dense", "supermask": "supermask"}
COLORS = dict(zip(ARMS, sns.color_palette("colorblind", len(ARMS)), strict=True))
Result = plt.Figure | str


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _panels(frame: pd.DataFrame, rows: str, cols: str):
    row_values = sorted(frame[rows].dropna().unique())
    col_values = sorted(frame[cols].dropna().unique())
    fig, axes = plt.subplots(len(row_values), len(col_values), squeeze=False, sharey=True,
                             figsize=(4.2 * len(col_values), 3.3 * len(row_values)))
    return fig, axes, row_values, col_values


def _mean_band(group: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean and 95% t interval over seeds at each x (round)."""
    from scipy import stats

    def band(values: pd.Series) -> pd.Series:
        v = values.dropna().to_numpy(dtype=float)
        half = (stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
                if len(v) > 1 else 0.0)
        return pd.Series({"mean": v.mean(), "low": v.mean() - half, "high": v.mean() + half})

    by_round = group.groupby("round")
    out = by_round[y].apply(band).unstack()
    out["x"] = by_round[x].mean()
    return out.sort_values("x", ascending=False)


def accuracy_vs_remaining(frame: pd.DataFrame, metric: str = "final_test_acc",
                          ylabel: str = "test accuracy (%)", scale: float = 100.0) -> Result:
    """LTH's figure: a line per arm over % weights remaining, a panel per lr and granularity."""
    data = frame[frame.granularity.isin(["unstructured", "structured"])].dropna(subset=[metric])
    if data.empty:
        return "no pruned runs with " + metric
    fig, axes, grans, lrs = _panels(data, "granularity", "lr")
    for i, gran in enumerate(grans):
        for j, lr in enumerate(lrs):
            ax = axes[i][j]
            panel = data[(data.granularity == gran) & (data.lr == lr)]
            for arm in [a for a in ARMS if a in set(panel.arm)]:
                band = _mean_band(panel[panel.arm == arm], "remaining_pct", metric)
                ax.plot(band.x, band["mean"] * scale, marker="o", ms=3, color=COLORS[arm],
                        label=LABELS[arm])
                ax.fill_between(band.x, band.low * scale, band.high * scale, alpha=0.2,
                                color=COLORS[arm], linewidth=0)
            ax.set_xscale("log")
            ticks = [t for t in (100, 50, 20, 10, 5, 2, 1, 0.5) if
                     panel.remaining_pct.min() * 0.8 <= t <= 100]
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
            ax.invert_xaxis()
            ax.set_title(f"{gran}, lr {lr:g}")
            ax.set_xlabel("weights remaining (%)")
            ax.set_ylabel(ylabel if j == 0 else "")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(5, len(labels)),
               bbox_to_anchor=(0.5, 1.06), frameon=False)
    fig.tight_layout()
    return fig


def early_stop_vs_remaining(frame: pd.DataFrame) -> Result:
    return accuracy_vs_remaining(frame, "early_stop_step", "early-stop step (iterations)", 1.0)


def rethinking(frame: pd.DataFrame) -> tuple[Result, pd.DataFrame]:
    """Unpruned vs fine-tuned vs Scratch-E vs Scratch-B per model, granularity and round."""
    arms = ["dense", "finetune", "reinit", "scratch_b"]
    data = frame[frame.arm.isin(arms) & frame.granularity.isin(["unstructured", "structured"])]
    if not {"finetune", "scratch_b"} <= set(data.arm):
        return "no fine-tuned and Scratch-B runs to compare", pd.DataFrame()
    table = (data.groupby(["model", "granularity", "lr", "round", "arm"])["final_test_acc"]
             .agg(["mean", "std", "count"]).mul([100, 100, 1]).reset_index())
    wide = table.pivot_table(index=["model", "granularity", "lr", "round"], columns="arm",
                             values="mean").reset_index()
    grid = sns.catplot(data=data.assign(acc=data.final_test_acc * 100,
                                        arm_label=data.arm.map(LABELS)),
                       x="round", y="acc", hue="arm_label", col="granularity", row="lr",
                       kind="bar", errorbar=("ci", 95), sharex=False, height=3, aspect=1.5,
                       hue_order=[LABELS[a] for a in arms if a in set(data.arm)],
                       palette=[COLORS[a] for a in arms if a in set(data.arm)])
    grid.set_axis_labels("IMP round (pruning ratio grows →)", "test accuracy (%)")
    grid.legend.set_title("")
    for ax in grid.axes.flat:
        low = data.final_test_acc.min() * 100
        ax.set_ylim(max(0, low - 5), None)
    return grid.figure, wide


def regime_map(verdicts: pd.DataFrame) -> Result:
    """Mean lottery-minus-reinit gap (pp) over lr x granularity; '*' where Holm says effect."""
    data = verdicts[verdicts.comparison == "lottery vs reinit"]
    if data.empty or data.lr.nunique() * data.granularity.nunique() < 2:
        return "lottery vs reinit needs at least two learning rates or granularities"
    deepest = data.loc[data.groupby(["granularity", "lr", "width", "rewind_step", "scope"])
                       ["round"].idxmax()]
    facets = [c for c in ("width", "rewind_step", "scope") if deepest[c].nunique() > 1]
    groups = list(deepest.groupby(facets)) if facets else [((), deepest)]
    fig, axes = plt.subplots(1, len(groups), squeeze=False, figsize=(4.5 * len(groups), 3.4))
    for ax, (key, group) in zip(axes[0], groups, strict=True):
        gap = group.pivot_table(index="granularity", columns="lr", values="mean") * 100
        marks = group.assign(m=group.verdict.str.startswith("effect").map({True: "*",
                                                                            False: ""}))
        stars = marks.pivot_table(index="granularity", columns="lr", values="m", aggfunc="first")
        text = gap.round(1).astype(str) + stars.reindex_like(gap).fillna("")
        sns.heatmap(gap, annot=text, fmt="", cmap="RdBu_r", center=0, ax=ax,
                    cbar_kws={"label": "lottery − reinit (pp)"})
        rem = ", ".join(f"{g} {r:.0f}%" for g, r in group.groupby("granularity")
                        ["remaining_pct"].mean().items())
        title = ", ".join(f"{f} {k}" for f, k in zip(facets, np.atleast_1d(key), strict=True))
        ax.set_title((title + "\n" if title else "") + f"deepest round ({rem} left)")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("granularity")
    fig.tight_layout()
    return fig


FAMILIES = {"prune big": ["lottery", "finetune"], "train small": ["small_dense", "scratch_b"]}


def power_law(n: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    """Fit error = a * N^-b by least squares in log-log space; returns (a, b)."""
    slope, intercept = np.polyfit(np.log(n), np.log(np.clip(err, 1e-6, None)), 1)
    return float(np.exp(intercept)), float(-slope)


def scaling(frame: pd.DataFrame) -> Result:
    """Accuracy vs nonzero weights for the two families across widths, with power-law fits."""
    data = frame[frame.arm.isin(sum(FAMILIES.values(), []))].dropna(subset=["final_test_acc"])
    if data.width.nunique() < 2:
        return "scaling figure skipped: the study has a single width"
    fig, axes = plt.subplots(1, data.granularity.nunique(), squeeze=False, figsize=(9, 3.6))
    for ax, (gran, group) in zip(axes[0], data.groupby("granularity"), strict=True):
        fits = {}
        for family, arms in FAMILIES.items():
            part = group[group.arm.isin(arms)]
            for arm in arms:
                mine = part[part.arm == arm]
                ax.scatter(mine.nonzero_weights, mine.final_test_acc * 100, s=10,
                           color=COLORS[arm], label=LABELS[arm], alpha=0.7)
            if len(part) >= 3:
                a, b = power_law(part.nonzero_weights.to_numpy(float),
                                 1 - part.final_test_acc.to_numpy(float))
                n = np.geomspace(part.nonzero_weights.min(), part.nonzero_weights.max(), 50)
                ax.plot(n, (1 - a * n ** -b) * 100, color=COLORS[arms[0]], lw=1.5,
                        ls="-" if family == "prune big" else "--",
                        label=f"{family}: err = {a:.2g}·N^-{b:.2f}")
                fits[family] = (a, b)
        ax.set_title(f"{gran}: {_crossing(fits, group.nonzero_weights)}")
        ax.set_xscale("log")
        ax.set_xlabel("nonzero weights")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _crossing(fits: dict, n: pd.Series) -> str:
    if len(fits) < 2:
        return "one family only"
    (a1, b1), (a2, b2) = fits["prune big"], fits["train small"]
    if b1 == b2:
        return "parallel fits"
    cross = (a1 / a2) ** (1 / (b1 - b2))
    if n.min() <= cross <= n.max():
        return f"curves cross at N≈{cross:,.0f}"
    return "no crossing in range"


def training_curves(curves: pd.DataFrame, runs: pd.DataFrame, title: str) -> Result:
    """Validation accuracy vs step of matched arms (same ticket, round and seed)."""
    if curves.empty:
        return "no curves recorded for the chosen condition"
    data = curves.merge(runs[["run_id", "arm"]], on="run_id")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for arm in [a for a in ARMS if a in set(data.arm)]:
        mine = data[data.arm == arm].sort_values("step")
        ax.plot(mine.step, mine.val_acc * 100, color=COLORS[arm], label=LABELS[arm], marker=".")
    ax.set_xlabel("training step (iterations)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
