"""`study tune`: each arm's own learning rate (and weight decay), found with an equal budget.

A baseline trained at a learning rate chosen for another arm is starved, and its loss says
nothing about the science. Every arm gets the same number of Optuna TPE trials (seeded), over the
same range, on the validation split only, at one condition of the space (a seed, a ticket, a
round); the trials run through Ray Tune's Optuna integration and are recorded in the experiment
`<space>-tuning`. A space then says `options={"lr": "tuned"}` to train each arm at its best value.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
import torch
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from study.contract import BEST, TUNING
from study.execution import Execution
from study.recording import record_trial
from study.runner import run_sequential, threads_for
from study.space import Space, SpaceError
from study.specs import ArmOptions, TrialSpec
from study.sweep import connect
from study.tracking import Tracker

OBJECTIVE = "best_val_acc"


def tuning_trial(trials: list[TrialSpec], arm: str) -> TrialSpec:
    """The condition an arm is tuned at: the first ticket's deepest round, as an arm trial."""
    chain = [t for t in trials if t.stage == "imp"]
    if arm == "dense" or not chain:
        raise SpaceError(f"--arm {arm}: tune a pruned arm (lottery or a control arm)")
    first = chain[0]
    deepest = max(t.round for t in chain if t.ticket == first.ticket)
    return TrialSpec(stage="arm", arm=arm, round=deepest, dense=first.dense, prune=first.prune)


def with_options(spec: TrialSpec, **values: float) -> TrialSpec:
    options = ArmOptions(**{**spec.options.model_dump(exclude_defaults=True), **values})
    return spec.model_copy(update={"options": options})


def tune_arm(space: Space, source: str, trials: list[TrialSpec], tracker: Tracker, arm: str,
             n_trials: int, *, address: str | None = None, execution: Execution | None = None,
             echo: Callable[[str], None] = print) -> dict[str, float]:
    """Run `n_trials` TPE trials of `arm`'s lr (and weight decay); returns the best values."""
    base = tuning_trial(trials, arm)
    dense = base.parents()[0]
    ticket = [t for t in trials if t.stage == "imp" and t.ticket == base.ticket
              and t.round <= base.round]
    run_sequential(space, source, [dense, *ticket], tracker, execution=execution,
                   echo=None)  # the ticket the arm is tuned on, trained once
    connect(address)
    tuning = Tracker(f"{space.name}-tuning", tracker.uri)
    ranges = {"lr": tune.loguniform(*space.tune.get("lr", (1e-4, 1.0)))}
    if "weight_decay" in space.tune:
        ranges["weight_decay"] = tune.loguniform(*space.tune["weight_decay"])
    experiment, uri, threads = space.name, tracker.uri, threads_for(space)

    def trainable(config: dict) -> None:
        torch.set_num_threads(threads)
        spec = with_options(base, **config)
        record = record_trial(spec, Tracker(f"{experiment}-tuning", uri),
                              execution or Execution(), None,
                              extra_tags={TUNING: arm},
                              upstream=Tracker(experiment, uri))
        tune.report({OBJECTIVE: record.metrics.get(OBJECTIVE, 0.0)})

    search = OptunaSearch(metric=OBJECTIVE, mode="max",
                          sampler=optuna.samplers.TPESampler(seed=0))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": space.resources.cpu, "gpu": space.resources.gpu}),
        param_space=ranges,
        tune_config=tune.TuneConfig(search_alg=search, num_samples=n_trials),
        run_config=tune.RunConfig(name=f"{space.name}-tune-{arm}", verbose=0))
    best = tuner.fit().get_best_result(metric=OBJECTIVE, mode="max")
    values = {k: float(v) for k, v in best.config.items()}
    tuning.client.set_experiment_tag(tuning.experiment_id, BEST + arm,
                                     ",".join(f"{k}={v:.6g}" for k, v in values.items()))
    echo(f"{arm}: best {OBJECTIVE} {best.metrics[OBJECTIVE]:.4f} at "
         + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
    return values


def tuned_values(space: Space, uri: str) -> dict[str, dict[str, float]]:
    """The best values `study tune` recorded for each arm of `space` ({} when none)."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(uri).get_experiment_by_name(f"{space.name}-tuning")
    if found is None:
        return {}
    out = {}
    for key, text in found.tags.items():
        if key.startswith(BEST):
            pairs = (item.split("=") for item in text.split(","))
            out[key.removeprefix(BEST)] = {k: float(v) for k, v in pairs}
    return out
