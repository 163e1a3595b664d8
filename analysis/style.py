"""One look for every figure: theme, a fixed colour-blind-safe colour per arm, docs/science.md's arm
names, facet labels, 95% bands over seeds, and saving as PNG + PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats as sps  # noqa: E402

from study.contract import REGISTRY, arms_where  # noqa: E402

ARMS = list(REGISTRY)
"""Plot order of the arms (the registry's, `study.arm_registry`)."""
LABELS = {arm: entry.label for arm, entry in REGISTRY.items()}
"""Arm -> its name in docs/science.md's words."""


def _colour(arm: str) -> tuple:
    palette, index = REGISTRY[arm].colour
    rgb = sns.color_palette(palette, 10)[index]
    shade = REGISTRY[arm].shade
    return rgb if shade == 1.0 else tuple(shade * c for c in rgb)


COLORS = {arm: _colour(arm) for arm in REGISTRY}
"""Arm -> its fixed colour in every figure, from its registry entry: (palette, index) in
seaborn's 10-colour palettes (colorblind for the arms on a ticket, the arms compared most with
the most distinct hues and the dense reference grey; dark for the train-small ones), in a
darker shade for a Scratch-B budget or lr rewinding."""
UNTRAINED = set(arms_where(family="untrained"))
"""The tickets evaluated without any training (supermask, weight agnostic)."""
ORDER = {"granularity": ["unstructured", "structured"]}
"""Facet order where alphabetical is wrong: the LTH's unstructured case first."""
PLAN_KEYS = ["granularity", "criterion", "scope", "schedule", "retrain", "rewind_step"]
REGIME_KEYS = ["lr", "warmup"]
NET_KEYS = ["dataset", "model", "width"]
NAMES = {"rewind_step": "rewind", "width": "width", "lr": "lr", "warmup": "warmup"}


def color(arm: str) -> tuple:
    """An arm's colour; an ablation (`snip+shuffled`) takes its arm's."""
    return COLORS.get(arm, COLORS.get(arm.split("+")[0], (0.5, 0.5, 0.5)))


def label(arm: str) -> str:
    """An arm's name in docs/science.md's words; an ablation's says what was ablated."""
    base, _, variant = arm.partition("+")
    return LABELS.get(base, base) + (f" ({variant.replace('+', ', ')})" if variant else "")


def ordered_arms(arms) -> list[str]:
    """Known arms in the fixed order, then any others alphabetically."""
    present = set(arms)
    return [a for a in ARMS if a in present] + sorted(present - set(ARMS))


def theme() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    """`name`.png and `name`.pdf in `out`; the figure is closed afterwards."""
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return paths


def varying(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """The keys that take more than one value: only those need a facet or a label."""
    return [k for k in keys if k in frame and frame[k].nunique(dropna=False) > 1]


def describe(values: dict) -> str:
    """'unstructured, l1_filter, lr 0.1': categorical values bare, numbers with their name."""
    parts = []
    for key, value in values.items():
        if isinstance(value, str):
            parts.append(value)
        else:
            parts.append(f"{NAMES.get(key, key)} {value:g}")
    return ", ".join(parts)


def facet_keys(frame: pd.DataFrame, first: str, keys: list[str]) -> list[str]:
    """`first` always, then the other keys only where the study varies them."""
    return [first, *[k for k in varying(frame, keys) if k != first]]


def facets(frame: pd.DataFrame, keys: list[str]) -> list[tuple[dict, pd.DataFrame]]:
    """(values, part) for each combination of `keys` present, in sorted order."""
    if not keys:
        return [({}, frame)]
    groups = [(dict(zip(keys, k if isinstance(k, tuple) else (k,))), part)
              for k, part in frame.groupby(keys, sort=True, dropna=False)]
    return sorted(groups, key=lambda g: [rank(k, v) for k, v in g[0].items()])


def plan_by_regime(data: pd.DataFrame) -> tuple[list, list]:
    """The facets of a grid of panels: a row per pruning plan, a column per lr regime (and
    dataset and model where they vary)."""
    return (facets(data, facet_keys(data, "granularity", PLAN_KEYS)),
            facets(data, facet_keys(data, "lr", [*REGIME_KEYS, "dataset", "model"])))


def each_panel(axes, rows: list, cols: list):
    """(ax, column, plan, regime, data) for every panel of a `plan_by_regime` grid that has
    data; a panel without any is switched off."""
    for i, (plan, by_plan) in enumerate(rows):
        for j, (regime, _) in enumerate(cols):
            panel = by_plan.merge(pd.DataFrame([regime]), on=list(regime))
            if panel.empty:
                axes[i][j].set_axis_off()
                continue
            yield axes[i][j], j, plan, regime, panel


def rank(key: str, value) -> tuple:
    order = ORDER.get(key, [])
    return (order.index(value), "") if value in order else (len(order), value)


def band(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% t interval over seeds (the interval is the mean for one seed)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    mean = float(v.mean())
    if len(v) < 2:
        return mean, mean, mean
    half = float(sps.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def summarise(frame: pd.DataFrame, by: list[str], y: str, x: str | None = None) -> pd.DataFrame:
    """Per group: n, mean, low, high of `y` (and the mean of `x`)."""
    rows = []
    for key, part in frame.dropna(subset=[y]).groupby(by, sort=True):
        mean, low, high = band(part[y].to_numpy())
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(n=len(part), mean=mean, low=low, high=high)
        if x is not None:
            row[x] = part[x].mean()
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "low", "high", *([x] if x else [])])


def percent_axis(ax: plt.Axes, smallest: float) -> None:
    """Log x of % remaining, reversed so sparsity grows to the right (as in the LTH paper)."""
    ax.set_xscale("log")
    ticks = [t for t in (100, 70, 50, 30, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1) if smallest * 0.8 <= t]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    if not ax.xaxis_inverted():
        ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")


def legend_above(fig: plt.Figure, axes) -> None:
    """One legend for the whole figure, from the union of the panels' labelled artists."""
    seen: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, text in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(text, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="lower center", frameon=False,
                   ncol=min(4, len(seen)), bbox_to_anchor=(0.5, 1.0))


def count_label(value: float, _position=None) -> str:
    """1k, 20k, 1.5M: short tick labels for weight counts."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"
