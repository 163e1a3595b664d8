"""Paired statistics by seed: mean difference, 95% intervals (bootstrap and t), Holm, verdicts.

Arms that share a seed share θ0, the data order and the mask, so each comparison is a paired
difference within (ticket, round, seed). SCIENCE.md: an effect is claimed only when the
Holm-adjusted test rejects; fewer than 3 seeds is reported as too few.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

COMPARISONS = [("lottery", "reinit"), ("lottery", "scratch_b"), ("finetune", "scratch_b"),
               ("lottery", "small_dense"), ("finetune", "small_dense")]
CONDITION = ["dataset", "model", "width", "lr", "warmup", "granularity", "scope", "criterion",
             "schedule", "rewind_step", "round"]
PAIR = ["ticket", "round", "seed"]
MIN_SEEDS, ALPHA, RESAMPLES = 3, 0.05, 10_000


def paired_differences(frame: pd.DataFrame, a: str, b: str,
                       metric: str = "final_test_acc") -> pd.DataFrame:
    """One row per matched pair: the condition, the seed, A - B, and percent remaining."""
    left = frame[frame.arm == a][CONDITION + PAIR[:1] + ["seed", metric, "remaining_pct"]]
    right = frame[frame.arm == b][PAIR + [metric]]
    both = left.merge(right, on=PAIR, suffixes=("_a", "_b")).dropna(
        subset=[f"{metric}_a", f"{metric}_b"])
    both["diff"] = both[f"{metric}_a"] - both[f"{metric}_b"]
    return both


def bootstrap_interval(diffs: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap of the mean over seeds (seeded: the same numbers every time)."""
    rng = np.random.default_rng(seed)
    means = rng.choice(diffs, size=(RESAMPLES, len(diffs)), replace=True).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def t_interval(diffs: np.ndarray) -> tuple[float, float, float]:
    """Paired t: (low, high, p) for the mean difference."""
    mean, sem = diffs.mean(), diffs.std(ddof=1) / np.sqrt(len(diffs))
    if sem == 0:
        return float(mean), float(mean), 0.0 if mean != 0 else 1.0
    half = sps.t.ppf(0.975, len(diffs) - 1) * sem
    return float(mean - half), float(mean + half), float(sps.ttest_1samp(diffs, 0.0).pvalue)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family: the conditions of one comparison)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def compare(frame: pd.DataFrame, a: str, b: str, metric: str = "final_test_acc") -> pd.DataFrame:
    """Per condition: n, mean, intervals, p, Holm-adjusted p and the verdict for A vs B."""
    pairs = paired_differences(frame, a, b, metric)
    if pairs.empty:
        return pd.DataFrame()
    rows = []
    for key, group in pairs.groupby(CONDITION, dropna=False):
        diffs = group["diff"].to_numpy(dtype=float)
        row = dict(zip(CONDITION, key, strict=True))
        row.update(comparison=f"{a} vs {b}", a=a, b=b, n=len(diffs), mean=diffs.mean(),
                   remaining_pct=group["remaining_pct"].mean())
        if len(diffs) >= 2:
            row["t_low"], row["t_high"], row["p"] = t_interval(diffs)
            row["boot_low"], row["boot_high"] = bootstrap_interval(diffs)
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("t_low", "t_high", "p", "boot_low", "boot_high"):
        if col not in table:
            table[col] = np.nan
    testable = table["n"] >= MIN_SEEDS
    table["p_holm"] = np.nan
    if testable.any():
        table.loc[testable, "p_holm"] = holm(table.loc[testable, "p"].fillna(1.0).to_numpy())
    table["verdict"] = [_verdict(r, a, b) for r in table.itertuples()]
    return table


def _verdict(row, a: str, b: str) -> str:
    if row.n < MIN_SEEDS:
        return "too few seeds"
    if row.p_holm < ALPHA:
        return f"effect: {a if row.mean > 0 else b} better"
    return "no effect detected"


def all_comparisons(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    tables = [compare(frame, a, b, metric) for a, b in COMPARISONS]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
