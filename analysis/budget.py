"""An effect or a speed? Whether each run converged, and whether a gap holds when the budget grows.

Sparse nets from a fresh init learn slower than tickets, so a budget that stops them early widens
lottery − reinit by itself. Two checks, neither enough alone:

- Convergence (`study.train.converged`): a run converged when its validation loss reached its
  minimum (LTH's early-stopping iteration) within the first 90% of its steps. Under a decaying
  schedule every run flattens as the lr vanishes, which this rule cannot see through.
- The budget check (`study.space.BudgetCheck`): some cells train again at a multiple of the
  budget (the dense net, its chain and reinit, same seeds). Per cell and seed, the gap's move
  is gap(longer) − gap(base), paired by seed (`budget_verdict`): *budget-stable* when the mean
  move stays within the base gap's own 95% interval; beyond it, *budget-dependent* when the
  move's own 95% interval excludes zero (reported as a speed, not as an effect size), and
  *unresolved* when it does not (these seeds cannot tell the move from noise).
"""

from __future__ import annotations

import pandas as pd

from analysis.stats import CONDITION, paired_differences, t_interval

SHARE = 0.8
"""The share of a cell's runs that must converge for its gap to count as an end accuracy."""
CHECKED = ("dense", "lottery", "reinit")
"""The runs the convergence rule is reported for: the lottery-effect test's and their source."""
CELL = ["granularity", "lr", "width", "round"]
BUDGET_COLUMNS = [*CONDITION, "steps", "longer_steps", "seeds", "remaining_pct", "gap",
                  "gap_low", "gap_high", "gap_longer", "move", "move_low", "move_high",
                  "budget"]


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs at the study's budget, the budget check's runs at other budgets): per dataset and
    model, the budget most runs trained with is the study's; a space without a check has one."""
    if frame.empty:
        return frame, frame.iloc[0:0]
    common = frame.groupby(["dataset", "model"]).steps.transform(
        lambda s: s.value_counts().idxmax())
    main = frame.steps == common
    return frame[main].copy(), frame[~main].copy()


def convergence(frame: pd.DataFrame) -> pd.DataFrame:
    """Per granularity, lr, width and arm (dense, lottery, reinit): runs, the share that
    converged, and the median step of the best validation accuracy as a share of training."""
    runs = frame[frame.arm.isin(CHECKED) & frame.converged.notna()].copy()
    if runs.empty:
        return pd.DataFrame()
    runs["dense_run"] = runs.arm == "dense"
    runs = runs.drop_duplicates(["run_id", "granularity"])  # a dense run, once per plan
    runs["best_at"] = runs.best_val_step / runs.steps.where(runs.steps > 0)
    return (runs.groupby(["granularity", "lr", "width", "arm"], sort=True)
            .agg(runs=("converged", "size"), converged=("converged", "mean"),
                 best_at=("best_at", "median")).reset_index())


def per_lr(table: pd.DataFrame) -> pd.DataFrame:
    """Per lr and width: the share of dense, lottery and reinit runs that converged (every plan
    together), and whether it reaches SHARE."""
    if table.empty:
        return table
    out = (table.assign(hits=table.converged * table.runs)
           .groupby(["lr", "width"]).agg(runs=("runs", "sum"), hits=("hits", "sum"))
           .reset_index())
    out["converged"] = out.hits / out.runs
    out["enough"] = out.converged >= SHARE
    return out.drop(columns="hits")


def check(main: pd.DataFrame, longer: pd.DataFrame, metric: str = "final_test_acc",
          a: str = "lottery", b: str = "reinit") -> pd.DataFrame:
    """One row per checked cell and longer budget: the base gap A − B with its 95% t interval,
    the gap at the longer budget, its move (paired by seed, t interval) and `stable`."""
    if longer.empty:
        return pd.DataFrame(columns=BUDGET_COLUMNS)
    base = paired_differences(main, a, b, metric)
    more = paired_differences(longer, a, b, metric).merge(
        longer[longer.arm == a][["ticket", "round", "seed", "steps"]], on=["ticket", "round",
                                                                          "seed"])
    base = base.merge(main[main.arm == a][["ticket", "round", "seed", "steps"]],
                      on=["ticket", "round", "seed"])
    both = base.merge(more[[*CONDITION, "seed", "steps", "diff"]], on=[*CONDITION, "seed"],
                      suffixes=("", "_longer"))
    both = both[both["round"] > 0]
    rows = []
    for key, group in both.groupby([*CONDITION, "steps", "steps_longer"], sort=True):
        if len(group) < 2:
            continue
        gap, moved = group["diff"].to_numpy(float), (group.diff_longer - group["diff"]).to_numpy(
            float)
        low, high, _ = t_interval(gap)
        move_low, move_high, _ = t_interval(moved)
        rows.append({**dict(zip([*CONDITION, "steps", "longer_steps"], key)),
                     "seeds": len(group), "remaining_pct": group.remaining_pct.mean(),
                     "gap": gap.mean(), "gap_low": low, "gap_high": high,
                     "gap_longer": group.diff_longer.mean(), "move": moved.mean(),
                     "move_low": move_low, "move_high": move_high,
                     "budget": budget_verdict(moved.mean(), move_low, move_high,
                                              (high - low) / 2)})
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


def budget_verdict(move: float, move_low: float, move_high: float,
                   gap_half_width: float) -> str:
    """The budget rule. *stable*: the mean move stays within the base gap's own 95% interval
    (|move| <= its half-width). Beyond it, *dependent* when the move's own 95% interval
    excludes zero (a move the seeds see), *unresolved* when it does not: these seeds cannot
    tell the move from noise, so the gap is vouched for neither way. A gap measured precisely
    by chance has a narrow interval that seed noise in the longer run crosses: calling that
    dependent would flag noise, calling it stable would hide a real move."""
    if abs(move) <= gap_half_width:
        return "stable"
    return "dependent" if move_low > 0 or move_high < 0 else "unresolved"


def flags(cells: pd.DataFrame, frame: pd.DataFrame, checked: pd.DataFrame) -> pd.DataFrame:
    """The lottery-effect cells with `converged` (the share of their lottery and reinit runs
    that converged), `budget` (stable / dependent / unresolved / not checked) and `caution` (a
    gap there may be speed: fewer than SHARE converged, or not budget-stable)."""
    runs = frame[frame.arm.isin(["lottery", "reinit"])]
    share = runs.groupby(CONDITION, dropna=False).converged.mean().rename("converged")
    out = cells.merge(share.reset_index(), on=CONDITION, how="left")
    out["budget"] = "not checked"
    if len(checked):
        out = out.drop(columns="budget").merge(checked[[*CONDITION, "budget"]]
                                                .drop_duplicates(CONDITION),
                                                on=CONDITION, how="left")
        out["budget"] = out.budget.fillna("not checked")
    out["caution"] = (out.converged < SHARE) | out.budget.isin(["dependent", "unresolved"])
    return out


def convergence_sentence(table: pd.DataFrame) -> str | None:
    """How many runs converged per lr (the range over widths), naming the table."""
    lrs = per_lr(table)
    if lrs.empty:
        return None
    parts = []
    for lr, part in lrs.groupby("lr"):
        low, high = part.converged.min() * 100, part.converged.max() * 100
        span = f"{low:.0f}%" if round(low) == round(high) else f"{low:.0f}-{high:.0f}%"
        short = part[~part.enough]
        parts.append(f"at lr {lr:g}, {span} per width" + (
            "" if short.empty else " (under 80% at width " + ", ".join(
                f"{w:g}" for w in short.width) + ")"))
    return ("Convergence (minimum validation loss reached within the first 90% of the steps) "
            "of the dense, lottery and reinit runs: " + "; ".join(parts)
            + " [table convergence].")


def budget_sentence(checked: pd.DataFrame) -> str | None:
    """How far the gaps moved at the longer budget, and which did not hold."""
    if checked.empty:
        return None
    factor = float((checked.longer_steps / checked.steps).median())
    moved = checked.move * 100
    dependent = checked[checked.budget == "dependent"]
    unresolved = checked[checked.budget == "unresolved"]
    where = sorted({(g, lr, w) for g, lr, w in zip(checked.granularity, checked.lr,
                                                     checked.width)})
    scope = "; ".join(f"{g}, lr {lr:g}, width {w:g}" for g, lr, w in where)
    text = (f"Budget check ({scope}; {factor:g}x the steps): the lottery − reinit gap moved by "
            f"{moved.min():+.1f} to {moved.max():+.1f} pp (mean {moved.mean():+.1f}); ")
    stable = int((checked.budget == "stable").sum())
    text += f"stable (within the base gap's own 95% interval) at {stable} of {len(checked)} cells"
    for part, words in ((dependent, "dependent (the move's own interval excludes zero: a speed "
                                    "as much as an end accuracy)"),
                        (unresolved, "unresolved (beyond the gap's interval, but the move's own "
                                     "interval includes zero: these seeds cannot tell)")):
        if len(part):
            text += f"; {words} at {len(part)}: " + ", ".join(
                f"{r.granularity} lr {r.lr:g} w {r.width:g} r{int(r['round'])} "
                f"({r.move * 100:+.1f} pp)" for _, r in part.iterrows())
    return text + " [table budget_check]."


def caution_sentence(flagged: pd.DataFrame) -> str | None:
    """Which effect cells carry a caution (not converged or budget-dependent)."""
    hits = flagged[flagged.effect]
    if hits.empty or (hits.converged.isna().all() and (hits.budget == "not checked").all()):
        return None  # nothing recorded to judge by (runs from before convergence flags)
    warned = hits[hits.caution]
    if warned.empty:
        if hits.converged.isna().any():
            return None
        return (f"Every one of the {len(hits)} cells with an effect converged (at least 80% of "
                "its lottery and reinit runs) and none was found other than budget-stable "
                "[table effect_cells].")
    return (f"At {len(warned)} of the {len(hits)} cells with an effect, fewer than 80% of the "
            "runs converged or the budget check did not find the gap stable: there a gap may be "
            "speed, not "
            "end accuracy (marked in its column caution) [table effect_cells].")
