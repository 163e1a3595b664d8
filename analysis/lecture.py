"""The lecture's pruning loop: prune a little, fine-tune, repeat (Han et al. 2015), against one
big cut and against training small.

A fine-tune chain (`prune.retrain` 'finetune') records each round as the `finetune` arm at stage
"imp": its accuracy right after the cut (`pruned_test_acc`, the pruned net untouched) and after
fine-tuning (the analysis metric). An iterative chain prunes a little each round; a one-shot
chain cuts the dense net straight to each round's sparsity and fine-tunes as long as the
iterative rounds together, so "small steps beat one cut" is a budget-matched, paired (same
dense net per seed) comparison at each sparsity. Every function returns a table, a Figure or a
one-line reason why the data is missing, and writes nothing.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.criteria import schedule_effect
from analysis.stats import CONDITION, decide
from analysis.style import (
    band,
    color,
    describe,
    facet_keys,
    facets,
    legend_above,
    percent_axis,
    summarise,
)

ARM = "finetune"
BEFORE = "pruned_test_acc"
KEYS = [c for c in CONDITION if c not in ("schedule", "retrain", "round")]
"""A chain's condition without its schedule: the iterative and one-shot chains of one plan."""
OTHER = [k for k in KEYS if k != "granularity"]
"""Panel keys beside the granularity, shown where the study varies them."""
SCHEDULES = {"iterative": "small steps", "oneshot": "one cut"}
SHADE = {"iterative": color(ARM), "oneshot": tuple(0.55 * c for c in color(ARM))}
DASHES = {"iterative": "-", "oneshot": "--"}
LINES = [("lottery", "rewind", "iterative", "lottery (IMP: rewind to θk, retrain)"),
         (ARM, "finetune", "iterative", "fine-tuned, small steps (iterative)"),
         (ARM, "finetune", "oneshot", "fine-tuned, one cut (one-shot)"),
         ("reinit", "finetune", "iterative", "Scratch-E on the fine-tune masks"),
         ("scratch_b", "finetune", "iterative", "Scratch-B on the fine-tune masks"),
         ("small_dense", "finetune", "iterative", "small dense (as many weights)")]
"""Figure 13's lines: (arm, retrain, schedule of its chain, label)."""
Result = plt.Figure | str


def chain_rounds(frame: pd.DataFrame) -> pd.DataFrame:
    """The fine-tune chains' own rounds (stage "imp", arm finetune)."""
    return frame[(frame.stage == "imp") & (frame.retrain == "finetune")]


def has_chain(frame: pd.DataFrame) -> bool:
    return "retrain" in frame and not chain_rounds(frame).empty


def damage_recovery(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """Per plan, schedule and round (round 0 = the dense net): test accuracy right after the
    cut (`before`) and after fine-tuning (`after`, the metric), mean and 95% t interval over
    seeds, the weights remaining and the accuracy fine-tuning won back (`recovered`)."""
    chain = chain_rounds(frame)
    dense = frame[(frame.stage == "dense") & frame.ticket.isin(set(chain.ticket))]
    dense = dense.assign(**{BEFORE: dense[metric]})  # nothing cut yet
    rows = []
    for key, part in pd.concat([dense, chain]).groupby([*KEYS, "schedule", "round"],
                                                       dropna=False, sort=True):
        before, after = band(part[BEFORE].to_numpy()), band(part[metric].to_numpy())
        rows.append({**dict(zip([*KEYS, "schedule", "round"], key, strict=True)),
                     "remaining_pct": part.remaining_pct.mean(), "n": int(part[metric].count()),
                     "before": before[0], "before_low": before[1], "before_high": before[2],
                     "after": after[0], "after_low": after[1], "after_high": after[2],
                     "recovered": (part[metric] - part[BEFORE]).mean()})
    return pd.DataFrame(rows)


def recovery_display(table: pd.DataFrame) -> pd.DataFrame:
    """The damage-and-recovery table in percent, one row per plan, schedule and round."""
    keys = [k for k in KEYS if table[k].nunique(dropna=False) > 1 or k == "granularity"]
    shown = table[[*keys, "schedule", "round"]].copy()
    shown["remaining %"] = table.remaining_pct.round(1)
    shown["seeds"] = table.n
    for name, col in (("after the cut %", "before"), ("after fine-tuning %", "after")):
        shown[name] = [f"{m * 100:.2f} [{lo * 100:.2f}, {hi * 100:.2f}]" for m, lo, hi in zip(
            table[col], table[f"{col}_low"], table[f"{col}_high"])]
    shown["recovered pp"] = (table.recovered * 100).round(2)
    return shown


def small_steps(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """Iterative − one-shot fine-tune chain at each round from 2 on (same sparsity, same total
    fine-tuning; at round 1 the two are the same cut), paired by seed: mean gap, paired t
    interval, Holm over every plan and round, and the verdict ('effect: small steps better' /
    'effect: one cut better' / 'no effect detected' / 'too few seeds'); `damage_gap` is the same
    difference right after the cut."""
    chain = chain_rounds(frame)
    chain = chain[chain["round"] > 1]
    after = schedule_effect(chain, arm=ARM, metric=metric)
    if after.empty:
        return after
    before = schedule_effect(chain, arm=ARM, metric=BEFORE)
    cell = [c for c in CONDITION if c != "schedule"]
    table = decide(after.rename(columns={"mean_gap": "mean"}), SCHEDULES["iterative"],
                   SCHEDULES["oneshot"])
    damage = before[[*cell, "mean_gap"]].rename(columns={"mean_gap": "damage_gap"})
    return table.merge(damage, on=cell, how="left").sort_values(cell).reset_index(drop=True)


def steps_display(table: pd.DataFrame) -> pd.DataFrame:
    """`small_steps` as the report shows it: accuracies in percent, gaps in points."""
    keys = [k for k in KEYS if table[k].nunique(dropna=False) > 1 or k == "granularity"]
    shown = table[[*keys, "round"]].copy()
    shown["remaining %"] = table.remaining_pct.round(1)
    shown["pairs"] = table.n
    shown["small steps %"] = (table.mean_iterative * 100).round(2)
    shown["one cut %"] = (table.mean_oneshot * 100).round(2)
    shown["gap pp"] = (table["mean"] * 100).round(2)
    shown["95% t interval"] = [f"[{a * 100:+.2f}, {b * 100:+.2f}]" if np.isfinite(a) else "–"
                               for a, b in zip(table.t_low, table.t_high)]
    shown["Holm p"] = table.p_holm
    shown["gap right after the cut pp"] = (table.damage_gap * 100).round(2)
    shown["verdict"] = table.verdict
    return shown


def sentences(table: pd.DataFrame) -> list[str]:
    """One line per plan: at how many sparsities small steps won, one cut won, or neither."""
    lines = []
    for key, part in table.groupby(KEYS, dropna=False, sort=True):
        where = describe({k: v for k, v in zip(KEYS, key, strict=True)
                          if k in ("granularity", "criterion")
                          or table[k].nunique(dropna=False) > 1})
        won = part[part.verdict == f"effect: {SCHEDULES['iterative']} better"]
        lost = part[part.verdict == f"effect: {SCHEDULES['oneshot']} better"]
        untested = int((part.verdict == "too few seeds").sum())
        text = (f"{where}: small steps beat one cut at {len(won)} of {len(part)} sparsities"
                + (f" ({_levels(won)} remaining)" if len(won) else "")
                + f"; one cut was better at {len(lost)}"
                + (f" ({_levels(lost)})" if len(lost) else "")
                + f"; no effect detected at {len(part) - len(won) - len(lost) - untested}"
                + (f"; too few seeds at {untested}" if untested else "")
                + f". Mean gap {part['mean'].mean() * 100:+.2f} pp after fine-tuning, "
                f"{part.damage_gap.mean() * 100:+.2f} pp right after the cut (Holm over "
                "every plan and round).")
        lines.append(text)
    return lines


def _levels(rows: pd.DataFrame) -> str:
    return ", ".join(f"{v:.0f}%" if v >= 10 else f"{v:.1f}%" for v in rows.remaining_pct)


def damage_figure(table: pd.DataFrame) -> Result:
    """Accuracy right after each cut (open markers) and after its fine-tuning (filled), per
    round, mean and 95% t interval over seeds; a panel per plan, the two schedules side by
    side in each round (dodged), a vertical stroke per recovery and, for the iterative chain,
    a thin line per cut from the previous round's fine-tuned accuracy (the sawtooth)."""
    if table.empty:
        return "no fine-tune chain rounds"
    panels = facets(table, facet_keys(table, "granularity", OTHER))
    fig, axes = _grid(len(panels))
    for ax, (plan, part) in zip(axes.ravel(), panels):
        for k, schedule in enumerate(("iterative", "oneshot")):
            line = part[part.schedule == schedule].sort_values("round")
            if line.empty:
                continue
            x = line["round"].to_numpy() + (k - 0.5) * 0.2
            before, after = line.before.to_numpy() * 100, line.after.to_numpy() * 100
            shade, name = SHADE[schedule], SCHEDULES[schedule]
            ax.errorbar(x, after, yerr=_err(line, "after"), color=shade, ls=DASHES[schedule],
                        marker="o", ms=4, lw=1.4, capsize=2, label=f"{name}: fine-tuned")
            cut = line["round"].to_numpy() > 0
            ax.errorbar(x[cut], before[cut], yerr=_err(line, "before")[:, cut], color=shade,
                        ls="none", marker="o", ms=4, mfc="white", capsize=2,
                        label=f"{name}: right after the cut")
            ax.vlines(x[cut], before[cut], after[cut], color=shade, lw=0.8, alpha=0.7)
            if schedule == "iterative":  # each cut starts from the previous fine-tuned net
                for i in np.flatnonzero(cut):
                    if i > 0:
                        ax.plot([x[i - 1], x[i]], [after[i - 1], before[i]], color=shade,
                                lw=0.7, ls=":")
        rounds = part.groupby("round").remaining_pct.mean()
        ax.set_xticks(rounds.index, [f"{r}\n{v:.0f}%" if v >= 10 else f"{r}\n{v:.1f}%"
                                     for r, v in rounds.items()], fontsize=8)
        ax.set_xlabel("round / weights remaining")
        ax.set_title(describe(plan), fontsize=9)
    return _finish(fig, axes, len(panels))


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    """Up to 4 panels a row, sharing the accuracy axis."""
    cols = min(4, n)
    rows = -(-n // cols)
    return plt.subplots(rows, cols, squeeze=False, sharey=True, figsize=(4.4 * cols, 3.4 * rows))


def _finish(fig: plt.Figure, axes: np.ndarray, n: int) -> plt.Figure:
    """Unused panels off, the y label on each row, one legend above."""
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    for row in axes:
        row[0].set_ylabel("test accuracy (%)")
    legend_above(fig, axes)
    fig.tight_layout()
    return fig


def _err(line: pd.DataFrame, col: str) -> np.ndarray:
    return np.vstack([line[col] - line[f"{col}_low"], line[f"{col}_high"] - line[col]]) * 100


def versus_remaining(frame: pd.DataFrame, metric: str = "final_test_acc") -> Result:
    """Accuracy vs weights remaining, a panel per plan: the fine-tune chain (small steps and
    one cut) beside IMP's lottery of the same plan and Scratch-E, Scratch-B and small dense on
    the fine-tune chain's masks; mean and 95% band over seeds, the dense net dashed."""
    chain = chain_rounds(frame)
    if chain.empty:
        return "no fine-tune chain rounds"
    plans = chain.drop_duplicates(KEYS)[KEYS]
    data = frame.merge(plans, on=KEYS)
    panels = facets(data, facet_keys(data, "granularity", OTHER))
    fig, axes = _grid(len(panels))
    for ax, (plan, part) in zip(axes.ravel(), panels):
        dense = part[part.stage == "dense"].drop_duplicates("run_id")
        if len(dense):
            mean, low, high = band(dense[metric].to_numpy())
            ax.axhline(mean * 100, color=color("dense"), ls="--", lw=1.2,
                       label="dense (unpruned)")
            ax.axhspan(low * 100, high * 100, color=color("dense"), alpha=0.12, lw=0)
        for arm, retrain, schedule, name in LINES:
            runs = part[(part.arm == arm) & (part.retrain == retrain)
                        & (part.schedule == schedule) & (part.stage != "dense")]
            if runs.empty:
                continue
            line = summarise(runs, ["round"], metric, "remaining_pct")
            shade = SHADE[schedule] if arm == ARM else color(arm)
            ax.plot(line.remaining_pct, line["mean"] * 100, marker="o", ms=3.5, lw=1.5,
                    color=shade, ls=DASHES[schedule] if arm == ARM else "-", label=name)
            ax.fill_between(line.remaining_pct, line.low * 100, line.high * 100, alpha=0.18,
                            color=shade, lw=0)
        percent_axis(ax, max(part.remaining_pct.min(), 0.1))
        ax.set_title(describe(plan), fontsize=9)
    return _finish(fig, axes, len(panels))
