"""The answer in words, generated from the numbers: where the lottery effect is present (widths,
weights remaining, learning rates, granularity), how it moves with width (a test of its own,
`analysis.trend`), what the pooled tests, the best-lr comparison, the power and the
prune-big/train-small comparison at equal size add. One paragraph, placed at the top of the
report; every sentence names the table of the report (and its row) it rests on, and claims no
more than that row's test: "none detected" only where the pooled test agrees, a crossing only
with significant measured points on both sides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.style import rank
from analysis.trend import sentence

TRAIN_SMALL_AHEAD = "train small"
"""`scaling.crossings`' `ahead_above` when the small dense nets are ahead above N*."""


def _widths(values) -> str:
    return ", ".join(f"{w:g}" for w in sorted(values))


def _pct(value: float) -> str:
    return f"{value:.3g}%"


def region(cells: pd.DataFrame) -> list[str]:
    """A sentence per (granularity, lr) with an effect: per group of widths sharing one range,
    the weights remaining from the densest to the sparsest cell with an effect, and the gaps."""
    lines = []
    hits = cells[cells.effect]
    for (gran, lr), part in sorted(hits.groupby(["granularity", "lr"]),
                                   key=lambda g: (rank("granularity", g[0][0]), g[0][1])):
        ranges: dict[tuple[float, float], list[float]] = {}
        for width, mine in part.groupby("width"):
            ranges.setdefault((mine.remaining_pct.max(), mine.remaining_pct.min()),
                              []).append(width)
        spans = [f"at width{'s' if len(ws) > 1 else ''} {_widths(ws)} "
                 + (f"at {_pct(top)} remaining" if np.isclose(top, bottom) else
                    f"from {_pct(top)} down to {_pct(bottom)} remaining")
                 for (top, bottom), ws in sorted(ranges.items(), key=lambda r: min(r[1]))]
        low, high = part["mean"].min() * 100, part["mean"].max() * 100
        lines.append(f"{gran} at lr {lr:g}: {'; '.join(spans)} (gaps {low:+.1f} to "
                     f"{high:+.1f} pp)")
    return lines


def onsets(cells: pd.DataFrame) -> list[str]:
    """Per (granularity, lr) with an effect somewhere: the first IMP round with an effect at
    each width, compared by round (every width shares the mask schedule; remaining % differs
    between widths only by the output layer's share). A description, not a test: the trend
    with width is `analysis.trend`'s."""
    lines = []
    for (gran, lr), part in cells.groupby(["granularity", "lr"]):
        if not part.effect.any() or part.width.nunique() < 2:
            continue
        first = part[part.effect].groupby("width")["round"].min()
        path = ", ".join(f"width {w:g}: " + (f"round {int(first[w])}" if w in first.index
                                              else "none")
                         for w in sorted(part.width.unique()))
        lines.append(f"{gran}, lr {lr:g}: first round with an effect, {path} "
                     f"[table verdicts: lottery vs reinit, {gran}, lr {lr:g}]")
    return lines


def _pooled_at(pooled: pd.DataFrame, gran: str, lr: float, widths=None) -> pd.DataFrame:
    rows = pooled[(pooled.granularity == gran) & (pooled.lr == lr)]
    return rows if widths is None else rows[rows.width.isin(widths)]


def absent(cells: pd.DataFrame, pooled: pd.DataFrame) -> list[str]:
    """Where no single cell shows the effect, in words the pooled test agrees with: "none
    detected" only where the pooled test finds nothing either; otherwise "no single cell after
    Holm; pooled +x pp [..]"."""
    tested = cells[cells.verdict != "too few seeds"]
    lines = []
    for (gran, lr), part in sorted(tested.groupby(["granularity", "lr"]),
                                   key=lambda g: (rank("granularity", g[0][0]), g[0][1])):
        empty = sorted(w for w, mine in part.groupby("width") if not mine.effect.any())
        if not empty:
            continue
        where = f"{gran}, lr {lr:g}" + ("" if len(empty) == part.width.nunique() else
                                        f", width {_widths(empty)}")
        rows = _pooled_at(pooled, gran, lr, empty)
        sure = rows[rows.verdict == "effect: lottery better"]
        if sure.empty:
            lines.append(f"No effect detected at {where}, in any cell or pooled over rounds "
                         f"[tables verdicts and pooled: {gran}, lr {lr:g}]")
        else:
            gaps = "; ".join(f"width {r.width:g}: {r['mean'] * 100:+.1f} pp [{r.low * 100:+.1f}, "
                             f"{r.high * 100:+.1f}]" for _, r in sure.iterrows())
            lines.append(f"At {where} no single cell passes Holm, but pooled over rounds "
                         f"lottery is better ({gaps}) [table pooled: {gran}, lr {lr:g}]")
    return lines


def equal_size(cross: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """Prune big vs train small at equal nonzero weights: a crossing only where the measured
    points (lottery vs small_dense, paired by seed at each ticket's size) differ significantly
    on both sides of it; otherwise what the measured points say."""
    lines = []
    for _, r in cross.iterrows():
        at = f"{r.granularity}, lr {r.lr:g}"
        mine = rows[(rows.granularity == r.granularity) & (rows.lr == r.lr)
                    & (rows.width == r.width) & (rows["round"] > 0)]
        big = mine[mine.verdict == "effect: lottery better"]
        small = mine[mine.verdict == "effect: small_dense better"]
        tested = int((mine.verdict != "too few seeds").sum())
        ref = f"[tables crossing and verdicts: lottery vs small_dense, {at}, width {r.width:g}]"
        if np.isfinite(r.crossing):
            size = mine.nonzero_weights if "nonzero_weights" in mine else pd.Series(dtype=float)
            train_small_above = r.ahead_above == TRAIN_SMALL_AHEAD
            above, below = (small, big) if train_small_above else (big, small)
            sides = (len(size) and (above.nonzero_weights > r.crossing).any()
                     and (below.nonzero_weights < r.crossing).any())
            if sides:
                interval = (f" [{r.ci_low:,.0f}, {r.ci_high:,.0f}]" if np.isfinite(r.ci_low)
                            else "")
                lines.append(f"At equal nonzero weights ({at}), the pruned width-{r.width:g} "
                             f"lottery net and small dense nets cross at N* ≈ "
                             f"{r.crossing:,.0f}{interval}, with significant measured points "
                             f"on both sides; {r.ahead_above} is ahead above it {ref}")
                continue
        counts = (f"lottery better at {len(big)}, small_dense better at {len(small)} of "
                  f"{tested} measured sizes (paired by seed, Holm)")
        if big.empty and small.empty:
            lines.append(f"At equal nonzero weights ({at}, lottery at width {r.width:g} vs "
                         f"small dense nets): no significant difference at any measured size "
                         f"{ref}")
        elif np.isfinite(r.crossing):
            lines.append(f"At equal nonzero weights ({at}, width {r.width:g}): {counts}; the "
                         f"fitted curves cross at N* ≈ {r.crossing:,.0f}, but no significant "
                         f"measured point lies on both sides of it {ref}")
        else:
            lines.append(f"At equal nonzero weights ({at}, width {r.width:g}): {counts}, over "
                         f"{r.n_low:,.0f} to {r.n_high:,.0f} weights; the fitted curves do not "
                         f"cross {ref}")
    return lines


def paragraph(cells: pd.DataFrame, pooled: pd.DataFrame, best: pd.DataFrame | str,
              cross: pd.DataFrame, detectable: pd.DataFrame,
              trends: pd.DataFrame | None = None, sizes: pd.DataFrame | None = None,
              notes: list[str] | tuple[str, ...] = ()) -> str:
    """The verdict paragraph; each sentence names the table (and row) it rests on. `cells`:
    `effect_map.cells`; `pooled`: `power.pooled`; `best`: `best_lr.best_vs_best` (or why
    not); `cross`: `scaling.crossings`; `detectable`: the lottery-vs-reinit rows of
    `power.with_power`; `trends`: `trend.width_trend`; `sizes`: the lottery-vs-small_dense rows
    of the verdict table with `nonzero_weights`; `notes`: further sentences (convergence,
    budget check, early stopping, compute), already carrying their references."""
    tested = cells[cells.verdict != "too few seeds"]
    grans = sorted(cells.granularity.unique(), key=lambda g: rank("granularity", g))
    where = (f"widths {_widths(cells.width.unique())}, lr {_widths(cells.lr.unique())}, "
             f"{' and '.join(grans)}")
    lines = [f"Lottery effect (lottery beats reinit, paired by seed, Holm over the {len(tested)} "
             f"cells tested: {where}): present at {int(tested.effect.sum())} of {len(tested)} "
             "[table verdicts: lottery vs reinit]."]
    found = region(cells)
    if found:
        lines.append("Where: " + "; ".join(found) + " [table verdicts].")
    if trends is not None and len(trends):
        lines.append("With width: " + "; ".join(sentence(r) for _, r in trends.iterrows())
                     + ".")
    first = onsets(cells)
    if first:
        lines.append("Onsets, by round: " + "; ".join(first) + ".")
    reinit = tested[tested.verdict == "effect: reinit better"]
    if len(reinit):
        lines.append(f"Reinit beats lottery at {len(reinit)} cell{'s' * (len(reinit) > 1)} "
                     "[table verdicts].")
    lines += [line + "." for line in absent(cells, pooled)]
    if len(pooled):
        sure = pooled[pooled.verdict == "effect: lottery better"]
        lines.append(f"Pooled over rounds (one test per width, lr and granularity, Holm over "
                     f"{int((pooled.verdict != 'too few seeds').sum())}): lottery better at "
                     f"{len(sure)}" + (" (" + "; ".join(
                         f"{r.granularity}, lr {r.lr:g}, width {r.width:g}: {r['mean'] * 100:+.1f}"
                         " pp" for _, r in sure.iterrows()) + ")" if 0 < len(sure) <= 6 else "")
                     + " [table pooled].")
    if isinstance(best, pd.DataFrame) and len(best):
        wins = int((best.verdict == "effect: lottery better").sum())
        lost = int((best.verdict == "effect: reinit better").sum())
        lines.append(f"With each arm at its own learning rate (chosen on validation accuracy), "
                     f"lottery beats reinit at {wins} and reinit beats lottery at {lost} of "
                     f"{int((best.verdict != 'too few seeds').sum())} cells [table best_lr].")
    if len(detectable) and detectable.detectable.notna().any():
        lines.append(f"These seeds detect a gap of {np.nanmedian(detectable.detectable) * 100:.1f}"
                     f" pp per cell at 80% power (median; "
                     f"{np.nanmedian(detectable.detectable_holm) * 100:.1f} pp at Holm's "
                     f"strictest level)"
                     + (f", {np.nanmedian(pooled.detectable) * 100:.1f} pp pooled over rounds"
                        if len(pooled) and pooled.detectable.notna().any() else "")
                     + " [table verdicts, column detectable].")
    lines += [line + "." for line in equal_size(cross, sizes if sizes is not None
                                                 else pd.DataFrame(columns=cells.columns))]
    lines += list(notes)
    return " ".join(lines)


def early_stop(stops: pd.DataFrame) -> str:
    """LTH's second measure beside accuracy: the early-stopping iteration (the step of minimum
    validation loss), lottery − reinit per cell."""
    tested = stops[stops.verdict != "too few seeds"]
    later = int((tested.verdict == "effect: lottery better").sum())  # a larger step: later
    earlier = int((tested.verdict == "effect: reinit better").sum())
    return (f"Early-stopping iteration (LTH's second measure: the step of minimum validation "
            f"loss): lottery stops earlier than reinit at {earlier} and later at {later} of "
            f"{len(tested)} cells (paired by seed, Holm; median gap "
            f"{tested['mean'].median():+.0f} steps) [table early_stop].")
