"""`python -m analysis EXPERIMENT [--out DIR] [--tracking-uri URI]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import AnalysisError, analyze


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("experiment")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    try:
        analyze(args.experiment, args.out or Path("out") / args.experiment, args.tracking_uri)
    except AnalysisError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
