"""`python -m analysis EXPERIMENT [--out DIR] [--tracking-uri URI] [--metric M]`: figures,
tables and the statistical verdict for one study's MLflow experiment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import AnalysisError, analyze


def main(argv: list[str] | None = None) -> int:
    """Exit 0 with the report's path, or 2 with the reason the experiment cannot be analysed."""
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("experiment", help="the MLflow experiment (the search space's name)")
    parser.add_argument("--out", type=Path, default=None, help="output folder "
                        "(default: out/EXPERIMENT)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: "
                        "$MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    parser.add_argument("--metric", default="final_test_acc",
                        choices=["final_test_acc", "test_acc_at_best_val"],
                        help="accuracy compared (test_acc_at_best_val: early stopping)")
    args = parser.parse_args(argv)
    try:
        report = analyze(args.experiment, args.out, args.tracking_uri, args.metric)
    except AnalysisError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
