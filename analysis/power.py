"""How much the seeds can see: the smallest gap each paired test detects at 80% power, and one
test per (condition, width) pooled over the IMP rounds.

Detectable gap: for n pairs whose differences have standard deviation s, the two-sided paired t
test at level α rejects a true mean gap δ with probability
P(|T| > t_crit), T ~ noncentral t(n − 1, δ·√n / s); the detectable gap is the δ where that is
80%. It is given at α = 0.05 and at α/m, the level Holm's first step asks of the strongest of m
tests, so a reader sees both what one test and what the corrected table can resolve.

Pooled over rounds: the gaps g of one (lr, granularity, width, ...) at every round and seed
follow g = β0 + β1·(x − x̄) + u_seed + e, x = ln(weights remaining), u a random seed intercept
(arms that share a seed share θ0 and the data order, so a seed can favour one arm at every
round). β1 is estimated within seeds (seed fixed effects: the seed intercepts cancel), with
N − S − 1 degrees of freedom for N pairs and S seeds; β0, the gap at the geometric-mean
density, is the mean over seeds of each seed's intercept, tested against its spread over seeds
with S − 1 degrees of freedom, the exact test under a random seed intercept. Pooling gains in
two ways even at S − 1 degrees of freedom: each seed's intercept averages its R rounds (the
round-to-round noise shrinks by R), and Holm corrects over widths x lrs x granularities instead
of x rounds as well.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from analysis.stats import ALPHA, CONDITION, LEVEL, MIN_SEEDS, decide, paired_differences

POWER = 0.8
GROUP = [c for c in CONDITION if c != "round"]
"""A pooled test per value of these: every round of one net, plan and learning rate."""
POOLED = [*GROUP, "comparison", "a", "b", "seeds", "pairs", "rounds", "mean", "low", "high",
          "p", "p_holm", "verdict", "slope", "slope_low", "slope_high", "slope_p",
          "per_halving", "detectable"]


def power_of(delta: float, n: int, sd: float, alpha: float = ALPHA) -> float:
    """Probability that the two-sided paired t test at `alpha` rejects a true gap `delta`."""
    df = n - 1
    critical = sps.t.ppf(1 - alpha / 2, df)
    shift = abs(delta) * np.sqrt(n) / sd
    upper = sps.nct.sf(critical, df, shift)
    if np.isnan(upper):  # scipy's noncentral t returns NaN at some points of its far tails
        upper = 1.0 - sps.nct.cdf(critical, df, shift)
    lower = sps.nct.cdf(-critical, df, shift)  # the wrong-sign tail: below alpha / 2
    return float(upper) + (0.0 if np.isnan(lower) else float(lower))


def detectable_gap(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest |gap| rejected with probability `power` (NaN below 2 pairs; 0 if sd is 0):
    `sd` times the standardised gap, which depends on n, alpha and power only."""
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    return float(sd * _standardised(int(n), float(alpha), float(power)))


@functools.lru_cache(maxsize=256)
def _standardised(n: int, alpha: float, power: float) -> float:
    high = 1.0
    while power_of(high, n, 1.0, alpha) < power:
        high *= 2
    return float(optimize.brentq(lambda d: power_of(d, n, 1.0, alpha) - power, 0.0, high,
                                 xtol=1e-12))


def with_power(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdict table plus `sd` of the paired differences and the gap detectable at 80% power
    at α (`detectable`) and at α/m (`detectable_holm`, m = tests in the comparison's family)."""
    table = verdicts.copy()
    critical = sps.t.ppf(1 - (1 - LEVEL) / 2, np.maximum(table.n - 1, 1))
    table["sd"] = np.where(table.n >= 2, (table.t_high - table.t_low) / 2 * np.sqrt(table.n)
                           / critical, np.nan)
    tested = table.groupby("comparison").n.transform(lambda n: int((n >= MIN_SEEDS).sum()))
    table["detectable"] = [detectable_gap(n, s) for n, s in zip(table.n, table.sd)]
    table["detectable_holm"] = [detectable_gap(n, s, ALPHA / max(m, 1)) for n, s, m in
                                zip(table.n, table.sd, tested)]
    return table


def pooled(frame: pd.DataFrame, a: str = "lottery", b: str = "reinit",
           metric: str = "final_test_acc") -> pd.DataFrame:
    """One pooled test of A − B per GROUP over its rounds (module docstring), Holm over the
    groups with MIN_SEEDS seeds or more; `per_halving` is the gap's change (in accuracy) each
    time the weights remaining halve, `detectable` the pooled test's 80%-power gap."""
    pairs = paired_differences(frame, a, b, metric)
    pairs = pairs[pairs["round"] > 0]
    if pairs.empty:
        return pd.DataFrame(columns=POOLED)
    rows = [_pooled_group(dict(zip(GROUP, key)), group)
            for key, group in pairs.groupby(GROUP, dropna=False, sort=True)]
    table = pd.DataFrame(rows)
    table["comparison"], table["a"], table["b"] = f"{a} vs {b}", a, b
    table = decide(table, a, b, count="seeds")
    return table[POOLED]


def _pooled_group(key: dict, group: pd.DataFrame) -> dict:
    """β0 and β1 of one group (module docstring)."""
    x = np.log(group.remaining_pct.to_numpy(float) / 100)
    g = group["diff"].to_numpy(float)
    seeds = group.seed.to_numpy()
    center = x.mean()
    xd, gd = _within(x, seeds), _within(g, seeds)
    sxx = float((xd**2).sum())
    slope = float((xd * gd).sum() / sxx) if sxx > 0 else 0.0
    df_within = len(g) - len(np.unique(seeds)) - 1
    row = {**key, "seeds": len(np.unique(seeds)), "pairs": len(g),
           "rounds": int(group["round"].nunique()), "slope": slope, "slope_low": np.nan,
           "slope_high": np.nan, "slope_p": np.nan}
    if sxx > 0 and df_within > 0:
        resid = gd - slope * xd
        se = np.sqrt((resid**2).sum() / df_within / sxx)
        half = sps.t.ppf(1 - (1 - LEVEL) / 2, df_within) * se
        row.update(slope_low=slope - half, slope_high=slope + half,
                   slope_p=float(2 * sps.t.sf(abs(slope) / se, df_within)) if se > 0 else
                   float(slope == 0))
    frame = pd.DataFrame({"seed": seeds, "g": g, "x": x})
    per_seed = frame.groupby("seed").agg(g=("g", "mean"), x=("x", "mean"))
    intercepts = (per_seed.g - slope * (per_seed.x - center)).to_numpy()
    mean = float(intercepts.mean())
    row.update(mean=mean, low=np.nan, high=np.nan, p=np.nan, detectable=np.nan,
               per_halving=-slope * np.log(2))
    if len(intercepts) >= 2:
        sd = float(intercepts.std(ddof=1))
        se = sd / np.sqrt(len(intercepts))
        half = sps.t.ppf(1 - (1 - LEVEL) / 2, len(intercepts) - 1) * se
        row.update(low=mean - half, high=mean + half, detectable=detectable_gap(
            len(intercepts), sd), p=float(sps.ttest_1samp(intercepts, 0.0).pvalue)
            if sd > 0 else float(mean == 0))
    return row


def _within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Values minus their group's mean (the seed fixed effects removed)."""
    means = pd.Series(values).groupby(groups).transform("mean").to_numpy()
    return values - means
