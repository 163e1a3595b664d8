"""`study tune`: an equal, seeded Optuna budget per arm, recorded, then used by `lr: tuned`."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from study.cli import app
from study.space import load_space
from study.tuning import tuned_values

pytestmark = pytest.mark.ray


def test_tune_records_trials_and_the_best_lr_which_a_space_can_use(tmp_path, ray_local):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["tune", "smoke", "--arm", "reinit", "--trials", "3",
                                      "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("smoke-tuning")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3
    lrs = {r.data.params["options.lr"] for r in runs}
    assert len(lrs) == 3  # TPE proposed three different learning rates
    space, _ = load_space("smoke")
    best = tuned_values(space, uri)["reinit"]["lr"]
    scores = {float(r.data.params["options.lr"]): r.data.metrics["best_val_acc"] for r in runs}
    assert best == pytest.approx(max(scores, key=scores.get), rel=1e-5)
    tuned_space = space.model_copy(update={"options": {"lr": "tuned"}, "arms": ["reinit"]})
    trials = tuned_space.expand(tuned_values(space, uri))
    lrs = [t.options.lr for t in trials if t.arm == "reinit"]
    assert lrs and all(lr == pytest.approx(best, rel=1e-5) for lr in lrs)


def test_a_space_asking_for_untuned_values_explains_itself(tmp_path):
    space, _ = load_space("smoke")
    tuned_space = space.model_copy(update={"options": {"lr": "tuned"}})
    with pytest.raises(ValueError, match="run `study tune SPACE --arm reinit`"):
        tuned_space.expand({})
