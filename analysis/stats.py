"""Paired statistics by seed: mean difference, 95% intervals (bootstrap and t), Holm, verdicts.

Arms that share a seed share θ0, the data order and the mask, so each comparison is a paired
difference within (ticket, round, seed). docs/science.md: an effect is claimed only when the
Holm-adjusted paired t test rejects; fewer than 3 pairs is reported as too few seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from study.contract import REGISTRY, comparisons

COMPARISONS = comparisons()
"""(A, B) pairs tested as A - B, from the arms' registry entries (`baseline_for`, then
`tested_against`): lottery vs reinit, scratch_b (finetune too), small_dense (prune big vs
train small at equal weights, finetune too) and each net trained sparse from the start; each
at-init criterion vs random masks with ERK's, IMP's and its own layer densities (Frankle et
al. 2021's comparison)."""
INIT_CRITERIA = tuple(arm for arm, entry in REGISTRY.items() if entry.tested_against)
"""The at-init criteria; random_erk (and random_prune, and each one's shuffled mask) are the
random masks they are tested against."""
CONDITION = ["dataset", "model", "width", "lr", "warmup", "granularity", "scope", "criterion",
             "schedule", "retrain", "rewind_step", "round"]
"""One test per value of these: never pool two learning rates, plans or sparsities."""
PAIR = ["ticket", "round", "seed"]
MIN_SEEDS, ALPHA, RESAMPLES, LEVEL = 3, 0.05, 10_000, 0.95
BOOTSTRAP_SEED = 0
COLUMNS = [*CONDITION, "comparison", "a", "b", "n", "mean_a", "mean_b", "mean", "t_low",
           "t_high", "boot_low", "boot_high", "p", "remaining_pct", "p_holm", "verdict"]


def paired_differences(frame: pd.DataFrame, a: str, b: str,
                       metric: str = "final_test_acc") -> pd.DataFrame:
    """One row per matched pair: the condition, the seed, A, B, A - B and percent remaining."""
    left = frame[frame.arm == a][[*CONDITION, "ticket", "seed", metric, "remaining_pct"]]
    right = frame[frame.arm == b][[*PAIR, metric]]
    both = left.merge(right, on=PAIR, suffixes=("_a", "_b")).dropna(
        subset=[f"{metric}_a", f"{metric}_b"])
    both["diff"] = both[f"{metric}_a"] - both[f"{metric}_b"]
    return both


def bootstrap_interval(diffs: np.ndarray, seed: int = BOOTSTRAP_SEED,
                       resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap of the mean over seeds; seeded, and the values sorted first, so the
    interval depends only on the numbers, not on the order the store returned the runs in."""
    values = np.sort(np.asarray(diffs, dtype=float))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    tail = (1 - LEVEL) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def t_half_width(diffs: np.ndarray) -> np.ndarray:
    """The half-width of the LEVEL t interval of the mean along the last axis (2+ pairs); a
    2-D array gives one per row, for simulating many cells at once."""
    pairs = diffs.shape[-1]
    return sps.t.ppf(1 - (1 - LEVEL) / 2, pairs - 1) * diffs.std(-1, ddof=1) / np.sqrt(pairs)


def t_interval(diffs: np.ndarray) -> tuple[float, float, float]:
    """Paired t: (low, high, two-sided p) for the mean difference (needs 2+ pairs)."""
    mean, half = diffs.mean(), float(t_half_width(diffs))
    if half == 0:  # identical differences: the interval is the point, p is 0 unless it is 0
        return float(mean), float(mean), 0.0 if mean != 0 else 1.0
    return float(mean - half), float(mean + half), float(sps.ttest_1samp(diffs, 0.0).pvalue)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (the family: the conditions of one comparison)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    steps = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(steps)
    return adjusted


def compare(frame: pd.DataFrame, a: str, b: str, metric: str = "final_test_acc") -> pd.DataFrame:
    """Per condition: pairs, means, both intervals, p, Holm-adjusted p and the verdict of A - B.

    Holm corrects over the conditions with at least MIN_SEEDS pairs; the others are not tested.
    """
    pairs = paired_differences(frame, a, b, metric)
    if pairs.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for key, group in pairs.groupby(CONDITION, dropna=False, sort=True):
        diffs = group["diff"].to_numpy(dtype=float)
        row = dict(zip(CONDITION, key))
        row.update(comparison=f"{a} vs {b}", a=a, b=b, n=len(diffs),
                   mean_a=group[f"{metric}_a"].mean(), mean_b=group[f"{metric}_b"].mean(),
                   mean=diffs.mean(), remaining_pct=group["remaining_pct"].mean(),
                   t_low=np.nan, t_high=np.nan, boot_low=np.nan, boot_high=np.nan, p=np.nan)
        if len(diffs) >= 2:
            row["t_low"], row["t_high"], row["p"] = t_interval(diffs)
            row["boot_low"], row["boot_high"] = bootstrap_interval(diffs)
        rows.append(row)
    return decide(pd.DataFrame(rows), a, b)[COLUMNS]


def decide(table: pd.DataFrame, a: str, b: str, count: str = "n") -> pd.DataFrame:
    """`p_holm` (Holm over the rows with at least MIN_SEEDS in `count`) and `verdict` of A - B
    for a table of tests with columns `p`, `mean` and `count`."""
    tested = table[count] >= MIN_SEEDS
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = holm(table.loc[tested, "p"].to_numpy())
    table["verdict"] = [verdict(n, q, m, a, b) for n, q, m in
                        zip(table[count], table.p_holm, table["mean"])]
    return table


def verdict(n: int, p_holm: float, mean: float, a: str, b: str) -> str:
    """'effect: <winner> better', 'no effect detected' or 'too few seeds'."""
    if n < MIN_SEEDS:
        return "too few seeds"
    if p_holm < ALPHA:
        return f"effect: {a if mean > 0 else b} better"
    return "no effect detected"


def all_comparisons(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """`compare` for every pair in COMPARISONS that the experiment ran; one row per test."""
    tables = [compare(frame, a, b, metric) for a, b in COMPARISONS]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
