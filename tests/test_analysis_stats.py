"""Paired statistics on the synthetic study: the planted effect is found where it was planted
and nowhere else; intervals and Holm agree with a direct computation from the raw runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from test_analysis_store import (
    DIVERGED,
    EFFECT_LR,
    PLANTED,
    ROUNDS,
    SEEDS,
    noise,
    raw_runs,
    synthetic_store,
)

from analysis.load import load_runs
from analysis.stats import (
    ALPHA,
    BOOTSTRAP_SEED,
    MIN_SEEDS,
    RESAMPLES,
    all_comparisons,
    compare,
    holm,
    t_interval,
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    uri, _ = synthetic_store(tmp_path_factory)
    frame, _, _ = load_runs("synthetic", uri)
    return uri, frame, all_comparisons(frame)


def raw_differences(uri: str, a: str, b: str) -> dict[tuple, np.ndarray]:
    """A - B per (width, lr, granularity, round), from MLflow's own DataFrame, by seed."""
    runs = raw_runs(uri)
    runs = runs[(runs.status == "FINISHED") & (runs["tags.study.outcome"] == "finished")]
    key = ["tags.study.width", "tags.study.lr", "tags.study.granularity", "tags.study.round",
           "tags.study.ticket", "tags.study.seed"]
    wide = runs.pivot_table(index=key, columns="tags.study.arm",
                            values="metrics.final_test_acc").dropna(subset=[a, b])
    out = {}
    for (w, lr, g, r), part in wide.groupby(level=[0, 1, 2, 3]):
        out[(float(w), float(lr), g, int(r))] = (part[a] - part[b]).to_numpy()
    return out


def test_the_planted_effect_is_found_and_only_there(study):
    _, _, verdicts = study
    lvr = verdicts[verdicts.comparison == "lottery vs reinit"]
    assert len(lvr) == 2 * 2 * len(ROUNDS)  # reinit only at width 1.0
    for row in lvr.itertuples():
        here = {"arm": "reinit", "lr": row.lr, "granularity": row.granularity,
                "round": row.round}
        seeds = [s for s in SEEDS if {**here, "seed": s} != DIVERGED]
        seed_noise = noise("lottery", row.lr, row.granularity, row.width, row.round)[seeds]
        if row.lr == EFFECT_LR:
            assert row.verdict == "effect: lottery better"
            assert row.mean == pytest.approx(PLANTED, abs=1e-9)
            assert row.t_low > 0 and row.boot_low > 0
        else:
            assert row.verdict == "no effect detected"
            assert row.mean == pytest.approx(seed_noise.mean(), abs=1e-9)
            assert row.t_low < 0 < row.t_high


def test_a_diverged_partner_leaves_fewer_pairs(study):
    _, _, verdicts = study
    lvr = verdicts[verdicts.comparison == "lottery vs reinit"].set_index(
        ["lr", "granularity", "round"])
    assert lvr.loc[(DIVERGED["lr"], DIVERGED["granularity"], DIVERGED["round"]), "n"] == 4
    assert (lvr.drop((DIVERGED["lr"], DIVERGED["granularity"], DIVERGED["round"])).n
            == len(SEEDS)).all()


def test_intervals_match_a_direct_computation(study):
    uri, _, verdicts = study
    for (a, b) in [("lottery", "reinit"), ("finetune", "scratch_b"), ("lottery", "small_dense")]:
        direct = raw_differences(uri, a, b)
        table = verdicts[verdicts.comparison == f"{a} vs {b}"]
        assert len(table) == len(direct)
        for row in table.itertuples():
            d = direct[(row.width, row.lr, row.granularity, row.round)]
            low, high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
            assert (row.t_low, row.t_high) == pytest.approx((low, high), abs=1e-12)
            assert row.p == pytest.approx(sps.ttest_1samp(d, 0).pvalue, rel=1e-9)
            rng = np.random.default_rng(BOOTSTRAP_SEED)
            means = np.sort(d)[rng.integers(0, len(d), (RESAMPLES, len(d)))].mean(axis=1)
            boot = np.percentile(means, [2.5, 97.5])
            assert (row.boot_low, row.boot_high) == pytest.approx(tuple(boot), abs=1e-12)
            assert row.n == len(d) and row.mean == pytest.approx(d.mean(), abs=1e-12)


def step_down(p: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Holm's procedure as written in the textbook: reject the smallest p while
    p_(k) <= alpha / (m - k), stop at the first failure."""
    reject = np.zeros(len(p), bool)
    for k, index in enumerate(np.argsort(p)):
        if p[index] > alpha / (len(p) - k):
            break
        reject[index] = True
    return reject


def test_holm_decisions_match_the_step_down_procedure(study):
    _, _, verdicts = study
    for name, family in verdicts.groupby("comparison"):
        tested = family[family.n >= MIN_SEEDS]
        assert ((tested.p_holm < ALPHA).to_numpy() == step_down(tested.p.to_numpy())).all(), name
        assert (tested.p_holm >= tested.p - 1e-15).all()
        effects = tested.verdict.str.startswith("effect")
        assert (effects == (tested.p_holm < ALPHA)).all()


def test_holm_by_hand():
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert holm(np.array([0.001, 0.9])) == pytest.approx([0.002, 0.9])
    p = np.array([0.004, 0.03, 0.012, 0.5])
    assert (holm(p) < 0.05).tolist() == step_down(p).tolist() == [True, False, True, False]


def test_too_few_seeds_is_said_not_guessed(study):
    _, frame, _ = study
    few = compare(frame[frame.seed < MIN_SEEDS - 1], "lottery", "reinit")
    assert set(few.verdict) == {"too few seeds"} and few.p_holm.isna().all()
    assert (few.n == MIN_SEEDS - 1).all()


def test_the_metric_is_a_parameter(study):
    _, frame, verdicts = study
    early = compare(frame, "lottery", "reinit", "test_acc_at_best_val")
    final = verdicts[verdicts.comparison == "lottery vs reinit"].reset_index(drop=True)
    assert early["mean"].to_numpy() == pytest.approx(final["mean"].to_numpy())
    assert (early.mean_a.to_numpy() == pytest.approx(final.mean_a.to_numpy() - 0.002))


def test_identical_differences_need_no_variance():
    assert t_interval(np.array([0.02, 0.02, 0.02])) == (0.02, 0.02, 0.0)
    assert t_interval(np.zeros(3))[2] == 1.0


def test_an_experiment_without_compared_arms_has_no_verdicts():
    frame = pd.DataFrame({"arm": ["dense"], "ticket": ["t"], "round": [0], "seed": [0],
                          "final_test_acc": [0.9], "remaining_pct": [100.0],
                          **{k: ["x"] for k in ("dataset", "model", "granularity", "scope",
                                                "criterion", "schedule", "retrain")},
                          **{k: [1.0] for k in ("width", "lr", "warmup", "rewind_step")}})
    assert all_comparisons(frame).empty
