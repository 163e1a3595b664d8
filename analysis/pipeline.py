"""`analyze`: runs -> statistics -> figures and tables -> report, logged to the latest launch.

The story of one analysis, top to bottom; every step that lacks data says so in one line
instead of drawing an empty plot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pandas as pd
from mlflow.tracking import MlflowClient

from analysis import (
    best_lr,
    budget,
    compute,
    criteria,
    effect_map,
    figures,
    lecture,
    power,
    regime,
    rethinking,
    scaling,
    stability,
    summary,
    train_small,
    trend,
)
from analysis.load import load_curves, load_runs, resolve_uri
from analysis.matching import unmatched
from analysis.report import Section, paragraph_section, table_section, text_section, write
from analysis.stats import all_comparisons, compare
from analysis.style import save, theme
from analysis.verdict import early_stop, paragraph

Part = Literal["figures", "train small", "criteria", "lecture", "stability"]


@dataclass(frozen=True)
class Drawing:
    """What a figure's builder reads: the runs and what the step of `analyze` that draws it
    has computed (None where that step computes no such thing)."""

    frame: pd.DataFrame
    metric: str
    verdicts: pd.DataFrame | None = None
    scale: dict | None = None
    """`_scale`'s: the effect-map cells, the law fits, the crossings, the compute bill."""
    uri: str = ""
    recovery: pd.DataFrame | None = None
    """`_lecture`'s damage and recovery per cut."""
    barriers: pd.DataFrame | None = None
    """`_stability`'s barrier per k, and beside the lottery − reinit gap (`joined`, `corr`)."""
    joined: pd.DataFrame | None = None
    corr: dict | None = None


@dataclass(frozen=True)
class Figure:
    """One figure of the report; its number is its place in FIGURES, its files
    `<number>_<name>.png` and `.pdf` (`analysis.style.save`)."""

    name: str
    caption: str
    """Its words in the report's line saying why it was skipped."""
    part: Part
    """The step of `analyze` that draws it, once it has the figure's data (`_figures`,
    `_train_small`, `_criteria`, `_lecture`, `_stability`: each `_draw`s its part's figures in
    FIGURES order)."""
    build: Callable[[Drawing], object]
    """The figure, or a string saying why it cannot be drawn."""
    per_net: bool = False
    """How it is saved: one file per network (dataset, model, width: `figures.nets`), the net
    in its name after the number and name (the per-net figures come first in their step)."""


FIGURES = (
    Figure("accuracy_vs_remaining", "accuracy vs weights remaining", "figures",
           lambda d: figures.accuracy_vs_remaining(d.frame, d.metric), per_net=True),
    Figure("early_stop_vs_remaining", "early-stop step vs weights remaining", "figures",
           lambda d: figures.early_stop_vs_remaining(d.frame), per_net=True),
    Figure("rethinking", "Rethinking comparison", "figures",
           lambda d: rethinking.figure(d.frame, d.metric)),
    Figure("regime_map", "regime map", "figures", lambda d: regime.regime_map(d.verdicts)),
    Figure("scaling", "scaling figure", "figures",
           lambda d: scaling.figure(d.frame, d.scale["fits"], d.scale["small"], d.scale["cross"],
                                    d.metric)),
    Figure("training_curves", "training curves", "figures", lambda d: _curves(d.frame, d.uri)),
    Figure("criteria", "criteria figure", "criteria", lambda d: _criteria_figure(d)),
    Figure("effect_map", "lottery-effect map", "figures",
           lambda d: effect_map.effect_map(d.scale["cells"])),
    Figure("effect_vs_weights", "lottery effect at equal nonzero weights", "figures",
           lambda d: effect_map.effect_vs_weights(d.scale["cells"])),
    Figure("barrier_vs_k", "error barrier vs rewind step", "stability",
           lambda d: stability.figure_vs_k(d.barriers)),
    Figure("barrier_vs_gap", "error barrier vs lottery − reinit gap", "stability",
           lambda d: stability.scatter(d.joined, d.corr)),
    Figure("damage_recovery", "damage and recovery per fine-tuning round", "lecture",
           lambda d: lecture.damage_figure(d.recovery)),
    Figure("finetune_chain", "fine-tune chain beside IMP and training small", "lecture",
           lambda d: lecture.versus_remaining(d.frame, d.metric)),
    Figure("compute", "accuracy vs cumulative training compute", "figures",
           lambda d: compute.figure(d.scale["bill"])),
    Figure("effect_map_at_init", "lottery − strongest at-init arm map", "train small",
           lambda d: _strongest_map(d, "at-init")),
    Figure("effect_map_dynamic", "lottery − strongest sparse-training arm map", "train small",
           lambda d: _strongest_map(d, "dynamic")),
    Figure("accuracy_vs_nonzero", "train small: accuracy vs nonzero weights", "train small",
           lambda d: train_small.accuracy_vs_nonzero(d.frame, d.metric)),
)
"""Every figure of the report, numbered by its place here (a new one goes at the end)."""


def stem(figure: Figure) -> str:
    """A figure's file name without the net or the extension: `8_effect_map`."""
    return f"{FIGURES.index(figure) + 1}_{figure.name}"


@dataclass
class Book:
    """What an analysis has produced so far: report sections, files written, lines skipped."""

    out: Path
    sections: list[Section] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def table(self, heading: str, shown: pd.DataFrame, name: str,
              numbers: pd.DataFrame | None = None, note: str = "") -> None:
        section, paths = table_section(heading, shown, self.out, name, numbers, note)
        self.sections.append(section)
        self.written += paths


def analyze(experiment: str, out: Path | None = None, tracking_uri: str | None = None,
            metric: str = "final_test_acc", echo: Callable[[str], object] = print) -> Path:
    """Write every applicable figure (PNG + PDF) and table (Markdown, LaTeX, CSV) and
    report.md / report.html for `experiment` into `out` (default out/<experiment>); log them
    to the latest launch run under `analysis/`. Returns the path of report.md.

    `metric`: final_test_acc, or test_acc_at_best_val for the early-stopping view.
    Raises AnalysisError for an unknown or empty experiment or runs off the contract.
    """
    start = time.monotonic()
    uri = resolve_uri(tracking_uri)
    frame, unusable, launches = load_runs(experiment, uri)
    frame, lines = stability.split(frame)  # stability runs get their own section
    frame, longer = budget.split(frame)  # the budget check's runs, beside the study's
    book = Book(Path(out) if out is not None else Path("out") / experiment)
    book.out.mkdir(parents=True, exist_ok=True)
    theme()
    verdicts = power.with_power(all_comparisons(frame, metric))
    lost = unmatched(frame, unusable)
    book.sections.append(text_section("Provenance", summary.provenance(
        experiment, uri, frame, unusable, lost, launches, metric)))
    _statistics(book, verdicts)
    scale = _scale(book, frame, longer, verdicts, metric)
    _tables(book, frame, unusable, lost, metric)
    _figures(book, frame, verdicts, scale, uri, metric, echo)
    _train_small(book, frame, verdicts, metric, echo)
    _criteria(book, frame, metric, echo)
    _lecture(book, frame, metric, echo)
    _stability(book, frame, lines, metric, echo)
    book.written += book.figures + write(book.out, f"Study report: {experiment}",
                                         book.sections, book.figures, book.skipped)
    _log(uri, launches, book.written, echo)
    echo(f"analysed {frame.run_id.nunique()} runs in {time.monotonic() - start:.1f} s -> "
         f"{book.out / 'report.md'}")
    return book.out / "report.md"


def _statistics(book: Book, verdicts: pd.DataFrame) -> None:
    """Headlines, the verdict table and one sentence per condition."""
    if verdicts.empty:
        book.skipped.append("verdict table skipped: no pair of compared arms was run")
        return
    book.sections.append(text_section("Verdicts at a glance", summary.headlines(verdicts)))
    shown, note = summary.verdict_table(verdicts)
    book.table("Verdict table (paired by seed; A−B in percentage points)", shown, "verdicts",
               summary.verdict_numbers(verdicts), note)
    book.sections.append(text_section("In words", summary.sentences(verdicts)))


def _scale(book: Book, frame: pd.DataFrame, longer: pd.DataFrame, verdicts: pd.DataFrame,
           metric: str) -> dict:
    """The analysis of scale: the verdict paragraph (first in the report), the pooled, trend
    and best-lr tests, convergence and the budget check, the scaling laws and the comparison at
    equal size and equal compute; returns what the figures draw."""
    cells = effect_map.cells(verdicts, frame) if len(verdicts) else pd.DataFrame()
    pooled = power.pooled(frame, metric=metric) if len(frame) else pd.DataFrame()
    if len(pooled):
        book.table("Lottery − reinit pooled over rounds (one test per width, lr and "
                   "granularity; gaps in pp at the geometric-mean density)",
                   summary.pooled_table(pooled), "pooled", pooled, summary.POOLED_NOTE)
    trends = trend.width_trend(frame, metric=metric) if len(frame) else pd.DataFrame()
    if len(trends):
        book.table("Does the gap grow with width? Lottery − reinit regressed on log2(width), "
                   "round as a factor, a seed intercept (slope in pp per doubling)",
                   summary.trend_table(trends), "width_trend", trends, trend.__doc__.split(
                       "\n\n")[1].replace("\n", " "))
    notes = _convergence(book, frame, longer, cells, metric)
    best = best_lr.best_vs_best(frame, metric=metric) if len(frame) else "no runs"
    if isinstance(best, str):
        book.skipped.append(f"best-lr comparison skipped: {best}")
    else:
        book.table("Each arm at its own learning rate (chosen on validation accuracy) vs the "
                   "fixed-lr comparison", best_lr.beside_fixed(best, verdicts), "best_lr", best,
                   f"Each arm's lr is the one with the highest mean {best_lr.VALIDATION} over "
                   "seeds per cell; test accuracy is read only at the chosen lr.")
    fits, small, cross = (scaling.law_fits(frame, metric), scaling.dense_fits(frame, metric),
                          scaling.crossings(frame, metric)) if len(frame) else (
        pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    for table, heading, name in (
            (fits, "Scaling law per arm (Rosenfeld et al. 2021, joint in width and density)",
             "scaling_laws"),
            (small, "Train-small laws (err = a·N^-b + c)", "train_small_laws"),
            (cross, "Prune big vs train small at equal nonzero weights (crossing N*, 95% "
             "bootstrap over seeds)", "crossing")):
        if len(table):
            book.table(heading, summary.law_table(table), name, table)
    if not len(fits) and len(frame):
        book.skipped.append("scaling laws skipped: " + (
            "only one width" if frame.width.nunique() < 2 else
            "no arm has enough (width, round) cells at 2+ widths"))
    elif len(fits) and not len(cross):
        book.skipped.append("prune-big vs train-small crossing skipped: it needs lottery at 2+ "
                            f"widths and {scaling.TRAIN_SMALL} at 4+ sizes in one panel")
    bill = compute.cells(frame, metric) if len(frame) else pd.DataFrame()
    notes += _compute(book, bill)
    sparse = train_small.answer(verdicts, frame, metric) if len(verdicts) else ""
    if sparse:
        notes.append(sparse)
    if len(cells):
        sizes = effect_map.cells(verdicts, frame, "lottery vs small_dense")
        book.sections.insert(0, paragraph_section("Answer", paragraph(
            cells, pooled, best, cross, verdicts[verdicts.comparison == effect_map.COMPARISON],
            trends, sizes, notes)))
    return {"cells": cells, "fits": fits, "small": small, "cross": cross, "bill": bill}


def _convergence(book: Book, frame: pd.DataFrame, longer: pd.DataFrame, cells: pd.DataFrame,
                 metric: str) -> list[str]:
    """Convergence per run, the budget check, the effect cells marked where a gap may be a
    speed, and LTH's early-stopping iteration; returns their sentences for the Answer."""
    notes = []
    converged = budget.convergence(frame) if len(frame) else pd.DataFrame()
    if len(converged):
        book.table("Convergence: share of runs whose validation loss reached its minimum within "
                   "the first 90% of their steps",
                   summary.convergence_table(converged),
                   "convergence", converged, budget.__doc__.split("\n\n")[1].replace("\n", " "))
        notes.append(budget.convergence_sentence(converged))
    checked = budget.check(frame, longer, metric)
    if len(checked):
        book.table("Budget check: lottery − reinit at the study's budget and at a multiple of "
                   "it (paired by seed; pp)", summary.budget_table(checked), "budget_check",
                   checked, budget.__doc__.split("\n\n")[2].replace("\n", " "))
        notes.append(budget.budget_sentence(checked))
    elif len(longer) == 0 and len(frame):
        book.skipped.append("budget check skipped: the space trains no cell at a longer budget "
                            "(`Space.budget_check`)")
    if len(cells):
        flagged = budget.flags(cells, frame, checked)
        book.table("Lottery − reinit per cell, with convergence and the budget check (a caution "
                   "marks a gap that may be speed, not end accuracy)",
                   summary.flags_table(flagged), "effect_cells", flagged)
        notes.append(budget.caution_sentence(flagged))
        stops = compare(frame, "lottery", "reinit", "early_stop_step")
        if len(stops):
            book.table("LTH's early-stopping iteration (step of minimum validation loss), "
                       "lottery − reinit, paired by seed", summary.verdict_table(stops)[0],
                       "early_stop", stops)
            notes.append(early_stop(stops))
    return [n for n in notes if n]


def _compute(book: Book, bill: pd.DataFrame) -> list[str]:
    """The compute bill's tables; returns the equal-compute sentence."""
    if bill.empty:
        book.skipped.append("compute comparison skipped: no run recorded its training FLOPs")
        return []
    book.table("Training compute per arm and cell (cumulative training FLOPs: the run's own "
               "and everything it started from; means over seeds)", bill, "compute", bill,
               compute.__doc__.split("\n\n")[1].replace("\n", " "))
    matched = compute.equal_compute(bill)
    if len(matched):
        book.table("At equal compute: each prune-big cell against the best train-small cell "
                   "that cost no more", matched, "equal_compute", matched)
    line = compute.sentence(matched, bill)
    return [line] if line else []


def _tables(book: Book, frame: pd.DataFrame, unusable: pd.DataFrame, lost: pd.DataFrame,
            metric: str) -> None:
    """The Rethinking table and the runs left out."""
    numbers = rethinking.table(frame, metric)
    if len(numbers):
        book.table("Rethinking: unpruned vs fine-tuned vs Scratch-E vs Scratch-B (test "
                   "accuracy %, mean ± sd over seeds)", rethinking.display(numbers),
                   "rethinking", numbers)
    if len(unusable):
        book.table("Runs not analysed", summary.unusable_table(unusable), "runs_not_analysed")
    else:
        book.sections.append(Section("Runs not analysed", "None.", "<p>None.</p>"))
    if len(lost):
        book.table("Unmatched runs (left out of the paired tests)", lost, "unmatched_runs")


def _figures(book: Book, frame: pd.DataFrame, verdicts: pd.DataFrame, scale: dict, uri: str,
             metric: str, echo: Callable[[str], object]) -> None:
    """The figures of the study's main question (part "figures" of FIGURES); one line in
    the report for each that lacks its data."""
    if frame.empty:
        book.skipped.append("every figure skipped: no trial run finished")
        return
    _draw(book, "figures", Drawing(frame, metric, verdicts, scale, uri), echo)


def _train_small(book: Book, frame: pd.DataFrame, verdicts: pd.DataFrame, metric: str,
                 echo: Callable[[str], object]) -> None:
    """A study with nets trained sparse from the start (at-init masks, SET/RigL): where they
    reach IMP and whether an at-init criterion beats random, in words; the effect map of
    lottery − the strongest arm of each family (figures 15, 16); accuracy against nonzero
    weights (figure 17). Their joint scaling laws are rows of the scaling-law table."""
    if not train_small.nonempty(frame):
        return
    book.sections.append(text_section("Train small without the big net",
                                      train_small.sentences(verdicts, frame, metric)))
    _draw(book, "train small", Drawing(frame, metric, verdicts), echo)


def _strongest_map(drawing: Drawing, family: str):
    """The effect map of lottery − the family's strongest arm."""
    frame, verdicts = drawing.frame, drawing.verdicts
    arm = train_small.strongest(frame, family, drawing.metric)
    if arm is None:
        return f"the study ran no {family} arm"
    return effect_map.effect_map(effect_map.cells(verdicts, frame, f"lottery vs {arm}"),
                                 versus=arm)


def _criteria(book: Book, frame: pd.DataFrame, metric: str,
              echo: Callable[[str], object]) -> None:
    """A study comparing criteria: accuracy per criterion, where each shows the lottery effect,
    and gradual vs one-shot pruning (figure 7 and its tables)."""
    pruned = frame[frame.granularity.isin(["unstructured", "structured"])]
    if pruned.empty or pruned.groupby("granularity").criterion.nunique().max() < 2:
        return  # one criterion per granularity: nothing to compare
    _draw(book, "criteria", Drawing(frame, metric), echo)
    effects = criteria.lottery_effect(frame, metric)
    if len(effects):
        book.table("Which criteria show the lottery effect (lottery − reinit, paired by seed; "
                   "gap as a fraction)", criteria.which_criteria(effects), "criteria_effect")
    schedules = criteria.schedule_effect(frame, metric=metric)
    if len(schedules):
        book.table("Gradual vs one-shot pruning (iterative − one-shot, lottery arm)",
                   schedules, "schedule_effect")


def _criteria_figure(drawing: Drawing):
    """Figure 7: accuracy vs remaining per criterion, on the IMP chains."""
    pruned = drawing.frame[drawing.frame.granularity.isin(["unstructured", "structured"])]
    if not (pruned.arm == "lottery").any():
        return "no IMP chain (lottery runs) to compare the criteria on"
    return criteria.accuracy_vs_remaining(drawing.frame, metric=drawing.metric)


def _lecture(book: Book, frame: pd.DataFrame, metric: str,
             echo: Callable[[str], object]) -> None:
    """A study with fine-tune chains (the lecture's prune-and-fine-tune loop): accuracy right
    after each cut and after its fine-tuning (figure 12, table), whether small steps beat one
    cut at each sparsity (verdict table and sentences), and the chain beside IMP's lottery and
    training small (figure 13)."""
    if not lecture.has_chain(frame):
        return
    recovery = lecture.damage_recovery(frame, metric)
    book.table("Damage and recovery: test accuracy right after each cut and after its "
               "fine-tuning (fine-tune chains; mean and 95% t interval over seeds)",
               lecture.recovery_display(recovery), "damage_recovery", recovery)
    steps = lecture.small_steps(frame, metric)
    if len(steps):
        book.table("Small steps vs one cut (iterative − one-shot fine-tune chain at the same "
                   "sparsity and total fine-tuning, paired by seed; pp)",
                   lecture.steps_display(steps), "small_steps", steps,
                   "One-shot round r prunes the dense net straight to round r's sparsity and "
                   "fine-tunes as long as the r iterative rounds together; round 1 is the same "
                   "cut in both, so it is not tested.")
        book.sections.append(text_section("Do small steps beat one cut?",
                                          lecture.sentences(steps)))
    else:
        book.skipped.append("small steps vs one cut skipped: no plan has both an iterative "
                            "and a one-shot fine-tune chain")
    _draw(book, "lecture", Drawing(frame, metric, recovery=recovery), echo)


def _stability(book: Book, frame: pd.DataFrame, lines: pd.DataFrame, metric: str,
               echo: Callable[[str], object]) -> None:
    """A study with interpolation runs: the barrier vs k (figure 10, table), the barrier beside
    the lottery − reinit gap (figure 11, table) and whether stability predicts the effect."""
    if lines.empty:
        return
    summary_k = stability.barrier_vs_k(stability.barriers(lines))
    book.table("Stability to SGD noise: test error barrier between two copies of θk (mean and "
               "95% t interval over seeds; round 0 = the dense net)",
               stability.display(summary_k), "stability_barriers", summary_k)
    joined = stability.with_gap(summary_k, frame, metric)
    corr = stability.correlation(joined) if len(joined) else {"n": 0, "r": float("nan")}
    if len(joined):
        book.table("Error barrier beside the lottery − reinit gap (same IMP round, paired by "
                   "seed)", stability.gap_display(joined), "stability_vs_lottery", joined)
        book.sections.append(text_section("Does stability predict the lottery effect?",
                                          stability.sentences(joined, corr)))
    else:
        book.skipped.append("stability vs lottery effect skipped: no IMP round has both an "
                            "interpolation and a lottery − reinit comparison")
    _draw(book, "stability", Drawing(frame, metric, barriers=summary_k, joined=joined,
                                     corr=corr), echo)


def _draw(book: Book, part: Part, drawing: Drawing, echo: Callable[[str], object]) -> None:
    """Every figure of `part` in FIGURES order (the per-net ones first, all of them for one
    net after the other), each as PNG + PDF, or the line saying why it is missing."""
    mine = [f for f in FIGURES if f.part == part]
    jobs = []
    if any(f.per_net for f in mine):
        for suffix, net in figures.nets(drawing.frame):
            jobs += [(stem(f) + suffix, f, replace(drawing, frame=net)) for f in mine if f.per_net]
    jobs += [(stem(f), f, drawing) for f in mine if not f.per_net]
    for name, figure, inputs in jobs:
        result = figure.build(inputs)
        if isinstance(result, str):
            book.skipped.append(f"{figure.caption} ({name}) skipped: {result}")
            echo(book.skipped[-1])
        else:
            book.figures += save(result, book.out, name)


def _curves(frame: pd.DataFrame, uri: str):
    """Figure 6 for the default condition; curves fetched for those few runs only."""
    runs = figures.pick_curve_runs(frame)
    if runs.empty:
        return "no pruned runs to show training curves for"
    curves = load_curves(uri, list(runs.run_id.unique()), ("val_acc",))
    return figures.training_curves(curves, runs, "val_acc")


def _log(uri: str, launches: list, paths: list[Path], echo: Callable[[str], object]) -> None:
    """Attach what this analysis wrote to the latest launch run, under `analysis/`."""
    if not launches:
        echo("no launch run in the experiment: figures and report not logged to MLflow")
        return
    latest = max(launches, key=lambda r: r.info.start_time).info.run_id
    client = MlflowClient(uri)
    for path in paths:
        client.log_artifact(latest, str(path), "analysis")
