"""The scaling question: how each arm's error moves with width and density, and at equal nonzero
weights where pruning a big net and training a small one cross.

- Each arm trained on a mask (lottery, reinit, Scratch-B, ...) gets Rosenfeld et al.'s joint law
  (`analysis.laws`) per panel (plan x learning rate), fitted to its mean error over seeds at
  every (width, round), with ε_np the dense net's mean error at each width. The fit's μ and σ of
  the relative deviation say how well one law describes every width; the extrapolation check
  refits without the largest width and reports the relative error of predicting it.
- The train-small nets get the dense law err = a·N^-b + c: the dense net at each width (per
  learning rate) and small_dense at each size (per panel), where 4+ sizes exist.
- The crossing: prune big = lottery at the largest width, its law evaluated along its own
  densities as a function of N = d·(the dense net's weights: a structured net's own total is
  the shrunk net's); train small = small_dense's dense law;
  N* is where the two fitted errors are equal, inside the range both cover. The interval
  resamples seeds (the same seeds for every arm, so the pairing is kept) and refits both laws.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.laws import (
    MIN_POINTS,
    ROSENFELD,
    crossing,
    dense_law,
    fit_dense,
    fit_rosenfeld,
    rosenfeld,
)
from analysis.stats import LEVEL
from analysis.style import (
    PLAN_KEYS,
    REGIME_KEYS,
    UNTRAINED,
    color,
    count_label,
    describe,
    facet_keys,
    facets,
    label,
)

PRUNE_BIG, TRAIN_SMALL = "lottery", "small_dense"
NOT_ON_A_MASK = {"dense", TRAIN_SMALL, *UNTRAINED}
RESAMPLES = 200
BOOTSTRAP_SEED = 0


def panels(frame: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """(values, part) per plan and learning rate (and what else varies) with 2+ widths."""
    keys = facet_keys(frame, "granularity", PLAN_KEYS)
    keys += facet_keys(frame, "lr", ["dataset", "model", *REGIME_KEYS])
    return [(values, part) for values, part in facets(frame, keys) if part.width.nunique() > 1]


def _cells(part: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per arm, width and round: mean error over seeds, density, nonzero weights and the dense
    net's weights (nonzero / density: a structured net's own total is the shrunk net's)."""
    runs = part.drop_duplicates(["run_id", "arm", "round"]).dropna(subset=[metric])
    d = runs.remaining_pct / 100
    return runs.assign(err=1 - runs[metric], d=d, dense_n=runs.nonzero_weights / d).groupby(
        ["arm", "width", "round"]).agg(err=("err", "mean"), d=("d", "mean"),
                                       n=("nonzero_weights", "mean"),
                                       total=("dense_n", "mean"),
                                       seeds=("seed", "nunique")).reset_index()


def _law_points(cells: pd.DataFrame, arm: str) -> pd.DataFrame:
    """`arm`'s pruned cells with the dense error of their width (ε_np) beside them."""
    dense = dict(zip(cells.width[cells.arm == "dense"], cells.err[cells.arm == "dense"]))
    mine = cells[(cells.arm == arm).to_numpy() & (cells["round"] > 0).to_numpy()]
    mine = mine.assign(eps_np=[dense.get(w, np.nan) for w in mine.width])
    return mine[np.isfinite(mine.eps_np.to_numpy(float))]


def _fit(points: pd.DataFrame, start: dict | None = None):
    return fit_rosenfeld(points.eps_np, points.d, points.width, points.err, start)


def law_fits(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """One row per panel and mask-trained arm: the joint law's constants, μ and σ of the
    relative deviation over the fitted cells, and the extrapolation check (fit without the
    largest width, then the mean and largest |relative error| predicting that width)."""
    rows = []
    for values, part in panels(frame):
        cells = _cells(part, metric)
        for arm in sorted(set(cells.arm) - NOT_ON_A_MASK):
            points = _law_points(cells, arm)
            if points.width.nunique() < 2 or len(points) < MIN_POINTS["rosenfeld"]:
                continue
            fit = _fit(points)
            row = {**values, "arm": arm, **fit.params, "cells": len(points),
                   "widths": points.width.nunique(), "mu": fit.mu, "sigma": fit.sigma,
                   "held_out_width": np.nan, "extrapolation_mean_abs": np.nan,
                   "extrapolation_max_abs": np.nan}
            largest = points.width.max()
            train = points[points.width < largest]
            if train.width.nunique() >= 2 and len(train) >= MIN_POINTS["rosenfeld"]:
                small = _fit(train).params
                test = points[points.width == largest]
                error = np.abs(rosenfeld(test.eps_np, test.d, test.width, **small) / test.err
                               - 1)
                row.update(held_out_width=largest, extrapolation_mean_abs=float(error.mean()),
                           extrapolation_max_abs=float(error.max()))
            rows.append(row)
    return pd.DataFrame(rows)


def dense_fits(frame: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """err = a·N^-b + c for the dense net across widths (per learning rate and net) and for
    small_dense across its sizes (per panel), where 4+ sizes exist; μ, σ as for the law."""
    rows = []
    dense = frame[frame.arm == "dense"].drop_duplicates("run_id").dropna(subset=[metric])
    keys = facet_keys(dense, "lr", ["dataset", "model", *REGIME_KEYS])
    for values, part in facets(dense, keys) if len(dense) else []:
        means = part.groupby("width").agg(n=("total_weights", "mean"),
                                          acc=(metric, "mean"))
        rows += _dense_row({**values, "arm": "dense"}, means.n, 1 - means.acc)
    for values, part in panels(frame):
        cells = _cells(part, metric)
        small = cells[(cells.arm == TRAIN_SMALL) & (cells["round"] > 0)]
        rows += _dense_row({**values, "arm": TRAIN_SMALL}, small.n, small.err)
    return pd.DataFrame(rows)


def _dense_row(values: dict, n: pd.Series, err: pd.Series) -> list[dict]:
    if n.nunique() < MIN_POINTS["dense"]:
        return []
    fit = fit_dense(n.to_numpy(), err.to_numpy())
    return [{**values, **fit.params, "sizes": int(n.nunique()), "mu": fit.mu,
             "sigma": fit.sigma, "n_min": float(n.min()), "n_max": float(n.max())}]


def crossings(frame: pd.DataFrame, metric: str = "final_test_acc",
              resamples: int = RESAMPLES) -> pd.DataFrame:
    """Per panel with lottery at 2+ widths and small_dense at 4+ sizes: N* (NaN if the fitted
    curves do not cross in range), its bootstrap interval over seeds, the share of resamples
    that cross at all, and which side is ahead above N* (or throughout)."""
    rows = []
    for values, part in panels(frame):
        cells = _cells(part, metric)
        layout = _Layout(cells)
        found = layout.crossing(cells.err.to_numpy(float))
        if found is None:
            continue
        cross, ahead, (low, high), law = found
        draws = _bootstrap(part, cells, layout, metric, law, resamples)
        hit = draws[np.isfinite(draws)]
        tail = (1 - LEVEL) / 2
        rows.append({**values, "width": layout.widest, "n_low": low, "n_high": high,
                     "crossing": cross,
                     "ci_low": float(np.quantile(hit, tail)) if len(hit) else np.nan,
                     "ci_high": float(np.quantile(hit, 1 - tail)) if len(hit) else np.nan,
                     "resamples_crossing": len(hit) / max(len(draws), 1),
                     "ahead_above": ahead})
    return pd.DataFrame(rows)


class _Layout:
    """Where the crossing's inputs sit in a panel's cells, so a bootstrap resample only swaps
    the error vector: lottery's pruned cells at the widths with a dense net, their dense cell,
    and small_dense's pruned cells."""

    def __init__(self, cells: pd.DataFrame) -> None:
        arm, rnd = cells.arm.to_numpy(), cells["round"].to_numpy()
        self.width, self.d = cells.width.to_numpy(float), cells.d.to_numpy(float)
        self.n, self.total = cells.n.to_numpy(float), cells.total.to_numpy(float)
        dense = {w: k for k, w in enumerate(self.width) if arm[k] == "dense"}
        self.points = np.array([k for k in range(len(arm)) if arm[k] == PRUNE_BIG and rnd[k] > 0
                                and self.width[k] in dense], dtype=int)
        self.dense_of = np.array([dense[self.width[k]] for k in self.points], dtype=int)
        self.small = np.flatnonzero((arm == TRAIN_SMALL) & (rnd > 0))
        self.widest = float(self.width[self.points].max()) if len(self.points) else np.nan

    def crossing(self, err: np.ndarray, start: dict | None = None):
        """(N*, who is ahead at the top of the range, (N range), law constants) or None."""
        pts, small = self.points, self.small
        keep = np.isfinite(err[pts]) & np.isfinite(err[self.dense_of])
        pts, dense_of = pts[keep], self.dense_of[keep]
        small = small[np.isfinite(err[small])]
        if (len(np.unique(self.width[pts])) < 2 or len(pts) < MIN_POINTS["rosenfeld"]
                or len(np.unique(self.n[small])) < MIN_POINTS["dense"]):
            return None
        law = fit_rosenfeld(err[dense_of], self.d[pts], self.width[pts], err[pts], start).params
        train_small = fit_dense(self.n[small], err[small]).params
        big = self.width[pts] == self.widest
        if not big.any():
            return None
        total, eps_np = float(self.total[pts][big].mean()), float(err[dense_of][big][0])
        low = max(float(self.n[pts][big].min()), float(self.n[small].min()))
        high = min(float(self.n[pts][big].max()), float(self.n[small].max()))
        if low >= high:
            return None

        def gap(n: np.ndarray) -> np.ndarray:
            return (rosenfeld(eps_np, n / total, self.widest, **law)
                    - dense_law(n, **train_small))

        ahead = "prune big" if gap(np.array([high]))[0] < 0 else "train small"
        return crossing(gap, low, high), ahead, (low, high), law


def _bootstrap(part: pd.DataFrame, cells: pd.DataFrame, layout: _Layout, metric: str,
               law: dict, resamples: int) -> np.ndarray:
    """N* of each resample of the seeds (NaN where the curves do not cross): every cell's mean
    error recomputed over the same drawn seeds, both laws refitted (the joint law from the
    point estimate)."""
    runs = part.drop_duplicates(["run_id", "arm", "round"]).dropna(subset=[metric])
    errors = (1 - runs.pivot_table(index="seed", columns=["arm", "width", "round"],
                                   values=metric)).reindex(
        columns=pd.MultiIndex.from_frame(cells[["arm", "width", "round"]])).to_numpy()
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    out = np.full(resamples, np.nan)
    for k in range(resamples):
        pick = rng.integers(0, len(errors), len(errors))
        with warnings.catch_warnings():  # a cell no drawn seed has is NaN, and left out
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(errors[pick], axis=0)
        found = layout.crossing(means, start=law)
        if found is not None:
            out[k] = found[0]
    return out


def figure(frame: pd.DataFrame, fits: pd.DataFrame, small: pd.DataFrame, cross: pd.DataFrame,
           metric: str = "final_test_acc") -> plt.Figure | str:
    """Test accuracy vs nonzero weights (log x): lottery's means per width and round (95% bars)
    with its joint law per width, the dense nets and small_dense with their dense laws, and
    the crossing N* with its interval; a panel per plan and learning rate with 2+ widths."""
    found = panels(frame)
    if not found:
        widths = ", ".join(f"{w:g}" for w in sorted(frame.width.unique())) or "none"
        return (f"only one width ({widths})" if frame.width.nunique() < 2 else
                "no pruning plan and learning rate has runs at two or more widths")
    ncols = min(3, len(found))
    nrows = -(-len(found) // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(5.0 * ncols, 4.0 * nrows))
    widths = sorted(frame.width.unique())
    shades = dict(zip(widths, sns.color_palette("viridis", len(widths))))
    for ax, (values, part) in zip(axes.flat, found):
        _panel(ax, part, values, fits, small, cross, metric, shades)
    for ax in axes.flat[len(found):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def _match(table: pd.DataFrame, values: dict, **extra) -> pd.DataFrame:
    """Rows of `table` for this panel; a row without a key (the dense law has no plan) fits
    every value of it."""
    if table.empty:
        return table
    keep = np.ones(len(table), bool)
    for k, v in {**values, **extra}.items():
        if k in table:
            keep &= ((table[k] == v) | table[k].isna()).to_numpy()
    return table[keep]


def _panel(ax: plt.Axes, part: pd.DataFrame, values: dict, fits: pd.DataFrame,
           small: pd.DataFrame, cross: pd.DataFrame, metric: str, shades: dict) -> None:
    cells = _cells(part, metric)
    spread = part.dropna(subset=[metric]).groupby(["arm", "width", "round"])[metric].agg(
        ["std", "size"]).reset_index()
    cells = cells.merge(spread, on=["arm", "width", "round"])
    cells["half"] = 1.96 * cells["std"].fillna(0) / np.sqrt(cells["size"]) * 100
    law = _match(fits, values, arm=PRUNE_BIG)
    points = _law_points(cells, PRUNE_BIG)
    for width, line in points.groupby("width"):
        ax.errorbar(line.n, (1 - line.err) * 100, yerr=line.half, fmt="o", ms=4, lw=0.8,
                    color=shades[width], label=f"{PRUNE_BIG}, width {width:g}")
        if len(law):
            d = np.geomspace(line.d.min() * 0.8, 1.0, 60)
            params = law.iloc[0][list(ROSENFELD)].astype(float).to_dict()
            curve = rosenfeld(line.eps_np.iloc[0], d, width, **params)
            ax.plot(d * line.total.mean(), (1 - curve) * 100, "-", lw=1.1, color=shades[width])
    dense = cells[cells.arm == "dense"]
    ax.plot(dense.n, (1 - dense.err) * 100, "s", ms=5, color=color("dense"),
            label=label("dense") + " per width")
    for arm, style in (("dense", ":"), (TRAIN_SMALL, "--")):
        row = _match(small, values, arm=arm)
        if arm == TRAIN_SMALL:
            mine = cells[(cells.arm == arm) & (cells["round"] > 0)]
            ax.errorbar(mine.n, (1 - mine.err) * 100, yerr=mine.half, fmt="^", ms=4, lw=0.8,
                        color=color(arm), label=label(arm))
        if len(row):
            r = row.iloc[0]
            grid = np.geomspace(r.n_min, r.n_max, 60)
            ax.plot(grid, (1 - dense_law(grid, r.a, r.b, r.c)) * 100, style, lw=1.1,
                    color=color(arm), label=f"{label(arm)}: err = {r.a:.3g}·N^-{r.b:.2f} + "
                    f"{r.c:.3f}")
    title = describe(values)
    if len(law):
        r = law.iloc[0]
        title += f"\nlottery law: μ {r.mu * 100:+.1f}%, σ {r.sigma * 100:.1f}%"
        if np.isfinite(r.extrapolation_mean_abs):
            title += (f"; width {r.held_out_width:g} predicted within "
                      f"{r.extrapolation_mean_abs * 100:.1f}%")
    here = _match(cross, values)
    if len(here) and np.isfinite(here.iloc[0].crossing):
        c = here.iloc[0]
        ax.axvline(c.crossing, color="0.3", ls="-.", lw=1,
                   label=f"N* ≈ {c.crossing:,.0f} (width {c.width:g} vs small dense)")
        if np.isfinite(c.ci_low):
            ax.axvspan(c.ci_low, c.ci_high, color="0.5", alpha=0.15, lw=0)
    ax.set_title(title, fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(count_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("nonzero weights N (count)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=6, frameon=False)
