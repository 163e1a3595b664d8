"""Sweep efficiency: training steps saved by sharing upstream work; where a pack's time goes
(`pack_profile`: a slice of the space run here, ms per trial in each phase of `study.phases`);
and, for a finished sweep in a store, its wall time against the critical path and its training
samples per second per core against the solo bare loop's (packing is what lifts that above 1).

A naive per-arm pipeline (one script per arm and round, as the papers' public code is run)
retrains the dense net and the chain up to its round for every trial; the sweep trains each
unique unit of work once (docs/design.md: "computed once ... by id"). Both counts use
`study.plan.budget`, the steps a trial trains (Scratch-B at its cap). Reading the finished
sweep is analysis's job (`analysis.efficiency`); this part gives it the space's graph.
"""

from __future__ import annotations

import ast
import os
import tempfile
import time

from bench.timing import timed, torch_threads
from bench.trainer import bare_loop, synthetic_splits
from study.models import build_model
from study.plan import budget
from study.specs import TrialSpec


def _ancestors(trials: list[TrialSpec]) -> tuple[dict[str, set[str]], dict[str, TrialSpec]]:
    """{trial id: ids of every trial upstream of it} and {id: spec} for all of them."""
    specs = {t.id: t for t in trials}
    memo: dict[str, set[str]] = {}

    def up(spec: TrialSpec) -> set[str]:
        if spec.id not in memo:
            found: set[str] = set()
            for parent in spec.parents():
                specs.setdefault(parent.id, parent)
                found |= {parent.id} | up(parent)
            memo[spec.id] = found
        return memo[spec.id]

    for t in trials:
        up(t)
    return memo, specs


def plan_efficiency(trials: list[TrialSpec]) -> dict:
    """Unique steps the sweep trains against a naive pipeline that recomputes its upstream."""
    ancestors, specs = _ancestors(trials)
    steps = {i: budget(s) for i, s in specs.items()}
    unique = sum(steps[t.id] for t in trials)
    naive = sum(steps[t.id] + sum(steps[a] for a in ancestors[t.id]) for t in trials)
    return {"trials": len(trials), "unique_steps": unique, "naive_steps": naive,
            "naive_over_unique": naive / unique if unique else None}


def solo_bare_rate(spec: TrialSpec, widths: list[int] | None = None, steps: int = 100,
                   reps: int = 3) -> float:
    """Samples/s of the one-at-a-time bare loop on one thread, for `spec`'s dense net (or its
    family at hidden `widths`: a structured or small dense trial's net) and batch, on random
    data of its shape: what one core reaches without the study around it."""
    info, train = spec.dense.data.info(), spec.dense.train
    model = build_model(spec.dense.model.name, info.input_shape, info.num_classes,
                        width=spec.dense.model.width, hidden=spec.dense.model.hidden)
    if widths is not None and list(widths) != model.widths:
        model = model.rebuild(list(widths))
    data = synthetic_splits(info.input_shape, 4096)
    run_spec = train.model_copy(update={"steps": steps})
    with torch_threads(1):
        bare_loop(model, data.x_train, data.y_train, run_spec, 5)  # first-call costs
        best = min(timed(lambda: bare_loop(model, data.x_train, data.y_train, run_spec,
                                           steps))[0] for _ in range(reps))
    return steps * train.batch_size / best


def bare_rates(trials: list[TrialSpec], runs: dict[str, dict]) -> dict[str, float]:
    """{trial id: the solo bare loop's samples/s for the net it trained}, timed once per
    distinct net (data, family, hidden widths, batch)."""
    timed_nets: dict[tuple, float] = {}
    rates = {}
    for t in trials:
        if t.id not in runs:
            continue
        text = runs[t.id].get("widths")
        widths = ast.literal_eval(text) if text else None
        d = t.dense
        net = (d.data.canonical_json(), d.model.name, d.model.width, str(d.model.hidden),
               str(widths), d.train.batch_size)
        if net not in timed_nets:
            timed_nets[net] = solo_bare_rate(t, widths)
        rates[t.id] = timed_nets[net]
    return rates


def pack_profile(space_name: str, select: tuple[str, ...] = (), echo=print) -> dict:
    """Run the trials `select` picks from the space (and their parents) in this process, in
    packs of the default size, into a fresh SQLite store; ms per trial in each phase, and the
    set-up and records (everything but training and evaluation) per trial."""
    from study.packing import PackSizes
    from study.phases import PHASES, clock
    from study.plan import threads_for
    from study.runner import run_sequential
    from study.space import load_space
    from study.space import select as select_trials
    from study.tracking import Tracker

    space, source = load_space(space_name)
    trials = select_trials(space.expand(), list(select))
    with tempfile.TemporaryDirectory(prefix="study-profile-") as folder, \
            torch_threads(threads_for(space)):
        tracker = Tracker(space.name, f"sqlite:///{folder}/mlflow.db")
        clock.reset()
        start = time.perf_counter()
        run_sequential(space, source, trials, tracker, echo=None, isolate=False,
                       pack_size=PackSizes(None, "cpu", threads_for(space)))
        wall = time.perf_counter() - start
        seconds = clock.reset()
    per_trial = {p: 1000 * seconds[p] / len(trials) for p in PHASES}
    per_trial["other"] = 1000 * (wall - sum(seconds.values())) / len(trials)
    setup = sum(v for p, v in per_trial.items() if p not in ("train", "evaluate"))
    echo(f"  pack profile: {len(trials)} trials of {space_name} ({' '.join(select) or 'all'}) "
         f"in {wall:.1f}s, ms per trial: " + ", ".join(f"{p} {v:.1f}" for p, v in
                                                     per_trial.items())
         + f"; set-up and records {setup:.1f} ms")
    return {"trials": len(trials), "select": list(select), "wall_s": wall,
            "ms_per_trial": per_trial, "setup_and_records_ms_per_trial": setup}


def sweep_efficiency(space_name: str = "quickstart", tracking_uri: str | None = None,
                     echo=print, profile_select: tuple[str, ...] = ()) -> dict:
    from study.space import load_space

    space, _ = load_space(space_name)
    trials = space.expand()
    out = {"space": space_name, **plan_efficiency(trials), "critical_path": None}
    echo(f"  efficiency: {space_name} trains {out['unique_steps']:,} unique steps; a naive "
         f"per-arm pipeline {out['naive_steps']:,} ({out['naive_over_unique']:.2f}x)")
    out["profile"] = pack_profile(space_name, profile_select, echo)
    if tracking_uri:
        _recorded(out, trials, space.name, tracking_uri, echo)
    return out


def _recorded(out: dict, trials: list[TrialSpec], experiment: str, uri: str, echo) -> None:
    """The finished sweep in `uri`, read by `analysis.efficiency`, into `out`."""
    from analysis.efficiency import critical_path, recorded_runs, training_efficiency
    from analysis.load import AnalysisError, resolve_uri

    try:
        runs, launches = recorded_runs(experiment, resolve_uri(uri))
    except AnalysisError as err:
        out["critical_path"] = {"error": str(err)}
        return
    _, specs = _ancestors(trials)
    parents = {i: [p.id for p in s.parents()] for i, s in specs.items()}
    ids = [t.id for t in trials]
    # the lower bound assumes the store's sweep ran on a machine like this one
    cp = out["critical_path"] = critical_path(parents, ids, runs, launches, cpus=os.cpu_count())
    if not cp["trials_recorded"]:
        return
    echo(f"  {cp['trials_recorded']} recorded trials: wall {cp['wall_s']:.0f}s, critical path "
         f"{cp['critical_path_s']:.0f}s, work {cp['work_s']:.0f}s (bound on {os.cpu_count()} "
         f"CPUs {cp['lower_bound_s']:.0f}s)")
    eff = out["training"] = training_efficiency(
        {t.id: t.dense.train.batch_size for t in trials}, runs, cp["wall_s"], os.cpu_count(),
        bare_rates(trials, runs))
    echo(f"  training efficiency {eff['efficiency']:.2f}: {eff['training_samples']:,} samples in "
         f"{eff['wall_s']:.0f}s on {eff['cores']} cores; the solo bare loop, net by net, "
         f"{eff['solo_bare_core_seconds']:.0f} core-seconds "
         f"({eff['solo_bare_samples_per_s_per_core']:,.0f} samples/s per core on average)")
