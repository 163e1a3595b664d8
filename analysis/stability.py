"""Stability to SGD noise beside the lottery effect (Frankle et al., ICML 2020).

An interpolation run holds the error barrier between two copies of θk trained under different
noise. Here the barriers are summarised over seeds per condition (figure: barrier vs rewind
step k per lr, width and net), and each subnetwork's barrier is set beside the lottery − reinit
gap of the same IMP round (paired by seed, `analysis.stats.compare`): the paper's claim is that
a ticket beats its reinitialisation only where it is stable, so a lower barrier should come
with a larger gap (a negative correlation across conditions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats import LEVEL, compare, t_interval
from analysis.style import plt
from study.contract import STABILITY_ARMS

ARMS = STABILITY_ARMS
STABLE = 0.02
"""Frankle et al.'s threshold: a net is stable when its error barrier is below 2%."""
MIN_CONDITIONS = 4  # a Fisher-z interval needs n > 3
KEYS = ["dataset", "model", "width", "lr", "warmup", "net", "scope", "criterion", "schedule",
        "retrain", "rewind_step", "round"]
"""A condition of the barrier: `analysis.stats.CONDITION` with the granularity read as the net
("dense" for the dense net's own stability at round 0, which has no pruning plan)."""


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every other run, the interpolation runs). The dense net's own stability (round 0)
    belongs to no IMP chain: the dense copies the loader made for those plans are dropped."""
    measured = frame.arm.isin(ARMS)
    chains = set(frame.loc[~measured & (frame.stage != "dense"), "ticket"])
    ghost = (frame.stage == "dense") & ~frame.ticket.isin(chains) & frame.ticket.isin(
        set(frame.loc[measured, "ticket"]))
    elsewhere = frame.run_id.isin(frame.loc[(frame.stage == "dense") & ~ghost, "run_id"])
    orphans = frame[ghost & ~elsewhere].drop_duplicates("run_id")  # a dense net with no chain
    rest = pd.concat([frame[~measured & ~ghost], orphans], ignore_index=True)
    return rest, frame[frame.arm == "interpolation"].copy()


def barriers(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per interpolation run: its condition, `net` ("dense" at round 0, else the
    granularity of the subnetwork) and both barriers."""
    out = lines.copy()
    dense = out["round"] == 0
    out["net"] = np.where(dense, "dense", out["granularity"])
    for key in ("scope", "criterion", "schedule", "retrain"):
        out[key] = np.where(dense, "none", out[key])
    return out


def barrier_vs_k(table: pd.DataFrame) -> pd.DataFrame:
    """Mean barrier over seeds per condition and k, with its 95% t interval (test split)."""
    rows = []
    for key, group in table.groupby(KEYS, sort=True):
        values = group["barrier_test"].dropna().to_numpy(dtype=float)
        low, high = t_interval(values)[:2] if len(values) >= 2 else (np.nan, np.nan)
        rows.append({**dict(zip(KEYS, key)), "n": len(values), "barrier_test": values.mean(),
                     "t_low": low, "t_high": high,
                     "barrier_val": group["barrier_val"].mean(),
                     "remaining_pct": group["remaining_pct"].mean()})
    return pd.DataFrame(rows)


def display(summary: pd.DataFrame) -> pd.DataFrame:
    """The barrier table in percentage points, one row per condition and k."""
    shown = summary[KEYS + ["n"]].copy()
    shown["remaining %"] = summary["remaining_pct"].round(1)
    shown["barrier test (pp)"] = [_interval(m, lo, hi) for m, lo, hi in zip(
        summary.barrier_test, summary.t_low, summary.t_high)]
    shown["barrier val (pp)"] = (100 * summary["barrier_val"]).round(2)
    shown["stable (< 2 pp)"] = np.where(summary["barrier_test"] < STABLE, "yes", "no")
    return shown


def figure_vs_k(summary: pd.DataFrame):
    """Barrier vs k: a panel per lr (columns) and net (rows), a line per width with its band."""
    if summary.empty:
        return "no interpolation runs"
    lrs, nets = sorted(summary.lr.unique()), _nets(summary.net)
    ks = sorted(summary.rewind_step.unique())
    fig, axes = plt.subplots(len(nets), len(lrs), figsize=(3.6 * len(lrs), 2.6 * len(nets)),
                             squeeze=False, sharex=True, sharey=True)
    widths = sorted(summary.width.unique())
    shades = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(widths)))
    for (i, net), (j, lr) in ((a, b) for a in enumerate(nets) for b in enumerate(lrs)):
        ax = axes[i, j]
        panel = summary[(summary.net == net) & (summary.lr == lr)]
        for width, shade in zip(widths, shades):
            line = panel[panel.width == width].sort_values("rewind_step")
            if line.empty:
                continue
            x = [ks.index(k) for k in line.rewind_step]
            ax.plot(x, 100 * line.barrier_test, "o-", color=shade, label=f"width {width:g}")
            ax.fill_between(x, 100 * line.t_low, 100 * line.t_high, color=shade, alpha=0.2,
                            lw=0)
        ax.axhline(100 * STABLE, color="grey", ls="--", lw=1)
        ax.set_title(f"{net}, lr {lr:g}", fontsize=9)
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        if i == len(nets) - 1:
            ax.set_xlabel("rewind step k")
        if j == 0:
            ax.set_ylabel("test error barrier (pp)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(widths), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def with_gap(summary: pd.DataFrame, frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each subnetwork's mean barrier beside the lottery − reinit gap of its IMP round."""
    gap = compare(frame, "lottery", "reinit", metric)
    subnets = summary[summary["round"] > 0]
    if gap.empty or subnets.empty:
        return pd.DataFrame()
    gap = gap.assign(net=gap["granularity"]).rename(columns={
        "n": "n_gap", "mean": "gap", "t_low": "gap_low", "t_high": "gap_high"})
    gap = gap[[*KEYS, "n_gap", "gap", "gap_low", "gap_high", "verdict"]]
    return subnets.merge(gap, on=KEYS).sort_values(KEYS).reset_index(drop=True)


def gap_display(joined: pd.DataFrame) -> pd.DataFrame:
    shown = joined[["dataset", "model", "width", "lr", "net", "rewind_step", "round"]].copy()
    shown["remaining %"] = joined["remaining_pct"].round(1)
    shown["barrier (pp)"] = (100 * joined["barrier_test"]).round(2)
    shown["lottery − reinit (pp)"] = [_interval(g, lo, hi) for g, lo, hi in zip(
        joined.gap, joined.gap_low, joined.gap_high)]
    shown["verdict"] = joined["verdict"]
    return shown


def correlation(joined: pd.DataFrame) -> dict[str, float]:
    """Pearson r between mean barrier and mean gap over conditions, with a Fisher-z 95%
    interval (NaN with fewer than MIN_CONDITIONS conditions or no spread)."""
    x, y = joined["barrier_test"].to_numpy(float), joined["gap"].to_numpy(float)
    n = len(x)
    if n < MIN_CONDITIONS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"n": n, "r": np.nan, "low": np.nan, "high": np.nan, "p": np.nan}
    r, p = sps.pearsonr(x, y)
    z, half = np.arctanh(np.clip(r, -0.999999, 0.999999)), sps.norm.ppf(
        1 - (1 - LEVEL) / 2) / np.sqrt(n - 3)
    return {"n": n, "r": float(r), "low": float(np.tanh(z - half)),
            "high": float(np.tanh(z + half)), "p": float(p)}


def sentences(joined: pd.DataFrame, corr: dict[str, float]) -> list[str]:
    """Whether stability predicts the lottery effect here, in words."""
    stable = joined["barrier_test"] < STABLE
    effect = joined["verdict"] == "effect: lottery better"
    counts = (f"{int((stable & effect).sum())} of {int(stable.sum())} stable subnetworks "
              f"(barrier < {100 * STABLE:g} pp) show the lottery effect (lottery beats reinit, "
              f"Holm-adjusted paired t test), against {int((~stable & effect).sum())} of "
              f"{int((~stable).sum())} unstable ones.")
    untested = int((joined["verdict"] == "too few seeds").sum())
    if untested:
        counts += (f" {untested} of {len(joined)} conditions have too few seeds for the paired "
                   "test and count as showing no effect.")
    if np.isnan(corr["r"]):
        why = (f"only {corr['n']} condition(s) with both measured" if corr["n"] < MIN_CONDITIONS
               else "the barrier or the gap does not vary across conditions")
        return [f"Whether stability predicts the lottery effect cannot be told in this study: "
                f"{why}.", counts]
    r = (f"r = {corr['r']:.2f}, 95% CI [{corr['low']:.2f}, {corr['high']:.2f}], "
         f"{corr['n']} conditions")
    if corr["high"] < 0:
        verdict = (f"Stability predicts the lottery effect in this study: the lower a "
                   f"subnetwork's error barrier, the larger its lottery − reinit gap ({r}).")
    elif corr["low"] > 0:
        verdict = (f"Stability does not predict the lottery effect in this study: the gap grows "
                   f"with the barrier ({r}), the opposite of Frankle et al.'s finding.")
    else:
        verdict = (f"Stability does not predict the lottery effect in this study: no "
                   f"correlation between barrier and lottery − reinit gap is detected ({r}).")
    if stable.all() or (~stable).all():
        verdict += (" Every subnetwork is " + ("stable" if stable.all() else "unstable")
                    + ", so stability cannot separate the conditions here.")
    return [verdict, counts]


def scatter(joined: pd.DataFrame, corr: dict[str, float]):
    """Barrier (x) vs lottery − reinit gap (y) per condition, 95% intervals on both."""
    if joined.empty:
        return "no IMP round with both an interpolation and a lottery − reinit comparison"
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    lrs = sorted(joined.lr.unique())
    shades = dict(zip(lrs, plt.get_cmap("tab10")(range(len(lrs)))))
    marks = dict(zip(_nets(joined.net), "os^Dv"))
    for (lr, net), part in joined.groupby(["lr", "net"]):
        xerr = np.abs(100 * (part[["t_low", "t_high"]].to_numpy().T
                             - part["barrier_test"].to_numpy()))
        yerr = np.abs(100 * (part[["gap_low", "gap_high"]].to_numpy().T
                             - part["gap"].to_numpy()))
        ax.errorbar(100 * part.barrier_test, 100 * part.gap, xerr=np.nan_to_num(xerr),
                    yerr=np.nan_to_num(yerr), fmt=marks[net], color=shades[lr], capsize=2,
                    label=f"lr {lr:g}, {net}")
    ax.axvline(100 * STABLE, color="grey", ls="--", lw=1)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("test error barrier (pp)")
    ax.set_ylabel("lottery − reinit (pp)")
    title = (f"r = {corr['r']:.2f} [{corr['low']:.2f}, {corr['high']:.2f}]"
             if np.isfinite(corr["r"]) else "correlation not estimable")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def _interval(mean: float, low: float, high: float) -> str:
    """'m [low, high]' in percentage points; the mean alone without an interval (one seed)."""
    if not np.isfinite(low):
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} [{100 * low:.2f}, {100 * high:.2f}]"


def _nets(values) -> list[str]:
    present = set(values)
    return [n for n in ("dense", "unstructured", "structured") if n in present] + sorted(
        present - {"dense", "unstructured", "structured"})
