"""A scaling study of "prune a big network" versus "train a small network"."""

import os

# MLflow sends usage telemetry unless told not to; it reads this when mlflow is first imported,
# and every process of the tool (the CLI, Ray workers, the UI) imports this package first.
# A user who wants telemetry sets MLFLOW_DISABLE_TELEMETRY=false.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__version__ = "0.1.0"
