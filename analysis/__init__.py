"""Analysis: MLflow runs -> tidy frame -> paired statistics -> paper figures and a report.

`analyze(experiment, out, tracking_uri)` does it all (also `python -m analysis EXPERIMENT` and
`study analyze EXPERIMENT`); the modules are usable one by one: `load` (runs -> frame),
`matching` (pairs, dense baselines, unmatched runs), `stats` (paired tests), `figures`,
`rethinking`, `regime`, `scaling` (the six figures), `summary` and `report` (words and files).
"""

from __future__ import annotations

from analysis.load import AnalysisError
from analysis.pipeline import analyze

__all__ = ["AnalysisError", "analyze"]
