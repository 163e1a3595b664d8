"""Analysis: MLflow runs -> tidy frame -> paired statistics -> paper figures and a report.

`analyze(experiment, out, tracking_uri)` does it all (also `python -m analysis EXPERIMENT` and
`study analyze EXPERIMENT`); the modules are usable one by one: `load` (runs -> frame),
`matching` (pairs, dense baselines, unmatched runs), `stats` (paired tests), `power` (detectable
gaps, tests pooled over rounds), `best_lr` (each arm at its validation-chosen lr), `laws`
(Rosenfeld et al.'s joint law, the dense law), `figures`, `rethinking`, `regime`, `scaling` and
`effect_map` (the figures), `verdict`, `summary` and `report` (words and files).
"""

from __future__ import annotations

from analysis.load import AnalysisError
from analysis.pipeline import analyze

__all__ = ["AnalysisError", "analyze"]
