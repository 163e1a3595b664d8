"""Train small without the big net: does a net trained sparse from the start reach IMP?

Two families answer "train small" without ever training the big net: masks chosen at θ0 (snip,
grasp, synflow, random_erk) and sparse training whose mask moves (set, rigl, and their Scratch-B
budgets). Every one of them trains at the nonzero count of an IMP round, on the same seeds and
data order, so `lottery vs X` (analysis.stats.COMPARISONS) is a paired test per cell. This
module reads those verdict rows and says, in words, where X reaches IMP's accuracy (the
Holm-corrected test does not find lottery better) and whether any at-init criterion beats a
random mask with ERK's, IMP's or its own layer densities (Frankle et al. 2021: none does);
it draws the effect map of lottery − X for the strongest arm of each family and accuracy
against nonzero weights for every arm.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.stats import COMPARISONS, INIT_CRITERIA, MIN_SEEDS
from analysis.style import color, count_label, describe, facets, label, varying
from study.contract import AT_INIT_ARMS, SPARSE_ARMS

FAMILIES = {"at-init": AT_INIT_ARMS, "dynamic": SPARSE_ARMS}
"""The two families of the train-small question, by the arms' registry families."""
BESIDE = ("lottery", "reinit", "random_prune", "small_dense")
"""Arms drawn beside the train-small family in the accuracy-vs-nonzero-weights figure."""
LOTTERY_BETTER = "effect: lottery better"


def present(frame: pd.DataFrame) -> list[str]:
    """The train-small arms (ablations included) the study ran, in registry order."""
    ran = set(frame.arm)
    base = [a for arms in FAMILIES.values() for a in arms if a in ran]
    return base + sorted(a for a in ran if "+" in a and a.split("+")[0] in AT_INIT_ARMS)


def strongest(frame: pd.DataFrame, family: str, metric: str = "final_test_acc") -> str | None:
    """The family's arm with the highest mean accuracy over the pruned cells it ran (its own
    ablations not counted); None if the study ran none of them."""
    runs = frame[frame.arm.isin(FAMILIES[family]) & (frame["round"] > 0)]
    if runs.empty:
        return None
    means = runs.groupby("arm")[metric].mean()
    return str(means.idxmax())


def _cells(rows: pd.DataFrame) -> str:
    """'lr 0.1: width 2 at 50%, 25%; lr 0.01: width 1 at 6.2%' for a set of verdict rows."""
    parts = []
    for lr, by_lr in sorted(rows.groupby("lr"), key=lambda g: -g[0]):
        widths = []
        for width, mine in sorted(by_lr.groupby("width")):
            pcts = ", ".join(f"{p:.3g}%" for p in sorted(mine.remaining_pct, reverse=True))
            widths.append(f"width {width:g} at {pcts}")
        parts.append(f"lr {lr:g}: " + "; ".join(widths))
    return "; ".join(parts)


def reach(verdicts: pd.DataFrame, arm: str) -> pd.DataFrame:
    """The tested `lottery vs arm` rows of pruned rounds, with `reaches`: the Holm-corrected
    paired test does not find IMP (lottery) better."""
    rows = verdicts[(verdicts.comparison == f"lottery vs {arm}") & (verdicts["round"] > 0)]
    rows = rows[rows.verdict != "too few seeds"]
    return rows.assign(reaches=rows.verdict != LOTTERY_BETTER,
                       beats=rows.verdict == f"effect: {arm} better")


def reach_sentence(verdicts: pd.DataFrame, arm: str) -> str | None:
    """Where `arm` reaches IMP's accuracy, in words; None if no cell was tested."""
    rows = reach(verdicts, arm)
    if rows.empty:
        ran = verdicts[(verdicts.comparison == f"lottery vs {arm}") & (verdicts["round"] > 0)]
        if ran.empty:
            return None
        return (f"{label(arm)}: too few seeds to test against IMP in any cell (at most "
                f"{int(ran.n.max())} pair{'s' if ran.n.max() != 1 else ''}; {MIN_SEEDS} "
                "needed).")
    hits, n = rows[rows.reaches], len(rows)
    if hits.empty:
        gap = rows["mean"].mean() * 100
        return (f"{label(arm)} never reaches IMP's accuracy: lottery is better in all {n} "
                f"tested cells (by {gap:.1f} pp on average).")
    beats = rows[rows.beats]
    tail = (f"; it beats IMP in {len(beats)} of them ({_cells(beats)})" if len(beats) else "")
    if "detectable_holm" in hits and np.isfinite(hits.detectable_holm).any():
        tail += (f" (a gap under {np.nanmedian(hits.detectable_holm) * 100:.1f} pp, the median "
                 "detectable at 80% power after Holm there, could go unseen)")
    return (f"{label(arm)} reaches IMP's accuracy (lottery − {arm} not significant after Holm, "
            f"or {arm} better) in {len(hits)} of {n} tested cells: {_cells(hits)}{tail}.")


def random_sentence(verdicts: pd.DataFrame) -> str | None:
    """Whether any at-init criterion beats a random mask: per criterion, the cells where it
    beats random_erk, random_prune and its own shuffled mask (the same layer densities)."""
    parts, beat_any, tested_any = [], False, False
    for criterion in INIT_CRITERIA:
        found = []
        for random in [b for a, b in COMPARISONS if a == criterion]:  # the random masks
            rows = verdicts[(verdicts.comparison == f"{criterion} vs {random}")
                            & (verdicts.verdict != "too few seeds")]
            if rows.empty:
                continue
            tested_any = True
            wins = rows[rows.verdict == f"effect: {criterion} better"]
            losses = rows[rows.verdict == f"effect: {random} better"]
            beat_any |= len(wins) > 0
            text = f"{random} in {len(wins)} of {len(rows)} cells"
            if len(wins):
                text += f" ({_cells(wins)})"
            if len(losses):
                text += f", loses in {len(losses)}"
            found.append(text)
        if found:
            parts.append(f"{criterion} beats " + ", ".join(found))
    if not tested_any:
        return None
    head = ("An at-init criterion beats a random mask somewhere" if beat_any else
            "No at-init criterion beats a random mask with the same layer densities in any "
            "tested cell")
    agree = ("unlike Frankle et al. (2021), who found none better than random with the same "
             "layer densities" if beat_any else "as Frankle et al. (2021) found")
    return f"{head} ({agree}): " + "; ".join(parts) + " (paired by seed, Holm over cells)."


def sentences(verdicts: pd.DataFrame, frame: pd.DataFrame,
              metric: str = "final_test_acc") -> list[str]:
    """The train-small answer: the strongest arm of each family, where each train-small arm
    reaches IMP's accuracy, and whether an at-init criterion beats random."""
    lines = []
    best = {f: strongest(frame, f, metric) for f in FAMILIES}
    named = [f"{b} ({f})" for f, b in best.items() if b is not None]
    if named:
        lines.append("Strongest of each family (highest mean accuracy over its cells): "
                     + ", ".join(named) + ".")
    ran = [a for a in present(frame) if "+" not in a]
    lines += [s for s in (reach_sentence(verdicts, a) for a in ran) if s]
    chance = random_sentence(verdicts)
    if chance:
        lines.append(chance)
    return lines


def answer(verdicts: pd.DataFrame, frame: pd.DataFrame,
           metric: str = "final_test_acc") -> str:
    """One sentence for the report's Answer: at which widths, densities and lrs the strongest
    net trained sparse from the start reaches IMP, and whether any at-init criterion beats
    random with the same layer densities."""
    parts, arms = [], []
    for family in FAMILIES:
        arm = strongest(frame, family, metric)
        rows = reach(verdicts, arm) if arm else pd.DataFrame()
        if rows.empty:
            continue
        arms.append(arm)
        hits = rows[rows.reaches]
        parts.append(f"{arm}, the strongest {family} arm, reaches IMP's accuracy "
                     + (f"in {len(hits)} of {len(rows)} cells ({_cells(hits)})" if len(hits)
                        else f"in none of {len(rows)} cells"))
    chance = random_sentence(verdicts)
    if chance:
        parts.append(chance[0].lower() + chance[1:].split(":")[0])
    if not parts:
        return ""
    return ("Trained sparse from the start, " + "; ".join(parts) + " [table verdicts: "
            + ", ".join(f"lottery vs {a}" for a in arms)
            + "; section Train small without the big net].")


def accuracy_vs_nonzero(frame: pd.DataFrame, metric: str = "final_test_acc"
                        ) -> plt.Figure | str:
    """Test accuracy (mean over seeds) against nonzero weights, a line per arm and width, a
    panel per learning rate: the train-small family beside IMP and its controls."""
    arms = present(frame)
    if not arms:
        return "no train-small arm was run"
    shown = frame[frame.arm.isin([*arms, *BESIDE]) & (frame.granularity == "unstructured")
                  & (frame["round"] > 0)].dropna(subset=[metric])
    keys = ["lr", *[k for k in varying(shown, ["dataset", "model", "warmup"])]]
    panels = facets(shown, keys)
    fig, axes = plt.subplots(1, len(panels), squeeze=False, sharey=True,
                             figsize=(4.6 * len(panels), 3.6))
    for ax, (values, part) in zip(axes[0], panels):
        for (arm, width), line in part.groupby(["arm", "width"]):
            mean = line.groupby("round").agg(n=("nonzero_weights", "mean"),
                                             acc=(metric, "mean")).sort_values("n")
            ax.plot(mean.n, mean.acc * 100, marker="o", ms=2.5, lw=1.0, color=color(arm),
                    alpha=0.35 + 0.65 * width / part.width.max(),
                    ls="--" if "+" in arm else "-",
                    label=label(arm) if width == part.width.max() else None)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(count_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("nonzero weights N (count)")
        ax.set_title(describe(values), fontsize=9)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=6, frameon=False, title="darker: wider net", title_fontsize=6,
                       loc="lower right")
    fig.tight_layout()
    return fig


def nonempty(frame: pd.DataFrame) -> bool:
    """Whether the study ran any train-small arm (its section is left out otherwise)."""
    return bool(present(frame)) and bool(np.any(frame["round"] > 0))
