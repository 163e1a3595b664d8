"""Analysis: MLflow runs -> tidy frame -> paired statistics -> paper figures and a report."""

from __future__ import annotations

import os
import time
from pathlib import Path

from analysis import figures, report
from analysis.load import AnalysisError, load_curves, load_runs
from analysis.stats import all_comparisons

__all__ = ["AnalysisError", "analyze"]


def analyze(experiment: str, out: Path, tracking_uri: str | None = None,
            metric: str = "final_test_acc", echo=print) -> Path:
    """Write every applicable figure and table and the report for `experiment`; returns the
    report's path. Figures and report are also logged to the latest launch run."""
    from study.tracking import default_uri

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()
    start = time.monotonic()
    frame, unusable, launches = load_runs(experiment, uri)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures.style()
    verdicts = all_comparisons(frame, metric)
    made, skipped, sections = [], [], []
    if not verdicts.empty:
        table = report.verdict_table(verdicts)
        sections.append(("Verdicts (differences in percentage points, 95% intervals)",
                         report.write_table(table, out, "verdicts")))
        sections.append(("In words", "\n".join(report.sentences(verdicts))))
    else:
        skipped.append("verdicts: no pair of compared arms in this experiment")
    plots = {"1_accuracy_vs_remaining": lambda: figures.accuracy_vs_remaining(frame, metric),
             "2_early_stop_vs_remaining": lambda: figures.early_stop_vs_remaining(frame),
             "4_regime_map": lambda: (figures.regime_map(verdicts) if not verdicts.empty
                                      else "no verdicts"),
             "5_scaling": lambda: figures.scaling(frame)}
    fig, table = figures.rethinking(frame)
    if not isinstance(fig, str):
        sections.append(("Rethinking: unpruned vs fine-tuned vs Scratch-E vs Scratch-B "
                         "(test accuracy %)", report.write_table(table, out, "rethinking")))
    plots["3_rethinking"] = lambda: fig
    plots["6_training_curves"] = lambda: _curves(frame, uri)
    for name, build in sorted(plots.items()):
        result = build()
        if isinstance(result, str):
            skipped.append(f"{name}: {result}")
            echo(f"skipped {name}: {result}")
        else:
            made += figures.save(result, out, name)
    sections.append(("Runs not analysed", report.unusable_section(unusable)))
    path = report.write(out, f"Study report: {experiment}",
                        report.provenance(experiment, frame, unusable, launches), sections,
                        made, skipped)
    if launches:
        from mlflow.tracking import MlflowClient

        latest = max(launches, key=lambda r: r.info.start_time)
        MlflowClient(uri).log_artifacts(latest.info.run_id, str(out), "analysis")
    echo(f"analysed {len(frame)} runs in {time.monotonic() - start:.1f}s -> {out}")
    return path


def _curves(frame, uri: str):
    """Figure 6 for the deepest round of the first ticket, first seed."""
    pruned = frame[frame.stage != "dense"]
    if pruned.empty:
        return "no pruned runs"
    ticket = sorted(pruned.ticket.unique())[0]
    mine = frame[frame.ticket == ticket]
    deepest, seed = mine["round"].max(), mine.seed.min()
    chosen = mine[(mine["round"] == deepest) & (mine.seed == seed)]
    first = chosen.iloc[0]
    title = (f"{first.model}, lr {first.lr:g}, {first.granularity}, round {deepest} "
             f"({first.remaining_pct:.1f}% remaining), seed {seed}")
    return figures.training_curves(load_curves(uri, list(chosen.run_id)), chosen, title)
