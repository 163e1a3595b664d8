"""Each arm at its own best learning rate: Rethinking's objection to the lottery ticket ("with
the optimal learning rate" the ticket's init gives no gain) asked of this study's lr grid.

Per arm and cell (net, plan, round) the lr is chosen on VALIDATION accuracy only, as the highest
mean over seeds (one choice per cell, not per seed, so the choice does not ride on one seed's
luck); the test accuracy is read afterwards, for the chosen lr only. Lottery at its lr and
reinit at its own are then paired by seed (the same seed shares θ0 and the data order at every
lr) and tested as the fixed-lr comparisons are: paired t, Holm over the cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import CONDITION, bootstrap_interval, decide, t_interval

VALIDATION = "best_val_acc"
"""The selection metric: the best validation accuracy of a run (the tuning objective too)."""
CELL = [c for c in CONDITION if c != "lr"]
"""One lr choice per arm and value of these."""
COLUMNS = [*CELL, "comparison", "lr_a", "lr_b", "n", "mean_a", "mean_b", "mean", "t_low",
           "t_high", "boot_low", "boot_high", "p", "remaining_pct", "p_holm", "verdict"]


def choose_lr(frame: pd.DataFrame, arm: str) -> pd.DataFrame:
    """Per CELL: `arm`'s lr with the highest mean VALIDATION accuracy over seeds (ties: the
    smaller lr), beside that mean. Reads no test metric."""
    runs = frame[(frame.arm == arm) & (frame["round"] > 0)].dropna(subset=[VALIDATION])
    if runs.empty:
        return pd.DataFrame(columns=[*CELL, "lr", "val"])
    means = runs.groupby([*CELL, "lr"], dropna=False)[VALIDATION].mean().rename("val")
    means = means.reset_index().sort_values([*CELL, "val", "lr"],
                                            ascending=[True] * len(CELL) + [False, True])
    return means.drop_duplicates(CELL).reset_index(drop=True)


def best_vs_best(frame: pd.DataFrame, a: str = "lottery", b: str = "reinit",
                 metric: str = "final_test_acc") -> pd.DataFrame | str:
    """A at its best lr minus B at its best lr per CELL, paired by seed; or why there is
    nothing to compare (one learning rate, or an arm missing)."""
    if frame.lr.nunique() < 2:
        return "a single learning rate: nothing to choose from"
    chosen = {arm: choose_lr(frame, arm) for arm in (a, b)}
    if any(t.empty for t in chosen.values()):
        return f"no {a} and {b} runs to choose a learning rate for"
    sides = []
    for arm, suffix in ((a, "_a"), (b, "_b")):
        runs = frame[frame.arm == arm].merge(chosen[arm][[*CELL, "lr"]], on=[*CELL, "lr"])
        sides.append(runs[[*CELL, "seed", "lr", metric, "remaining_pct"]].rename(
            columns={"lr": f"lr{suffix}", metric: f"acc{suffix}",
                     "remaining_pct": f"remaining{suffix}"}))
    pairs = sides[0].merge(sides[1], on=[*CELL, "seed"]).dropna(subset=["acc_a", "acc_b"])
    if pairs.empty:
        return f"no seed has both {a} and {b} at their chosen learning rates"
    rows = []
    for key, group in pairs.groupby(CELL, dropna=False, sort=True):
        diffs = (group.acc_a - group.acc_b).to_numpy(float)
        row = {**dict(zip(CELL, key)), "comparison": f"{a} vs {b}",
               "lr_a": group.lr_a.iloc[0], "lr_b": group.lr_b.iloc[0], "n": len(diffs),
               "mean_a": group.acc_a.mean(), "mean_b": group.acc_b.mean(),
               "mean": diffs.mean(), "remaining_pct": group.remaining_a.mean(),
               "t_low": np.nan, "t_high": np.nan, "boot_low": np.nan, "boot_high": np.nan,
               "p": np.nan}
        if len(diffs) >= 2:
            row["t_low"], row["t_high"], row["p"] = t_interval(diffs)
            row["boot_low"], row["boot_high"] = bootstrap_interval(diffs)
        rows.append(row)
    table = decide(pd.DataFrame(rows), a, b)
    return table[COLUMNS]


def beside_fixed(best: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """The best-vs-best table for display (each arm's lr chosen on validation), with the
    fixed-lr gap A − B and its verdict at each lr beside it; gaps in pp."""
    fixed = verdicts[verdicts.comparison == best.comparison.iloc[0]]
    shown = best[[c for c in CELL if best[c].nunique() > 1 or c in ("width", "granularity",
                                                                      "round")]].copy()
    shown["remaining %"] = best.remaining_pct.round(1)
    a, b = best.comparison.iloc[0].split(" vs ")
    shown[f"{a} lr"], shown[f"{b} lr"] = best.lr_a, best.lr_b
    shown["best−best pp"] = best["mean"] * 100
    shown["95% t interval"] = [f"[{lo * 100:+.2f}, {hi * 100:+.2f}]" if np.isfinite(lo) else "–"
                               for lo, hi in zip(best.t_low, best.t_high)]
    shown["Holm p"], shown["verdict"] = best.p_holm, best.verdict
    for lr in sorted(fixed.lr.unique()):
        at = fixed[fixed.lr == lr].set_index(CELL)
        index = pd.MultiIndex.from_frame(best[CELL])
        shown[f"lr {lr:g}: A−B pp"] = at["mean"].reindex(index).to_numpy() * 100
        shown[f"lr {lr:g}: verdict"] = at.verdict.reindex(index).fillna("–").to_numpy()
    return shown
