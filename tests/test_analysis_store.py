"""A synthetic study written to MLflow exactly as the tracking contract says, with a planted
lottery effect: the store every analysis test reads (and a test that it keeps the contract).

The study: width 1.0 at lr 0.01 and 0.1, unstructured and structured, IMP rounds 1..3, 5 seeds,
arms lottery, reinit, finetune, scratch_b (+ small_dense for unstructured); width 2.0 at lr 0.1,
unstructured, lottery and small_dense, for the scaling figure. Lottery beats reinit by PLANTED
at lr 0.01 and not at all at lr 0.1 (zero-mean seed noise). Accuracy follows
error = a·N^-b per family, so the prune-big and train-small fits cross at CROSSING weights.
One reinit diverged, one scratch_b failed and was recomputed, one sign_constant run was
skipped. Built once per test session.

A second experiment, 'scaling' (`scaling_store`, built on first use), plants the laws of scale:
four widths, Rosenfeld et al.'s joint law, dense laws, a lottery effect region that starts at
lower density in wider nets, and a validation split that disagrees with the test split about
the best learning rate (see the constants below `build_single`).
"""

from __future__ import annotations

import contextlib
import hashlib
import time

import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from study.contract import NUMBERS, PREFIX, REQUIRED

LRS = (0.01, 0.1)
EFFECT_LR = 0.01
PLANS = {"unstructured": ("magnitude", 0.5), "structured": ("l1_filter", 0.7)}
ROUNDS = (1, 2, 3)
SEEDS = tuple(range(5))
WEIGHTS = {1.0: 10_000, 2.0: 40_000}
PLANTED = 0.03
SEED_EFFECT = (0.01, -0.005, 0.0, 0.008, -0.013)  # shared by every arm of a seed: pairing
BIG, CROSSING = (2.0, 0.25), 5000.0  # prune big: error = 2·N^-0.25
SMALL = (2.0 * CROSSING ** 0.10, 0.35)  # train small: equal to BIG at N = CROSSING
DIVERGED = {"arm": "reinit", "lr": 0.1, "granularity": "structured", "round": 3, "seed": 4}
FAILED = {"arm": "scratch_b", "lr": 0.01, "granularity": "unstructured", "round": 1, "seed": 0}
_STORE: dict[str, object] = {}


def hexid(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def noise(*key) -> np.ndarray:
    """Zero-mean seed noise per arm and condition (so a null effect has mean exactly 0)."""
    values = np.random.default_rng(int(hexid(*key), 16) % 2**32).normal(0, 0.004, len(SEEDS))
    return values - values.mean()


def accuracy(arm: str, lr: float, gran: str, width: float, rnd: int, seed: int, n: float) -> float:
    a, b = SMALL if arm in ("small_dense", "scratch_b") else BIG
    acc = 1 - a * n ** -b + SEED_EFFECT[seed]
    if arm == "lottery":
        acc += PLANTED * (lr == EFFECT_LR)
    if arm not in ("reinit", "dense"):
        acc += noise(arm, lr, gran, width, rnd)[seed]
    return float(acc)


def arms_of(width: float, gran: str) -> list[str]:
    """Every arm at width 1.0 (small_dense only unstructured); the two families' first arms at
    width 2.0, enough for the scaling fits."""
    if width == 2.0:
        return ["lottery", "small_dense"]
    arms = ["lottery", "reinit", "finetune", "scratch_b"]
    return arms + ["small_dense"] if gran == "unstructured" else arms


def conditions():
    """(width, lr, granularity) of every ticket family in the study."""
    for lr in LRS:
        for gran in PLANS:
            yield 1.0, lr, gran
    yield 2.0, 0.1, "unstructured"


def _write(client, exp, parent, tags, metrics, status="FINISHED", start=None, params=(),
           numbers=True):
    """One trial run; `numbers=False`: without the condition's metrics, as runs recorded before
    they were all logged."""
    parent = {"mlflow.parentRunId": parent} if parent else {}
    run = client.create_run(exp, start_time=start, tags={**tags, **parent})
    rows = [Metric(k, float(v), 0, 0) for k, v in metrics.items() if k != "curve"]
    if numbers:  # the condition as numbers (contract.NUMBERS)
        rows += [Metric(n, float(tags[PREFIX + n]), 0, 0) for n in NUMBERS if PREFIX + n in tags]
    for step, value in metrics.get("curve", ()):
        rows += [Metric(k, v, 0, step) for k, v in (
            ("val_acc", value), ("test_acc", value - 0.01), ("train_loss", 1 - value),
            ("val_loss", 1.1 - value))]
    client.log_batch(run.info.run_id, metrics=rows, params=[Param(k, v) for k, v in params])
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def _tags(stage, arm, width, lr, seed, gran="none", rnd=0, outcome="finished"):
    dense_id = hexid("dense", width, lr, seed)
    criterion = PLANS[gran][0] if gran in PLANS else "none"
    return {"study.id": hexid(stage, arm, width, lr, seed, gran, rnd) if arm != "dense"
            else dense_id, "study.stage": stage, "study.arm": arm, "study.granularity": gran,
            "study.scope": "layerwise" if gran in PLANS else "none",
            "study.criterion": criterion,
            "study.schedule": "iterative" if gran in PLANS else "none",
            "study.round": str(rnd), "study.seed": str(seed),
            "study.ticket": hexid("ticket", width, lr, seed, gran) if gran in PLANS else dense_id,
            "study.dense_id": dense_id, "study.model": "mlp", "study.width": str(width),
            "study.dataset": "mnist1d", "study.lr": str(lr), "study.warmup": "0",
            "study.rewind_step": "0", "study.outcome": outcome}


def _metrics(arm, lr, gran, width, rnd, seed) -> dict:
    total = WEIGHTS[width]
    n = total * (PLANS[gran][1] ** rnd if gran in PLANS else 1.0)
    acc = accuracy(arm, lr, gran, width, rnd, seed, n)
    stop = {"lottery": 400 + 50 * rnd, "reinit": 400 + 200 * rnd}.get(arm, 500)
    out = {"final_test_acc": acc, "best_val_acc": acc + 0.01, "test_acc_at_best_val": acc - 0.002,
           "early_stop_step": stop, "sparsity": 1 - n / total, "nonzero_params": n + 100,
           "total_params": total + 100, "nonzero_weights": n, "total_weights": total,
           "flops": n, "train_steps": 1000, "train_seconds": 1.0,
           "curve": [(250, acc - 0.1), (500, acc - 0.05), (1000, acc)]}
    if arm == "small_dense":
        out["match_error"] = 0.01
    return out


def build(uri: str, name: str = "synthetic") -> None:
    """The whole synthetic study as MLflow runs under two launches (the second is the latest)."""
    client = MlflowClient(uri)
    exp = client.create_experiment(name, artifact_location=uri.replace("sqlite:///", "file://")
                                   .replace("mlflow.db", "artifacts"))
    now = int(time.time() * 1000)
    launches = [client.create_run(exp, start_time=now - (2 - k) * 3_600_000, tags={
        "study.stage": "launch", "study.space": name, "study.version": "0.1.0-test"}
    ).info.run_id for k in range(2)]
    for width, lr, gran in conditions():
        parent = launches[width == 2.0]
        if gran == "unstructured":
            for seed in SEEDS:
                _write(client, exp, parent, _tags("dense", "dense", width, lr, seed),
                       _metrics("dense", lr, "none", width, 0, seed),
                       params=[("dense.train.batch_size", "128")])
        for rnd in ROUNDS:
            for arm in arms_of(width, gran):
                for seed in SEEDS:
                    here = {"arm": arm, "lr": lr, "granularity": gran, "round": rnd,
                            "seed": seed}
                    tags = _tags("imp" if arm == "lottery" else "arm", arm, width, lr, seed,
                                 gran, rnd)
                    if here == DIVERGED:
                        tags.update({"study.outcome": "diverged", "study.diverged_step": "120"})
                        _write(client, exp, parent, tags, {"curve": [(100, 0.1)]})
                        continue
                    if here == FAILED:
                        _write(client, exp, parent, tags, {}, status="FAILED", start=now - 5)
                    _write(client, exp, parent, tags, _metrics(arm, lr, gran, width, rnd, seed),
                           params=[("prune.rate", str(1 - PLANS[gran][1]))])
    skipped = _tags("arm", "sign_constant", 1.0, 0.1, 4, "structured", 3, "skipped")
    _write(client, exp, launches[1], {**skipped, "study.skip_reason": "upstream diverged"}, {})
    for run_id in launches:
        client.set_terminated(run_id, "FINISHED")


def build_single(uri: str, name: str = "single") -> None:
    """A small study with one width, one lr and one granularity: lottery and reinit, rounds
    1-2, 3 seeds, no launch run, recorded as by an earlier version: its condition in tags only
    (no condition metrics). Most figures have nothing to show for it."""
    client = MlflowClient(uri)
    exp = client.create_experiment(name, artifact_location=uri.replace("sqlite:///", "file://")
                                   .replace("mlflow.db", name))
    for seed in range(3):
        _write(client, exp, None, _tags("dense", "dense", 1.0, 0.1, seed),
               _metrics("dense", 0.1, "none", 1.0, 0, seed), numbers=False)
        for rnd in (1, 2):
            for arm in ("lottery", "reinit"):
                _write(client, exp, None, _tags("imp" if arm == "lottery" else "arm", arm,
                                                1.0, 0.1, seed, "unstructured", rnd),
                       _metrics(arm, 0.1, "unstructured", 1.0, rnd, seed), numbers=False)


# --- the scaling study: four widths, planted laws and a planted effect region ----------------
# Widths 0.5-4 (10,000·w² weights), lr 0.01 and 0.1, unstructured (40% kept per round, 4 rounds)
# and structured (70% kept, 2 rounds), 4 seeds; arms lottery, reinit and (unstructured)
# small_dense. The dense error follows DENSE_LAW (x LR_ERROR), reinit follows Rosenfeld's joint
# law LAW exactly (no noise), small_dense SMALL_LAW plus noise; lottery = reinit + GAP where
# `planted_gap` says so (unstructured, lr 0.01, from ONSET[width] remaining down), plus noise.
# Validation accuracy is test + 0.01, except reinit at lr 0.01, whose validation is VAL_BIAS
# higher: there validation picks lr 0.01 for reinit while test accuracy would pick lr 0.1.

SCALE_WIDTHS = (0.5, 1.0, 2.0, 4.0)
SCALE_LRS = (0.01, 0.1)
SCALE_PLANS = {"unstructured": ("magnitude", 0.4, 4), "structured": ("l1_filter", 0.7, 2)}
SCALE_SEEDS = tuple(range(4))
SCALE_SEED_EFFECT = (0.006, -0.004, 0.002, -0.004)  # sums to 0: seed means are exact
LAW = {"eps_up": 0.9, "p": 0.05, "gamma": 1.5, "psi": 1.0}
DENSE_LAW = (3.0, 0.3, 0.05)  # err = a·N^-b + c
SMALL_LAW = (1.2, 0.2, 0.02)
LR_ERROR = {0.01: 1.1, 0.1: 1.0}
GAP, ONSET = 0.04, {0.5: 0.16, 1.0: 0.16, 2.0: 0.064, 4.0: 0.064}
VAL_BIAS = 0.05


def scale_weights(width: float) -> float:
    return 10_000 * width**2


def planted_gap(lr: float, gran: str, width: float, density: float) -> float:
    """Lottery minus reinit accuracy by design (before noise)."""
    inside = lr == EFFECT_LR and gran == "unstructured" and density <= ONSET[width] * 1.0001
    return GAP if inside else 0.0


def planted_error(arm: str, lr: float, width: float, density: float) -> float:
    """The error every run of `arm` at this point would have without seed effects and noise."""
    from analysis.laws import dense_law, rosenfeld

    dense = LR_ERROR[lr] * dense_law(scale_weights(width), *DENSE_LAW)
    if arm == "dense":
        return float(dense)
    if arm == "small_dense":
        return float(dense_law(scale_weights(width) * density, *SMALL_LAW))
    return float(rosenfeld(dense, density, width, **LAW))


def _scale_run(arm: str, lr: float, gran: str, width: float, rnd: int, seed: int) -> dict:
    density = SCALE_PLANS[gran][1] ** rnd if gran in SCALE_PLANS else 1.0
    acc = 1 - planted_error(arm, lr, width, density) + SCALE_SEED_EFFECT[seed]
    if arm == "lottery":
        acc += planted_gap(lr, gran, width, density)
    if arm in ("lottery", "small_dense"):
        acc += noise(arm, lr, gran, width, rnd)[seed]
    val = acc + 0.01 + (VAL_BIAS if (arm, lr) == ("reinit", 0.01) else 0.0)
    total = scale_weights(width)
    n = total * density
    return {"final_test_acc": acc, "best_val_acc": val, "test_acc_at_best_val": acc,
            "early_stop_step": 500, "sparsity": 1 - density, "nonzero_params": n,
            "total_params": total, "nonzero_weights": n, "total_weights": total, "flops": n,
            "train_steps": 1000, "train_seconds": 1.0}


def build_scaling(uri: str, name: str = "scaling") -> None:
    """The scaling study above, under one launch run."""
    client = MlflowClient(uri)
    exp = client.create_experiment(name, artifact_location=uri.replace("sqlite:///", "file://")
                                   .replace("mlflow.db", name))
    launch = client.create_run(exp, tags={"study.stage": "launch", "study.space": name,
                                          "study.version": "0.1.0-test"}).info.run_id
    for width in SCALE_WIDTHS:
        for lr in SCALE_LRS:
            for seed in SCALE_SEEDS:
                _write(client, exp, launch, _tags("dense", "dense", width, lr, seed),
                       _scale_run("dense", lr, "none", width, 0, seed))
            for gran, (_, _, rounds) in SCALE_PLANS.items():
                arms = ["lottery", "reinit"] + ["small_dense"] * (gran == "unstructured")
                for rnd in range(1, rounds + 1):
                    for arm in arms:
                        for seed in SCALE_SEEDS:
                            _write(client, exp, launch, _tags(
                                "imp" if arm == "lottery" else "arm", arm, width, lr, seed,
                                gran, rnd), _scale_run(arm, lr, gran, width, rnd, seed))
    client.set_terminated(launch, "FINISHED")


def scaling_store(tmp_path_factory) -> tuple[str, object]:
    """(uri, folder) of the synthetic store with the 'scaling' experiment added (built once)."""
    uri, folder = synthetic_store(tmp_path_factory)
    if "scaling" not in _STORE:
        with unsynced_sqlite():
            build_scaling(uri)
        _STORE["scaling"] = True
    return uri, folder


@contextlib.contextmanager
def unsynced_sqlite():
    """SQLite connections opened inside skip fsync: a throwaway test store needs no
    durability, and fsync is most of the cost of writing hundreds of runs on a busy disk."""
    def pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    event.listen(Engine, "connect", pragmas)
    try:
        yield
    finally:
        event.remove(Engine, "connect", pragmas)


def synthetic_store(tmp_path_factory) -> tuple[str, object]:
    """(uri, folder) of the store with experiments 'synthetic', 'single', 'empty', 'untagged'
    and 'crashed' (one failed run); built once per session."""
    if not _STORE:
        folder = tmp_path_factory.mktemp("analysis_store")
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        with unsynced_sqlite():
            build(uri)
            build_single(uri)
            client = MlflowClient(uri)
            client.create_experiment("empty", artifact_location=(folder / "empty").as_uri())
            bad = client.create_experiment("untagged", artifact_location=(folder / "u").as_uri())
            tags = _tags("arm", "reinit", 1.0, 0.1, 0, "unstructured", 1)
            tags.pop("study.ticket")
            client.set_terminated(client.create_run(bad, tags=tags).info.run_id, "FINISHED")
            crashed = client.create_experiment("crashed", artifact_location=(
                folder / "c").as_uri())
            _write(client, crashed, None, _tags("dense", "dense", 1.0, 0.1, 0), {}, "FAILED")
        _STORE.update(uri=uri, folder=folder)
    return _STORE["uri"], _STORE["folder"]


def raw_runs(uri: str, experiment: str = "synthetic") -> pd.DataFrame:
    """The experiment as MLflow's own columns (run_id, status, tags.*, metrics.*), read without
    the analysis package, for tests that recompute its numbers independently."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment).experiment_id
    return pd.DataFrame([{"run_id": r.info.run_id, "status": r.info.status,
                          **{f"tags.{k}": v for k, v in r.data.tags.items()},
                          **{f"metrics.{k}": v for k, v in r.data.metrics.items()}}
                         for r in client.search_runs([exp], max_results=5000)])


def test_the_store_follows_the_contract(tmp_path_factory):
    uri, _ = synthetic_store(tmp_path_factory)
    runs = raw_runs(uri)
    trials = runs[runs["tags.study.stage"] != "launch"]
    for tag in REQUIRED:
        assert trials[f"tags.{tag}"].notna().all(), tag
    for number in ("round", "seed", "width", "lr", "warmup", "rewind_step"):
        assert (trials[f"metrics.{number}"].astype(float).astype(str)
                == trials[f"tags.study.{number}"].astype(float).astype(str)).all(), number
    launch_ids = set(runs.loc[runs["tags.study.stage"] == "launch", "run_id"])
    assert set(trials["tags.mlflow.parentRunId"]) == launch_ids
    assert set(trials["tags.study.stage"]) == {"dense", "imp", "arm"}
    assert trials["tags.study.id"].str.fullmatch("[0-9a-f]{16}").all()
