"""Matched trials: one run per (arm, ticket, round), dense baselines per ticket, unmatched runs.

A ticket id names the dense spec (seed included) and the pruning plan, so arms compared within
(ticket, round, seed) share θ0, the data order and the mask. This module checks that the runs
read back keep that promise and lists every run left without its partner.
"""

from __future__ import annotations

import pandas as pd

from analysis.stats import COMPARISONS, CONDITION
from study.contract import tag

CELL = ["arm", "ticket", "round", "seed", "noise_seed"]
"""One run per cell: the two copies of a stability analysis differ only by their noise seed."""
PLAN = ["granularity", "scope", "criterion", "schedule", "retrain", "rewind_step"]
NET = ["dataset", "model", "width", "lr", "warmup", "seed"]


def deduplicate(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the latest finished run per cell; the others come back with a reason.

    The same trial id twice means a store written by two launches at once; two ids in one cell
    mean two arm variants (e.g. different arm options) that a paired test cannot tell apart.
    """
    ordered = frame.sort_values("start_time", ascending=False)
    first = ~ordered.duplicated(CELL)
    dropped = ordered[~first].copy()
    dropped["reason"] = "duplicate"
    dropped["note"] = "another finished run of the same arm, ticket, round and seed is newer"
    return ordered[first].sort_index(), dropped


def ticket_problems(frame: pd.DataFrame) -> list[str]:
    """Every run of a ticket must share its dense spec and pruning plan (the contract)."""
    problems = []
    pruned = frame[frame.stage != "dense"]
    for key in NET + PLAN + ["dense_id"]:
        spread = pruned.groupby("ticket")[key].nunique()
        if (spread > 1).any():
            ticket = spread[spread > 1].index[0]
            values = sorted(map(str, pruned.loc[pruned.ticket == ticket, key].unique()))
            problems.append(f"ticket {ticket} mixes {tag(key)} values {', '.join(values)}: "
                            "its runs cannot be compared as matched trials")
    return problems


def expand_dense(frame: pd.DataFrame) -> pd.DataFrame:
    """Repeat each dense run as round 0 (100% remaining) of every ticket whose `dense_id` is
    its id; one dense run serves several tickets. Dense runs no ticket uses stay as they are."""
    dense = frame[frame.stage == "dense"]
    pruned = frame[frame.stage != "dense"]
    plans = pruned.drop_duplicates("ticket")[["ticket", "dense_id", *PLAN]]
    copies = dense.drop(columns=["ticket", *PLAN]).merge(
        plans.rename(columns={"dense_id": "id"}), on="id")
    alone = dense[~dense.id.isin(plans.dense_id)]
    return pd.concat([pruned, copies[frame.columns], alone], ignore_index=True)


def unmatched(frame: pd.DataFrame, unusable: pd.DataFrame,
              comparisons: list[tuple[str, str]] = COMPARISONS) -> pd.DataFrame:
    """Runs of a compared arm whose partner is missing at the same ticket, round and seed.

    Only conditions where the study ran both arms count: a study without small_dense has no
    unmatched lottery runs for that comparison. The partner's fate (diverged, failed, ...) is
    looked up among the runs not analysed.
    """
    fate = {(r.arm, r.ticket, r.round): r.reason for r in unusable.itertuples()}
    rows = []
    for a, b in comparisons if len(frame) else []:
        both = frame[frame.arm.isin([a, b])]
        arms_in = both.groupby(CONDITION, dropna=False).arm.transform("nunique")
        both = both[arms_in == 2]
        present = both.groupby(["ticket", "round", "seed"]).arm.transform("nunique")
        for run in both[present == 1].itertuples():
            partner = b if run.arm == a else a
            rows.append({"comparison": f"{a} vs {b}", "run_id": run.run_id, "arm": run.arm,
                         "lr": run.lr, "granularity": run.granularity, "round": run.round,
                         "seed": run.seed, "ticket": run.ticket, "missing": partner,
                         "partner": fate.get((partner, run.ticket, run.round), "not run")})
    columns = ["comparison", "run_id", "arm", "lr", "granularity", "round", "seed", "ticket",
               "missing", "partner"]
    return pd.DataFrame(rows, columns=columns)
