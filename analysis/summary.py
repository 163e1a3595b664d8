"""The statistics in words and tables: the verdict table, one sentence per condition, a headline
per comparison, and the provenance of the runs behind them."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis.stats import CONDITION, MIN_SEEDS
from analysis.style import describe, varying
from study.contract import SPACE, VERSION

PP = ["mean_a", "mean_b", "mean", "t_low", "t_high", "boot_low", "boot_high", "sd",
      "detectable", "detectable_holm"]
CONTEXT = ["dataset", "model", "width", "warmup", "scope", "criterion", "schedule", "retrain",
           "rewind_step"]


def verdict_numbers(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Every column, accuracies in percent and differences in percentage points (the CSV)."""
    table = verdicts.copy()
    pp = [c for c in PP if c in table]
    table[pp] = table[pp] * 100
    return table.rename(columns={"mean": "diff_pp", "mean_a": "a_pct", "mean_b": "b_pct"})


def verdict_table(verdicts: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(compact table, note naming the columns left out because they never vary)."""
    keep = [c for c in CONDITION if c in varying(verdicts, CONDITION) or c in ("lr", "round")]
    fixed = {c: verdicts[c].iloc[0] for c in CONDITION if c not in keep}
    rows = pd.DataFrame({"comparison": verdicts.comparison})
    for c in keep:
        rows[c] = verdicts[c]
    rows["remaining %"] = verdicts.remaining_pct.round(1)
    rows["pairs"] = verdicts.n
    rows["A %"], rows["B %"] = verdicts.mean_a * 100, verdicts.mean_b * 100
    rows["A−B pp"] = verdicts["mean"] * 100
    rows["95% t interval"] = _interval(verdicts.t_low, verdicts.t_high)
    rows["95% bootstrap"] = _interval(verdicts.boot_low, verdicts.boot_high)
    rows["p"], rows["Holm p"], rows["verdict"] = verdicts.p, verdicts.p_holm, verdicts.verdict
    if "detectable" in verdicts:
        rows["detectable pp (80%)"] = verdicts.detectable * 100
    note = "Same for every row: " + describe(fixed) + "." if fixed else ""
    if "detectable" in verdicts:
        note += (" detectable pp (80%): the smallest gap the paired t test at α = 0.05 finds "
                 "with 80% power, given these seeds and the spread of their differences.")
    return rows, note.strip()


def _interval(low: pd.Series, high: pd.Series) -> list[str]:
    return [f"[{a * 100:+.2f}, {b * 100:+.2f}]" if np.isfinite(a) else "–"
            for a, b in zip(low, high)]


def sentences(verdicts: pd.DataFrame) -> list[str]:
    """'At lr 0.01, unstructured, 20.0% remaining: lottery beats reinit by +2.1 pp [0.8, 3.4]
    (Holm p=0.01, 5 seeds).' for every condition, decided or not."""
    shown = [c for c in varying(verdicts, CONTEXT)  # not those granularity already implies
             if (verdicts.groupby("granularity")[c].nunique() > 1).any()]
    lines = []
    for r in verdicts.itertuples():
        where = "At " + describe({"lr": r.lr, "granularity": r.granularity,
                                  **{c: getattr(r, c) for c in shown}})
        where += f", {r.remaining_pct:.1f}% remaining (round {r.round})"
        if r.verdict == "too few seeds":
            lines.append(f"{where}: too few seeds to test {r.a} vs {r.b} ({r.n} pair"
                         f"{'s' if r.n != 1 else ''}; at least {MIN_SEEDS} needed).")
            continue
        tail = f"(Holm p={r.p_holm:.2g}, {r.n} seeds)"
        if r.verdict.startswith("effect"):
            win, lose, sign = (r.a, r.b, 1) if r.mean > 0 else (r.b, r.a, -1)
            low, high = sorted((sign * r.t_low * 100, sign * r.t_high * 100))
            lines.append(f"{where}: {win} beats {lose} by {sign * r.mean * 100:+.1f} pp "
                         f"[{low:.1f}, {high:.1f}] {tail}.")
        else:
            lines.append(f"{where}: no difference detected between {r.a} and {r.b}, "
                         f"{r.mean * 100:+.1f} pp [{r.t_low * 100:.1f}, {r.t_high * 100:.1f}] "
                         f"{tail}.")
    return lines


def headlines(verdicts: pd.DataFrame) -> list[str]:
    """Per comparison: at how many tested conditions each side wins."""
    lines = []
    for name, group in verdicts.groupby("comparison", sort=False):
        a, b = group.a.iloc[0], group.b.iloc[0]
        tested = group[group.verdict != "too few seeds"]
        wins_a = int((tested.verdict == f"effect: {a} better").sum())
        wins_b = int((tested.verdict == f"effect: {b} better").sum())
        text = (f"{name}: {a} better at {wins_a}, {b} better at {wins_b}, no effect detected "
                f"at {len(tested) - wins_a - wins_b} of {len(tested)} conditions tested")
        near = tested[~tested.verdict.str.startswith("effect")
                      & ((tested.t_low > 0) | (tested.t_high < 0))]
        if len(near):
            text += (f" ({len(near)} of those have an uncorrected 95% interval excluding zero, "
                     "not significant after Holm)")
        if len(tested) < len(group):
            text += f"; {len(group) - len(tested)} with too few seeds"
        lines.append(text + ".")
    if "lottery vs reinit" in set(verdicts.comparison):
        lottery = verdicts[(verdicts.comparison == "lottery vs reinit")
                           & (verdicts.verdict == "effect: lottery better")]
        where = sorted({describe({"lr": r.lr, "granularity": r.granularity})
                        for r in lottery.itertuples()})
        lines.append("Lottery effect present (lottery > reinit, Holm-adjusted) at: "
                     + ("; ".join(where) if where else "no condition") + ".")
    return lines


def provenance(experiment: str, uri: str, frame: pd.DataFrame, unusable: pd.DataFrame,
               unmatched: pd.DataFrame, launches: list, metric: str) -> list[str]:
    """Where the numbers come from and how many runs stand behind them."""
    counts = unusable.reason.value_counts().to_dict() if len(unusable) else {}
    spaces = sorted({r.data.tags.get(SPACE, "?") for r in launches}) or ["?"]
    versions = sorted({r.data.tags.get(VERSION, "?") for r in launches}
                      | set(frame.get("version", pd.Series(dtype=str)).dropna())) or ["?"]
    latest = max(launches, key=lambda r: r.info.start_time).info.run_id if launches else "none"
    used = frame.drop_duplicates("run_id")
    return [f"experiment: {experiment} (tracking store {re.sub(r'//[^/@]*@', '//', uri)})",
            f"search space: {', '.join(spaces)}; study package version: {', '.join(versions)}",
            f"launches: {len(launches)}; latest launch run: {latest}",
            f"metric compared: {metric} (accuracies shown in %, differences in pp)",
            f"runs analysed: {len(used)} finished ("
            + ", ".join(f"{k} {v}" for k, v in used.arm.value_counts().sort_index().items())
            + ")",
            "runs not analysed: " + ", ".join(
                f"{k} {counts.get(k, 0)}" for k in ("failed", "killed", "running", "diverged",
                                                     "skipped", "duplicate"))
            + "".join(f", {k} {v}" for k, v in counts.items() if k not in (
                "failed", "killed", "running", "diverged", "skipped", "duplicate")),
            f"unmatched runs (a compared arm without its partner): "
            f"{unmatched.run_id.nunique() if len(unmatched) else 0}"]


def unusable_table(unusable: pd.DataFrame) -> pd.DataFrame:
    cols = ["run_id", "id", "stage", "arm", "lr", "granularity", "round", "seed", "reason",
            "diverged_step", "skip_reason", "note"]
    return unusable[[c for c in cols if c in unusable]].fillna("")


POOLED_NOTE = ("gap = lottery − reinit at the geometric-mean density, a random seed intercept "
               "(exact t test on the seeds' intercepts, S − 1 df); per halving = the gap's "
               "change each time the weights remaining halve (within-seed slope on "
               "ln remaining); Holm over the rows.")


def pooled_table(pooled: pd.DataFrame) -> pd.DataFrame:
    """`power.pooled` for display: gaps and slopes in pp."""
    keep = [c for c in varying(pooled, CONDITION) if c != "round"]
    rows = pooled[[c for c in ["width", "lr", "granularity", *keep] if c in pooled]].copy()
    rows = rows.loc[:, ~rows.columns.duplicated()]
    rows["seeds"], rows["rounds"] = pooled.seeds, pooled.rounds
    rows["gap pp"] = pooled["mean"] * 100
    rows["95% t interval"] = _interval(pooled.low, pooled.high)
    rows["Holm p"], rows["verdict"] = pooled.p_holm, pooled.verdict
    rows["per halving pp"] = pooled.per_halving * 100
    rows["slope p"] = pooled.slope_p
    rows["detectable pp (80%)"] = pooled.detectable * 100
    return rows


LAW_NAMES = {"eps_up": "ε↑", "p": "p", "gamma": "γ", "psi": "ψ", "mu": "μ %", "sigma": "σ %",
             "extrapolation_mean_abs": "extrapolation mean abs δ %",
             "extrapolation_max_abs": "extrapolation max abs δ %", "held_out_width":
             "held-out width", "crossing": "N*", "ci_low": "N* low", "ci_high": "N* high",
             "resamples_crossing": "resamples crossing", "ahead_above": "ahead above N*",
             "n_low": "N from", "n_high": "N to", "n_min": "N from", "n_max": "N to"}
PERCENT = ("mu", "sigma", "extrapolation_mean_abs", "extrapolation_max_abs")


def law_table(table: pd.DataFrame) -> pd.DataFrame:
    """A law or crossing table for display: relative deviations in %, the constant columns
    that never vary dropped, readable names."""
    shown = table[[c for c in table if c not in CONTEXT or c in varying(table, CONTEXT)
                   or c == "width"]].copy()
    for c in PERCENT:
        if c in shown:
            shown[c] = shown[c] * 100
    return shown.rename(columns=LAW_NAMES)


def trend_table(trends: pd.DataFrame) -> pd.DataFrame:
    """`trend.width_trend` for display: the slope per doubling of width in pp."""
    keep = [c for c in varying(trends, CONDITION) if c not in ("lr", "granularity")]
    rows = trends[["granularity", "lr", *keep]].copy()
    rows["widths"], rows["rounds"], rows["seeds"] = trends.widths, trends.rounds, trends.seeds
    rows["mean gap pp"] = trends["mean"] * 100
    rows["slope pp per doubling"] = trends.slope * 100
    rows["95% t interval"] = _interval(trends.low, trends.high)
    rows["p"], rows["Holm p"] = trends.p, trends.p_holm
    rows["verdict"] = [{f"effect: {a} better": "the gap grows with width",
                        f"effect: {b} better": "the gap shrinks with width",
                        "no effect detected": "no trend detected"}.get(v, v)
                       for v, a, b in zip(trends.verdict, trends.a, trends.b)]
    return rows


def convergence_table(table: pd.DataFrame) -> pd.DataFrame:
    """`budget.convergence` for display: shares in %."""
    rows = table[["granularity", "lr", "width", "arm", "runs"]].copy()
    rows["converged %"] = table.converged * 100
    rows["best val at (share of steps)"] = table.best_at
    return rows


def budget_table(checked: pd.DataFrame) -> pd.DataFrame:
    """`budget.check` for display: gaps and moves in pp."""
    rows = checked[["granularity", "lr", "width", "round"]].copy()
    rows["remaining %"] = checked.remaining_pct.round(1)
    rows["steps"], rows["longer steps"] = checked.steps, checked.longer_steps
    rows["seeds"] = checked.seeds
    rows["gap pp"] = checked.gap * 100
    rows["gap 95% t"] = _interval(checked.gap_low, checked.gap_high)
    rows["gap at longer pp"] = checked.gap_longer * 100
    rows["move pp"] = checked.move * 100
    rows["move 95% t"] = _interval(checked.move_low, checked.move_high)
    rows["budget"] = checked.budget
    return rows


def flags_table(flagged: pd.DataFrame) -> pd.DataFrame:
    """`budget.flags` for display: one row per lottery − reinit cell."""
    rows = flagged[["granularity", "lr", "width", "round"]].copy()
    rows["remaining %"] = flagged.remaining_pct.round(1)
    rows["gap pp"] = flagged["mean"] * 100
    rows["95% t interval"] = _interval(flagged.t_low, flagged.t_high)
    rows["Holm p"], rows["verdict"] = flagged.p_holm, flagged.verdict
    rows["converged %"] = flagged.converged * 100
    rows["budget"] = flagged.budget
    rows["caution"] = np.where(flagged.caution, "may be speed", "")
    return rows
