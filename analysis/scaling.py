"""The scaling question: at equal nonzero weights, does pruning a big net beat training a small
one, and where do the two families' curves cross?

Families: prune big = lottery and fine-tuned (pruned from the big net); train small =
small_dense and Scratch-B (trained from scratch at the small size). Fit per family and panel:
error rate = a · N^(-b), N = nonzero weights, by least squares on log(error) vs log(N) over
every run. (A saturating a · N^(-b) + c needs more widths than a study usually has; the pure
power law is a straight line on log-log axes and cannot overfit two or three widths.)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.style import PLAN_KEYS, REGIME_KEYS, color, describe, facet_keys, facets, label

FAMILIES = {"prune big": ["lottery", "finetune"], "train small": ["small_dense", "scratch_b"]}
FIT_STYLE = {"prune big": "-", "train small": "--"}


def power_law(n: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    """(a, b) of err = a · n^(-b), least squares in log-log space."""
    slope, intercept = np.polyfit(np.log(n), np.log(np.clip(err, 1e-9, None)), 1)
    return float(np.exp(intercept)), float(-slope)


def crossing(fits: dict[str, tuple[float, float]]) -> float:
    """N where the two families' fitted error rates are equal (NaN if parallel or one fit)."""
    if len(fits) < 2:
        return float("nan")
    (a1, b1), (a2, b2) = fits["prune big"], fits["train small"]
    return float((a1 / a2) ** (1 / (b1 - b2))) if b1 != b2 else float("nan")


def scaling(frame: pd.DataFrame, metric: str = "final_test_acc"
            ) -> tuple[plt.Figure | str, pd.DataFrame]:
    """Accuracy vs nonzero weights (log x) per family across widths, fits and their crossing;
    a panel per pruning plan and learning rate that has 2+ widths. Also the fits as a table."""
    arms = [a for family in FAMILIES.values() for a in family]
    data = frame[frame.arm.isin(arms) & (frame.nonzero_weights > 0)].dropna(subset=[metric])
    if data.width.nunique() < 2:
        widths = ", ".join(f"{w:g}" for w in sorted(data.width.unique())) or "none"
        return f"only one width ({widths})", pd.DataFrame()
    keys = facet_keys(data, "granularity", PLAN_KEYS)
    keys += facet_keys(data, "lr", ["dataset", "model", *REGIME_KEYS])
    panels = [(values, part) for values, part in facets(data, keys) if part.width.nunique() > 1]
    if not panels:
        return "no pruning plan and learning rate has runs at two or more widths", pd.DataFrame()
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(4.8 * ncols, 3.8 * nrows))
    fits = []
    for ax, (values, panel) in zip(axes.flat, panels):
        found = _panel(ax, panel, metric)
        ax.set_title(describe(values) + "\n" + _caption(found, panel), fontsize=8)
        fits += [{**values, **row} for row in found]
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig, pd.DataFrame(fits)


def _panel(ax: plt.Axes, panel: pd.DataFrame, metric: str) -> list[dict]:
    """Means per arm, width and round with 95% bars; a fitted curve per family."""
    fits: dict[str, tuple[float, float]] = {}
    rows = []
    for family, arms in FAMILIES.items():
        part = panel[panel.arm.isin(arms)]
        for arm in [a for a in arms if a in set(part.arm)]:
            means = part[part.arm == arm].groupby(["width", "round"]).agg(
                n=("nonzero_weights", "mean"), acc=(metric, "mean"), sd=(metric, "std"),
                k=(metric, "size"))
            half = 1.96 * means.sd.fillna(0) / np.sqrt(means.k) * 100
            ax.plot(means.n, means.acc * 100, "o", ms=4, color=color(arm), label=label(arm))
            ax.vlines(means.n, means.acc * 100 - half, means.acc * 100 + half, lw=0.8,
                      color=color(arm))
        if part.nonzero_weights.nunique() >= 2 and part.width.nunique() >= 2:
            n, err = part.nonzero_weights.to_numpy(float), 1 - part[metric].to_numpy(float)
            fits[family] = a, b = power_law(n, err)
            grid = np.geomspace(n.min(), n.max(), 60)
            ax.plot(grid, (1 - a * grid ** -b) * 100, color="0.25", ls=FIT_STYLE[family],
                    lw=1.2, label=f"{family}: error = {a:.3g}·N^-{b:.3f}")
            rows.append({"family": family, "a": a, "b": b, "runs": len(part),
                         "n_min": n.min(), "n_max": n.max()})
    cross = crossing(fits)
    low, high = panel.nonzero_weights.min(), panel.nonzero_weights.max()
    inside = bool(np.isfinite(cross) and low <= cross <= high)
    if inside:
        ax.axvline(cross, color="0.5", ls=":", lw=1, label=f"crossing N ≈ {cross:,.0f}")
    for row in rows:
        row.update(crossing=cross, crossing_in_range=inside)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_count))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("nonzero weights N (count)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=6.5, frameon=False)
    return rows


def _count(value: float, _position=None) -> str:
    """1k, 20k, 1.5M: short tick labels for weight counts."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def _caption(found: list[dict], panel: pd.DataFrame) -> str:
    if len(found) < 2:
        return "fits need both families at 2+ widths"
    cross, inside = found[0]["crossing"], found[0]["crossing_in_range"]
    if inside:
        return f"curves cross at N ≈ {cross:,.0f}"
    better = "prune big" if _err(found, panel.nonzero_weights.median()) < 0 else "train small"
    return f"no crossing in range ({better} ahead throughout)"


def _err(found: list[dict], n: float) -> float:
    """Prune-big minus train-small fitted error rate at N = n."""
    by = {row["family"]: row["a"] * n ** -row["b"] for row in found}
    return by["prune big"] - by["train small"]
