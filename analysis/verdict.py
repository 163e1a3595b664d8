"""The answer in words, generated from the numbers: where the lottery effect is present (widths,
weights remaining, learning rates, granularity), how it moves with width, what the pooled tests,
the best-lr comparison, the power and the prune-big/train-small crossing add. One paragraph,
placed at the top of the report; every number in it comes from a table of the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.style import rank


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


def trend(cells: pd.DataFrame) -> list[str]:
    """How the effect moves with width, per (granularity, lr) with an effect somewhere: does a
    wider net show it at lower density (its onset, the densest cell with an effect, falls), at
    higher density, at the same, or not at all (absent at the widest nets)?"""
    lines = []
    for (gran, lr), part in cells.groupby(["granularity", "lr"]):
        if not part.effect.any() or part.width.nunique() < 2:
            continue
        onset = part[part.effect].groupby("width").remaining_pct.max()
        widths = sorted(part.width.unique())
        missing = [w for w in widths if w not in onset.index]
        where = f"{gran}, lr {lr:g}"
        if missing and min(missing) > onset.index.max():
            lines.append(f"{where}: present up to width {onset.index.max():g}, not at all at "
                         f"width {_widths(missing)}")
            continue
        first, last = onset.iloc[0], onset.iloc[-1]
        path = " → ".join(f"{_pct(v)} (width {w:g})" for w, v in onset.items())
        if np.isclose(first, last) and np.allclose(onset, first):
            text = f"the effect starts at the same density at every width ({_pct(first)})"
        elif last < first and (np.diff(onset.to_numpy()) <= 1e-9).all():
            text = f"a wider net shows it only at lower density (onset {path})"
        elif last > first and (np.diff(onset.to_numpy()) >= -1e-9).all():
            text = f"a wider net shows it already at higher density (onset {path})"
        else:
            text = f"no monotone trend with width (onset {path})"
        if missing:
            text += f"; none detected at width {_widths(missing)}"
        lines.append(f"{where}: {text}")
    return lines


def paragraph(cells: pd.DataFrame, pooled: pd.DataFrame, best: pd.DataFrame | str,
              cross: pd.DataFrame, detectable: pd.DataFrame) -> str:
    """The verdict paragraph. `cells`: `effect_map.cells`; `pooled`: `power.pooled`; `best`:
    `best_lr.best_vs_best` (or why not); `cross`: `scaling.crossings`; `detectable`: the
    lottery-vs-reinit rows of `power.with_power`."""
    tested = cells[cells.verdict != "too few seeds"]
    grans = sorted(cells.granularity.unique(), key=lambda g: rank("granularity", g))
    where = (f"widths {_widths(cells.width.unique())}, lr {_widths(cells.lr.unique())}, "
             f"{' and '.join(grans)}")
    lines = [f"Lottery effect (lottery beats reinit, paired by seed, Holm over the {len(tested)} "
             f"cells tested: {where}): present at {int(tested.effect.sum())} of {len(tested)}."]
    found = region(cells)
    if found:
        lines.append("Where: " + "; ".join(found) + ".")
        moves = trend(cells)
        if moves:
            lines.append("With width: " + "; ".join(moves) + ".")
    reinit = tested[tested.verdict == "effect: reinit better"]
    if len(reinit):
        lines.append(f"Reinit beats lottery at {len(reinit)} cell{'s' * (len(reinit) > 1)}.")
    absent = sorted({(g, lr) for g, lr in zip(tested.granularity, tested.lr)}
                    - {(g, lr) for g, lr in zip(tested.granularity[tested.effect],
                                                tested.lr[tested.effect])},
                    key=lambda k: (rank("granularity", k[0]), k[1]))
    if absent:
        lines.append("No effect detected at " + "; ".join(f"{g}, lr {lr:g}" for g, lr in absent)
                     + ".")
    if len(pooled):
        sure = pooled[pooled.verdict == "effect: lottery better"]
        lines.append(f"Pooled over rounds (one test per width, lr and granularity, Holm over "
                     f"{int((pooled.verdict != 'too few seeds').sum())}): lottery better at "
                     f"{len(sure)}" + (" (" + "; ".join(
                         f"{r.granularity}, lr {r.lr:g}, width {r.width:g}: {r['mean'] * 100:+.1f}"
                         " pp" for _, r in sure.iterrows()) + ")" if 0 < len(sure) <= 6 else "")
                     + ".")
    if isinstance(best, pd.DataFrame) and len(best):
        wins = int((best.verdict == "effect: lottery better").sum())
        lost = int((best.verdict == "effect: reinit better").sum())
        lines.append(f"With each arm at its own learning rate (chosen on validation accuracy), "
                     f"lottery beats reinit at {wins} and reinit beats lottery at {lost} of "
                     f"{int((best.verdict != 'too few seeds').sum())} cells.")
    if len(detectable) and detectable.detectable.notna().any():
        lines.append(f"These seeds detect a gap of {np.nanmedian(detectable.detectable) * 100:.1f}"
                     f" pp per cell at 80% power (median; "
                     f"{np.nanmedian(detectable.detectable_holm) * 100:.1f} pp at Holm's "
                     f"strictest level)"
                     + (f", {np.nanmedian(pooled.detectable) * 100:.1f} pp pooled over rounds"
                        if len(pooled) and pooled.detectable.notna().any() else "") + ".")
    for _, r in cross.iterrows():
        at = f"{r.granularity}, lr {r.lr:g}"
        if np.isfinite(r.crossing):
            interval = (f" [{r.ci_low:,.0f}, {r.ci_high:,.0f}]" if np.isfinite(r.ci_low) else "")
            lines.append(f"At equal nonzero weights ({at}), the pruned width-{r.width:g} lottery "
                         f"net and small dense nets cross at N* ≈ {r.crossing:,.0f}{interval}; "
                         f"{r.ahead_above} is ahead above it.")
        else:
            lines.append(f"At equal nonzero weights ({at}), {r.ahead_above} is ahead over the "
                         f"whole range compared ({r.n_low:,.0f} to {r.n_high:,.0f} weights).")
    return " ".join(lines)
