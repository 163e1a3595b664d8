"""Does the lottery effect grow with width? One test per plan and learning rate.

The gaps g = A − B of one (lr, plan) at every width w, round r and seed s follow
g = α_r + β·log2(w) + u_s + e: round as a factor (every width shares the mask schedule, so
round r is the same number of pruning steps at every width), a seed intercept u_s (fixed
effects), and β the change of the gap per doubling of the width. β is estimated by least
squares with N − R − S + 1 − 1 degrees of freedom (N gaps, R rounds, S seeds) and tested
against 0; Holm corrects over the (lr, plan) groups. This is what "the effect grows with width"
rests on, not the onsets of significant cells, which a single cell missing Holm can break.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats import CONDITION, LEVEL, MIN_SEEDS, decide, paired_differences

GROUP = [c for c in CONDITION if c not in ("width", "round")]
"""One trend test per value of these: every width and round of one plan and learning rate."""
COLUMNS = [*GROUP, "comparison", "a", "b", "widths", "rounds", "seeds", "pairs", "mean",
           "slope", "low", "high", "p", "p_holm", "verdict"]


def width_trend(frame: pd.DataFrame, a: str = "lottery", b: str = "reinit",
                metric: str = "final_test_acc") -> pd.DataFrame:
    """Per GROUP with 2+ widths: β (accuracy per doubling of width), its 95% t interval, p,
    Holm's p over the groups and the verdict ('effect: <a> better' means the gap grows with
    width, '<b> better' that it shrinks)."""
    pairs = paired_differences(frame, a, b, metric)
    pairs = pairs[pairs["round"] > 0]
    rows = [_fit(dict(zip(GROUP, key)), group)
            for key, group in pairs.groupby(GROUP, dropna=False, sort=True)
            if group.width.nunique() >= 2]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.DataFrame(rows)
    table["comparison"], table["a"], table["b"] = f"{a} vs {b}", a, b
    decided = decide(table.assign(mean=table.slope), a, b, count="seeds")  # the slope's sign
    return decided.assign(mean=table["mean"])[COLUMNS]


def _fit(key: dict, group: pd.DataFrame) -> dict:
    x = np.log2(group.width.to_numpy(float))
    rounds = pd.get_dummies(group["round"], prefix="r", dtype=float)
    seeds = pd.get_dummies(group.seed, prefix="s", dtype=float).iloc[:, 1:]
    design = np.column_stack([x, rounds.to_numpy(), seeds.to_numpy()])
    g = group["diff"].to_numpy(float)
    row = {**key, "widths": group.width.nunique(), "rounds": group["round"].nunique(),
           "seeds": group.seed.nunique(), "pairs": len(g), "mean": float(g.mean()),
           "slope": np.nan, "low": np.nan, "high": np.nan, "p": np.nan}
    df = len(g) - np.linalg.matrix_rank(design)
    if df < 1 or row["seeds"] < MIN_SEEDS:
        return row
    beta, *_ = np.linalg.lstsq(design, g, rcond=None)
    resid = g - design @ beta
    cov = (resid @ resid / df) * np.linalg.pinv(design.T @ design)
    se = float(np.sqrt(cov[0, 0]))
    half = sps.t.ppf(1 - (1 - LEVEL) / 2, df) * se
    row.update(slope=float(beta[0]), low=float(beta[0] - half), high=float(beta[0] + half),
               p=float(2 * sps.t.sf(abs(beta[0]) / se, df)) if se > 0 else float(beta[0] == 0))
    return row


def sentence(row: pd.Series) -> str:
    """The trend of one group in words, naming its row of table width_trend."""
    where = f"{row.granularity}, lr {row.lr:g}"
    numbers = (f"{row.slope * 100:+.1f} pp per doubling of width [{row.low * 100:+.1f}, "
               f"{row.high * 100:+.1f}], Holm p {row.p_holm:.2g}")
    if row.verdict == f"effect: {row.a} better":
        text = f"the gap grows with width ({numbers})"
    elif row.verdict == f"effect: {row.b} better":
        text = f"the gap shrinks with width ({numbers})"
    elif row.verdict == "too few seeds":
        text = "too few seeds to test a trend with width"
    else:
        text = f"no significant trend with width ({numbers})"
    return f"{where}: {text} [table width_trend: {where}]"
