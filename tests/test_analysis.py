"""Analysis on synthetic MLflow experiments with a planted effect (and an absent one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from scipy import stats as sps

from analysis import AnalysisError, analyze, figures
from analysis.__main__ import main
from analysis.load import load_runs
from analysis.stats import MIN_SEEDS, all_comparisons, bootstrap_interval, holm

SEEDS = range(5)
PLANTED = 0.03  # lottery beats reinit by 3 pp at lr 0.01, not at all at lr 0.1
NOISE = [0.004, -0.004, 0.002, -0.002, 0.0]


def _run(client, exp, parent, tags, metrics, curve=()):
    run = client.create_run(exp, tags={**tags, "mlflow.parentRunId": parent})
    rid = run.info.run_id
    rows = [Metric(k, v, 0, 0) for k, v in metrics.items()]
    rows += [Metric("val_acc", v, 0, s) for s, v in curve]
    client.log_batch(rid, metrics=rows)
    client.set_terminated(rid, "FINISHED")
    return rid


def build(uri: str, name: str = "synthetic", diverged: bool = True) -> None:
    client = MlflowClient(uri)
    exp = client.create_experiment(name, artifact_location=uri.replace(
        "sqlite:///", "file://").replace("mlflow.db", "artifacts"))
    parent = client.create_run(exp, tags={"study.stage": "launch", "study.space": name,
                                          "study.version": "test"}).info.run_id
    for lr in (0.01, 0.1):
        for seed in SEEDS:
            base = {"study.model": "mlp", "study.width": "1.0", "study.dataset": "mnist1d",
                    "study.lr": str(lr), "study.seed": str(seed), "study.warmup": "0",
                    "study.outcome": "finished"}
            dense_id = f"d{lr}{seed}"
            _run(client, exp, parent, {**base, "study.id": dense_id, "study.stage": "dense",
                                       "study.arm": "dense", "study.granularity": "none",
                                       "study.round": "0", "study.ticket": dense_id,
                                       "study.dense_id": dense_id},
                 {"final_test_acc": 0.9, "sparsity": 0.0, "nonzero_weights": 1000,
                  "early_stop_step": 100})
            for r in (1, 2):
                ticket = f"t{lr}{seed}"
                for arm, shift in (("lottery", PLANTED if lr == 0.01 else 0.0),
                                   ("reinit", 0.0), ("scratch_b", 0.01)):
                    acc = 0.8 - 0.02 * r + shift + (NOISE[seed] if arm == "lottery" else 0.0)
                    _run(client, exp, parent,
                         {**base, "study.id": f"{arm}{lr}{seed}{r}",
                          "study.stage": "imp" if arm == "lottery" else "arm",
                          "study.arm": arm, "study.granularity": "unstructured",
                          "study.scope": "layerwise", "study.criterion": "magnitude",
                          "study.round": str(r), "study.ticket": ticket,
                          "study.dense_id": dense_id, "study.rewind_step": "0"},
                         {"final_test_acc": acc, "sparsity": 1 - 0.5**r,
                          "nonzero_weights": 1000 * 0.5**r, "early_stop_step": 100 * r},
                         curve=[(10, acc - 0.1), (20, acc)])
    if diverged:
        _run(client, exp, parent, {"study.id": "bad", "study.stage": "arm", "study.arm": "reinit",
                                   "study.granularity": "unstructured", "study.round": "1",
                                   "study.seed": "0", "study.ticket": "t0.010", "study.model":
                                   "mlp", "study.width": "1.0", "study.dataset": "mnist1d",
                                   "study.lr": "5.0", "study.outcome": "diverged",
                                   "study.diverged_step": "30"}, {})


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analysis")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    build(uri)
    return uri, folder


def test_verdicts_find_the_planted_effect_and_only_it(synthetic):
    uri, _ = synthetic
    frame, unusable, _ = load_runs("synthetic", uri)
    verdicts = all_comparisons(frame)
    lvr = verdicts[verdicts.comparison == "lottery vs reinit"].set_index(["lr", "round"])
    for r in (1, 2):
        assert lvr.loc[(0.01, r), "verdict"] == "effect: lottery better"
        assert lvr.loc[(0.01, r), "mean"] == pytest.approx(PLANTED)
        assert lvr.loc[(0.1, r), "verdict"] == "no effect detected"
        assert lvr.loc[(0.1, r), "mean"] == pytest.approx(0.0, abs=1e-12)
    assert list(unusable.reason) == ["diverged"]


def test_intervals_and_holm_match_a_direct_computation(synthetic):
    uri, _ = synthetic
    frame, _, _ = load_runs("synthetic", uri)
    verdicts = all_comparisons(frame)
    row = verdicts[(verdicts.comparison == "lottery vs reinit") & (verdicts.lr == 0.01)
                   & (verdicts["round"] == 1)].iloc[0]
    diffs = PLANTED + np.array(NOISE)
    half = sps.t.ppf(0.975, 4) * diffs.std(ddof=1) / np.sqrt(5)
    assert (row.t_low, row.t_high) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert (row.boot_low, row.boot_high) == pytest.approx(bootstrap_interval(diffs))
    assert row.boot_low <= diffs.mean() <= row.boot_high
    family = verdicts[verdicts.comparison == "lottery vs reinit"]
    p = family.p.to_numpy()
    order = np.argsort(p)
    expected = np.maximum.accumulate(np.minimum(1, (len(p) - np.arange(len(p))) * p[order]))
    direct = np.empty_like(p)
    direct[order] = expected
    assert family.p_holm.to_numpy() == pytest.approx(direct)


def test_holm_by_hand():
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])


def test_too_few_seeds_is_said_not_guessed(synthetic):
    uri, _ = synthetic
    frame, _, _ = load_runs("synthetic", uri)
    few = frame[frame.seed < MIN_SEEDS - 1]
    verdicts = all_comparisons(few)
    assert set(verdicts.verdict) == {"too few seeds"}


def test_figures_hold_the_expected_points(synthetic):
    uri, _ = synthetic
    frame, _, _ = load_runs("synthetic", uri)
    fig = figures.accuracy_vs_remaining(frame)
    axes = fig.axes
    panel = axes[0]  # unstructured, lr 0.01: one line per arm (dense, lottery, reinit, B)
    lines = [ln for ln in panel.lines if ln.get_label() in figures.LABELS.values()]
    assert len(lines) == 4
    points = {ln.get_label(): len(ln.get_xdata()) for ln in lines}
    assert points[figures.LABELS["lottery"]] == 2 and points[figures.LABELS["dense"]] == 1


def test_scaling_figure_fits_power_laws_or_says_why():
    rng = np.random.default_rng(0)
    rows = []
    for width, n in ((0.5, 500), (1.0, 1000), (2.0, 2000)):
        for arm in ("lottery", "finetune", "small_dense", "scratch_b"):
            for _ in range(3):
                rows.append({"arm": arm, "width": width, "granularity": "unstructured",
                             "nonzero_weights": n * (0.5 if arm in ("lottery", "finetune")
                                                     else 1),
                             "final_test_acc": 1 - 2 * n ** -0.3 + rng.normal(0, 1e-3)})
    fig = figures.scaling(pd.DataFrame(rows))
    ax = fig.axes[0]
    assert len(ax.collections) == 4 and len(ax.lines) == 2  # 4 arms scattered, 2 fits
    one_width = pd.DataFrame(rows).query("width == 1.0")
    assert "single width" in figures.scaling(one_width)
    a, b = figures.power_law(np.array([10.0, 100, 1000]), 2 * np.array([10.0, 100, 1000])**-0.5)
    assert (a, b) == pytest.approx((2.0, 0.5))


def test_analyze_writes_report_tables_and_logs_to_the_launch(synthetic):
    uri, folder = synthetic
    out = folder / "out"
    report = analyze("synthetic", out, uri, echo=lambda line: None)
    text = report.read_text()
    assert "| comparison" in text and "effect: lottery better" in text
    assert "diverged" in text  # the diverged run is listed, not dropped
    for name in ("verdicts.csv", "verdicts.tex", "report.html", "1_accuracy_vs_remaining.png",
                 "4_regime_map.pdf", "6_training_curves.png"):
        assert (out / name).exists(), name
    assert "5_scaling: scaling figure skipped" in text
    client = MlflowClient(uri)
    launch = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id],
                                "tags.`study.stage` = 'launch'")[0]
    logged = [f.path for f in client.list_artifacts(launch.info.run_id, "analysis")]
    assert "analysis/report.md" in logged


def test_bad_experiments_are_explained(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    assert main(["nothing", "--tracking-uri", uri]) == 2
    assert "unknown experiment 'nothing'" in capsys.readouterr().err
    exp = client.create_experiment("empty", artifact_location=(tmp_path / "a").as_uri())
    with pytest.raises(AnalysisError, match="no trial runs"):
        analyze("empty", tmp_path / "out", uri)
    run = client.create_run(exp, tags={"study.stage": "arm", "study.arm": "reinit"})
    client.set_terminated(run.info.run_id)
    with pytest.raises(AnalysisError, match="lacks tag 'study.id'"):
        analyze("empty", tmp_path / "out", uri)
