"""Rethinking the Value of Network Pruning's comparison: unpruned vs fine-tuned vs Scratch-E vs
Scratch-B, per model, granularity and pruning ratio, as grouped bars and as the paper's table.

Scratch-E is the `reinit` arm (same epochs as the big net on the same pruned architecture);
the unpruned bar of every round is the dense run of the same tickets.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.style import (
    NET_KEYS,
    PLAN_KEYS,
    REGIME_KEYS,
    color,
    describe,
    facet_keys,
    facets,
    legend_above,
    summarise,
)

ARMS = ["dense", "finetune", "reinit", "scratch_b"]
NAMES = {"dense": "unpruned", "finetune": "fine-tuned", "reinit": "Scratch-E",
         "scratch_b": "Scratch-B"}


def table(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """One row per network, plan and round: mean, sd and n (seeds) of each arm in percent."""
    data = _data(frame, metric)
    if data.empty:
        return pd.DataFrame()
    keys = _keys(data)
    pruned = data[data.arm != "dense"]
    rounds = pruned.groupby([*keys, "round"]).remaining_pct.mean().rename("remaining_pct")
    out = rounds.reset_index()
    for arm in ARMS:
        mine = data[data.arm == arm].drop_duplicates(["run_id", *keys])
        by = keys if arm == "dense" else [*keys, "round"]
        stats = mine.groupby(by)[metric].agg(["mean", "std", "count"])
        stats = stats.mul([100.0, 100.0, 1]).add_prefix(f"{NAMES[arm]} ")
        out = out.merge(stats.reset_index(), on=by, how="left")
    return out


def display(numbers: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout: 'mean ± sd' per arm, one row per pruning ratio."""
    shown = numbers.drop(columns=[c for c in numbers if c.startswith(tuple(NAMES.values()))])
    shown = shown.rename(columns={"remaining_pct": "remaining %"})
    for name in NAMES.values():
        m, s = numbers[f"{name} mean"], numbers[f"{name} std"].fillna(0.0)
        shown[name] = [f"{a:.2f} ± {b:.2f}" if np.isfinite(a) else "–" for a, b in zip(m, s)]
    return shown


def figure(frame: pd.DataFrame, metric: str = "final_test_acc") -> plt.Figure | str:
    """Grouped bars (mean, 95% t interval over seeds): a group per round, a bar per arm; a
    panel per model/learning rate (rows) and granularity (columns)."""
    data = _data(frame, metric)
    if data.empty:
        return "no fine-tuned and Scratch-B runs"
    rows = facets(data, facet_keys(data, "model", [*NET_KEYS, *REGIME_KEYS]))
    cols = facets(data, facet_keys(data, "granularity", PLAN_KEYS))
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False,
                             figsize=(4.8 * len(cols), 3.3 * len(rows)))
    for i, (net, by_net) in enumerate(rows):
        for j, (plan, _) in enumerate(cols):
            panel = by_net.merge(pd.DataFrame([plan]), on=list(plan))
            if _bars(axes[i][j], panel, metric):
                axes[i][j].set_title(describe({**net, **plan}), fontsize=9)
                axes[i][j].set_ylabel("test accuracy (%)")
    legend_above(fig, axes)
    fig.tight_layout()
    return fig


def _bars(ax: plt.Axes, panel: pd.DataFrame, metric: str) -> bool:
    """A group of bars per round; False (and no axes shown) if the panel has no pruned run."""
    pruned = panel[panel.arm != "dense"]
    rounds = sorted(pruned["round"].unique())
    if not rounds:
        ax.set_axis_off()
        return False
    dense = summarise(panel[panel.arm == "dense"].drop_duplicates("run_id").assign(k=0),
                      ["k"], metric)
    width = 0.8 / len(ARMS)
    lows = []
    for k, arm in enumerate(ARMS):
        if arm == "dense":
            stats = pd.concat([dense] * len(rounds), ignore_index=True).assign(round=rounds)
        else:
            stats = summarise(pruned[pruned.arm == arm], ["round"], metric)
            stats = stats.set_index("round").reindex(rounds).reset_index()
        if stats["mean"].isna().all():
            continue
        x = np.arange(len(rounds)) + (k - (len(ARMS) - 1) / 2) * width
        err = np.vstack([stats["mean"] - stats.low, stats.high - stats["mean"]]) * 100
        ax.bar(x, stats["mean"] * 100, width, yerr=err, color=color(arm), label=NAMES[arm],
               capsize=2, error_kw={"lw": 0.8})
        lows.append(np.nanmin(stats.low) * 100)
    remaining = pruned.groupby("round").remaining_pct.mean()
    ax.set_xticks(range(len(rounds)), [f"{r}\n{remaining[r]:.0f}%" for r in rounds])
    ax.set_xlabel("IMP round / weights remaining (%)")
    ax.set_ylim(max(0.0, min(lows) - 5), None)
    return True


def _data(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The four arms, on tickets where at least one of the three pruned arms ran."""
    data = frame[frame.arm.isin(ARMS) & frame.granularity.isin(["unstructured", "structured"])]
    if not {"finetune", "scratch_b"} <= set(data.arm):
        return data.iloc[0:0]
    tickets = set(data.loc[data.arm != "dense", "ticket"])
    return data[data.ticket.isin(tickets)].dropna(subset=[metric])


def _keys(data: pd.DataFrame) -> list[str]:
    net = facet_keys(data, "model", [*NET_KEYS, *REGIME_KEYS])
    return net + [k for k in facet_keys(data, "granularity", PLAN_KEYS) if k not in net]
