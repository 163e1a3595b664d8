"""The analysis of scale on the synthetic scaling study (test_analysis_store.build_scaling): the
effect map finds the planted region and nothing else, the joint law and the dense laws recover
their planted constants, the crossing sits where the planted curves cross, the best-lr choice
reads validation and never test accuracy, the power numbers match a simulation, the pooled
test matches a direct computation, and the report opens with the verdict in numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as sps
from test_analysis_store import (
    DENSE_LAW,
    LAW,
    LR_ERROR,
    SCALE_LRS,
    SCALE_PLANS,
    SCALE_SEEDS,
    SCALE_WIDTHS,
    SMALL_LAW,
    planted_error,
    planted_gap,
    scale_weights,
    scaling_store,
)

from analysis import analyze, best_lr, effect_map, power, scaling, verdict
from analysis.load import load_runs
from analysis.stats import all_comparisons

CELLS = len(SCALE_WIDTHS) * len(SCALE_LRS) * sum(p[2] for p in SCALE_PLANS.values())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    uri, folder = scaling_store(tmp_path_factory)
    frame, _, _ = load_runs("scaling", uri)
    verdicts = power.with_power(all_comparisons(frame))
    return uri, folder, frame, verdicts, effect_map.cells(verdicts, frame)


def test_the_map_finds_the_planted_region_and_nothing_else(study):
    *_, cells = study
    assert len(cells) == CELLS and (cells.n == len(SCALE_SEEDS)).all()
    planted = [planted_gap(r.lr, r.granularity, r.width, r.remaining_pct / 100) > 0
               for r in cells.itertuples()]
    assert cells.effect.tolist() == planted and any(planted)
    inside = cells[cells.effect]
    assert inside["mean"].to_numpy() == pytest.approx(0.04, abs=0.003)
    fig = effect_map.effect_map(cells)
    heatmaps = [ax for ax in fig.axes if ax.texts]
    assert len(heatmaps) == len(SCALE_PLANS) * len(SCALE_LRS)
    stars = [t.get_text() for ax in heatmaps for t in ax.texts if t.get_text().endswith("*")]
    assert len(stars) == sum(planted)
    gap, text = effect_map.grid(cells[(cells.lr == 0.01) & (cells.granularity == "unstructured")])
    assert list(gap.index) == ["4", "2", "1", "0.5"]  # widest on top
    assert list(gap.columns) == ["1 (40%)", "2 (16%)", "3 (6.4%)", "4 (2.56%)"]
    assert text.loc["4", "3 (6.4%)"].endswith("*") and not text.loc["4", "2 (16%)"].endswith("*")


def test_the_gap_at_equal_nonzero_weights_has_a_line_per_width(study):
    *_, cells = study
    fig = effect_map.effect_vs_weights(cells)
    ax = fig.axes[0]  # unstructured, lr 0.01
    assert ax.get_title() == "unstructured, magnitude, lr 0.01"
    lines = {ln.get_label(): ln for ln in ax.lines if ln.get_label().startswith("width")}
    assert set(lines) == {f"width {w:g}" for w in SCALE_WIDTHS}
    rounds = SCALE_PLANS["unstructured"][2]
    for w in SCALE_WIDTHS:
        expected = scale_weights(w) * SCALE_PLANS["unstructured"][1] ** np.arange(rounds, 0, -1)
        assert lines[f"width {w:g}"].get_xdata() == pytest.approx(expected)
    filled = sum(int((np.asarray(c.get_facecolors())[:, :3] != 1).any(axis=1).sum())
                 for c in ax.collections if hasattr(c, "get_offsets") and len(c.get_offsets()))
    assert filled == int(cells[(cells.lr == 0.01) & (cells.granularity == "unstructured")]
                         .effect.sum())
    assert effect_map.effect_vs_weights(cells[cells.width == 1.0]) == "only one width"


def test_the_verdict_says_where_and_how_it_moves_with_width(study):
    _, _, frame, verdicts, cells = study
    text = verdict.paragraph(cells, power.pooled(frame), best_lr.best_vs_best(frame),
                             pd.DataFrame(), verdicts[verdicts.comparison == "lottery vs reinit"])
    planted = sum(planted_gap(r.lr, r.granularity, r.width, r.remaining_pct / 100) > 0
                  for r in cells.itertuples())
    assert text.startswith(f"Lottery effect (lottery beats reinit, paired by seed, Holm over the "
                           f"{CELLS} cells tested: widths 0.5, 1, 2, 4, lr 0.01, 0.1, "
                           f"unstructured and structured): present at {planted} of {CELLS} "
                           "[table verdicts: lottery vs reinit].")
    assert ("unstructured at lr 0.01: at widths 0.5, 1 from 16% down to 2.56% remaining; at "
            "widths 2, 4 from 6.4% down to 2.56% remaining") in text
    assert ("Onsets, by round: unstructured, lr 0.01: first round with an effect, width 0.5: "
            "round 2, width 1: round 2, width 2: round 3, width 4: round 3") in text
    for where in ("unstructured, lr 0.1", "structured, lr 0.01", "structured, lr 0.1"):
        assert (f"No effect detected at {where}, in any cell or pooled over rounds [tables "
                f"verdicts and pooled: {where}].") in text
    assert "Pooled over rounds (one test per width, lr and granularity, Holm over 16): lottery " \
           "better at 4" in text


def _cells(onsets: dict[float, list[float]]) -> pd.DataFrame:
    """Hand-made map cells: per width, its rounds and which show an effect."""
    rows = [{"granularity": "unstructured", "lr": 0.1, "width": w, "round": r,
             "mean": 0.03 * hit, "effect": bool(hit), "verdict": "x"}
            for w, hits in onsets.items() for r, hit in zip((1, 2, 3), hits)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("onsets", "words"), [
    ({1.0: [0, 1, 1], 2.0: [1, 1, 1]}, "width 1: round 2, width 2: round 1"),
    ({1.0: [1, 1, 1], 2.0: [0, 0, 0]}, "width 1: round 1, width 2: none"),
    ({1.0: [0, 0, 1], 2.0: [0, 1, 1], 4.0: [0, 0, 1]},
     "width 1: round 3, width 2: round 2, width 4: round 3"),
])
def test_onsets_are_compared_by_round(onsets, words):
    (line,) = verdict.onsets(_cells(onsets))
    assert line == (f"unstructured, lr 0.1: first round with an effect, {words} [table "
                    "verdicts: lottery vs reinit, unstructured, lr 0.1]")


def test_the_joint_law_recovers_the_planted_constants(study):
    _, _, frame, _, _ = study
    fits = scaling.law_fits(frame)
    assert len(fits) == len(SCALE_PLANS) * len(SCALE_LRS) * 2  # lottery and reinit per panel
    exact = fits[fits.arm == "reinit"]  # reinit follows the law without noise
    for key, value in LAW.items():
        assert exact[key].to_numpy() == pytest.approx(value, rel=1e-3), key
    assert (exact.sigma < 1e-6).all() and (exact.extrapolation_max_abs < 1e-6).all()
    assert (exact.held_out_width == max(SCALE_WIDTHS)).all()
    noisy = fits[(fits.arm == "lottery") & (fits.lr == 0.1)  # zero-mean noise, no planted gap
                 & (fits.granularity == "unstructured")].iloc[0]
    assert noisy.eps_up == pytest.approx(LAW["eps_up"], rel=0.05)
    assert noisy.p == pytest.approx(LAW["p"], rel=0.1)
    assert noisy.gamma == pytest.approx(LAW["gamma"], rel=0.1)
    assert noisy.psi == pytest.approx(LAW["psi"], rel=0.05)
    assert noisy.sigma < 0.01 and noisy.extrapolation_mean_abs < 0.02


def test_the_dense_laws_recover_the_planted_constants(study):
    _, _, frame, _, _ = study
    small = scaling.dense_fits(frame)
    for lr in SCALE_LRS:
        dense = small[(small.arm == "dense") & (small.lr == lr)].iloc[0]
        a, b, c = DENSE_LAW
        assert (dense.a, dense.b, dense.c) == pytest.approx(
            (a * LR_ERROR[lr], b, c * LR_ERROR[lr]), rel=1e-4)
        assert dense.sizes == len(SCALE_WIDTHS)
        sd = small[(small.arm == "small_dense") & (small.lr == lr)].iloc[0]  # with noise
        assert sd.a == pytest.approx(SMALL_LAW[0], rel=0.05)
        assert sd.b == pytest.approx(SMALL_LAW[1], rel=0.05)
        assert sd.c == pytest.approx(SMALL_LAW[2], abs=0.005)


def test_the_crossing_is_where_the_planted_curves_cross(study):
    _, _, frame, _, _ = study
    cross = scaling.crossings(frame, resamples=40).set_index("lr")
    widest, lr = max(SCALE_WIDTHS), 0.1
    total = scale_weights(widest)

    def gap(n: float) -> float:  # lottery = reinit's law at lr 0.1 (no planted gap there)
        return (planted_error("lottery", lr, widest, n / total)
                - planted_error("small_dense", lr, widest, n / total))

    row = cross.loc[lr]
    truth = optimize.brentq(gap, row.n_low, row.n_high)
    assert row.width == widest and row.ahead_above == "prune big"
    assert row.crossing == pytest.approx(truth, rel=0.05)
    assert row.ci_low <= row.crossing <= row.ci_high and row.resamples_crossing > 0.9
    assert gap(row.n_high) < 0 < gap(row.n_low)


def test_the_best_lr_is_chosen_on_validation_never_test(study):
    _, _, frame, verdicts, _ = study
    chosen = best_lr.choose_lr(frame, "reinit")
    assert len(chosen) == CELLS // len(SCALE_LRS) and set(chosen.lr) == {0.01}  # VAL_BIAS
    by_test = frame[(frame.arm == "reinit") & (frame["round"] > 0)].groupby(
        best_lr.CELL).apply(lambda g: g.groupby("lr").final_test_acc.mean().idxmax(),
                            include_groups=False)
    assert set(by_test) == {0.1}  # the test set would have picked the other lr everywhere
    rng = np.random.default_rng(0)
    scrambled = frame.assign(final_test_acc=rng.uniform(size=len(frame)),
                             test_acc_at_best_val=rng.uniform(size=len(frame)))
    for arm in ("lottery", "reinit"):
        pd.testing.assert_frame_equal(best_lr.choose_lr(scrambled, arm),
                                      best_lr.choose_lr(frame, arm))
    best = best_lr.best_vs_best(frame)
    row = best[(best.width == 1.0) & (best.granularity == "unstructured")
               & (best["round"] == 1)].iloc[0]
    runs = frame[(frame.width == 1.0) & (frame.granularity == "unstructured")
                 & (frame["round"] == 1)]
    lottery_lr = runs[runs.arm == "lottery"].groupby("lr").best_val_acc.mean().idxmax()
    assert (row.lr_a, row.lr_b) == (lottery_lr, 0.01)
    a = runs[(runs.arm == "lottery") & (runs.lr == lottery_lr)].set_index("seed")
    b = runs[(runs.arm == "reinit") & (runs.lr == 0.01)].set_index("seed")
    assert row["mean"] == pytest.approx((a.final_test_acc - b.final_test_acc).mean())
    shown = best_lr.beside_fixed(best, verdicts)
    assert {"lottery lr", "reinit lr", "lr 0.01: A−B pp", "lr 0.1: verdict"} <= set(shown)
    assert best_lr.best_vs_best(frame[frame.lr == 0.1]).startswith("a single learning rate")


@pytest.mark.parametrize(("n", "alpha"), [(4, 0.05), (5, 0.05), (5, 0.05 / 48), (10, 0.01)])
def test_the_detectable_gap_has_80_percent_power_in_simulation(n, alpha):
    sd = 0.02
    gap = power.detectable_gap(n, sd, alpha)
    rng = np.random.default_rng(1)
    x = rng.normal(gap, sd, (200_000, n))
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / np.sqrt(n))
    rejected = np.mean(np.abs(t) > sps.t.ppf(1 - alpha / 2, n - 1))
    assert rejected == pytest.approx(0.8, abs=0.005)


def test_the_detectable_gap_tends_to_the_normal_formula():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert power.detectable_gap(2000, 1.0) == pytest.approx(z / np.sqrt(2000), rel=2e-3)
    assert np.isnan(power.detectable_gap(1, 1.0)) and power.detectable_gap(5, 0.0) == 0.0


def test_with_power_reads_the_spread_of_the_paired_differences(study):
    _, _, frame, verdicts, _ = study
    row = verdicts[(verdicts.comparison == "lottery vs reinit") & (verdicts.width == 2.0)
                   & (verdicts.lr == 0.1) & (verdicts.granularity == "structured")].iloc[0]
    mine = frame[(frame.width == 2.0) & (frame.lr == 0.1) & (frame.granularity == "structured")
                 & (frame["round"] == row["round"])]
    diff = (mine[mine.arm == "lottery"].set_index("seed").final_test_acc
            - mine[mine.arm == "reinit"].set_index("seed").final_test_acc)
    assert row.sd == pytest.approx(diff.std(ddof=1), rel=1e-9)
    assert row.detectable == pytest.approx(power.detectable_gap(len(diff), diff.std(ddof=1)))
    assert row.detectable_holm > row.detectable


def test_the_pooled_test_matches_a_direct_computation(study):
    _, _, frame, _, _ = study
    pooled = power.pooled(frame)
    assert len(pooled) == len(SCALE_WIDTHS) * len(SCALE_LRS) * len(SCALE_PLANS)
    hits = pooled[pooled.verdict == "effect: lottery better"]
    assert set(zip(hits.lr, hits.granularity)) == {(0.01, "unstructured")}
    assert sorted(hits.width) == list(SCALE_WIDTHS)
    row = pooled[(pooled.width == 2.0) & (pooled.lr == 0.01)
                 & (pooled.granularity == "unstructured")].iloc[0]
    mine = frame[(frame.width == 2.0) & (frame.lr == 0.01) & (frame.granularity == "unstructured")
                 & (frame["round"] > 0)]
    wide = mine.pivot_table(index=["seed", "round"], columns="arm", values="final_test_acc")
    gaps = (wide.lottery - wide.reinit).unstack("round")  # seeds x rounds, balanced
    x = np.log(SCALE_PLANS["unstructured"][1] ** gaps.columns.to_numpy(float))
    slope = np.polyfit(np.tile(x, len(gaps)), gaps.to_numpy().ravel(), 1)[0]
    assert row["mean"] == pytest.approx(gaps.to_numpy().mean(), abs=1e-12)
    assert row.slope == pytest.approx(slope, rel=1e-9)
    assert row.p == pytest.approx(sps.ttest_1samp(gaps.mean(axis=1), 0).pvalue, rel=1e-9)
    assert row.per_halving > 0  # the planted gap sits at the sparse end: it grows as d halves
    assert (row.seeds, row.pairs, row.rounds) == (len(SCALE_SEEDS), gaps.size, gaps.shape[1])


@pytest.mark.timeout(600)
def test_the_report_opens_with_the_answer_in_numbers(study, tmp_path):
    uri, *_ = study
    report = analyze("scaling", tmp_path, uri, echo=lambda line: None)
    text = report.read_text()
    assert text.startswith("# Study report: scaling\n\n## Answer\n\nLottery effect (lottery "
                           "beats reinit")
    assert "unstructured, lr 0.01: the gap shrinks with width (-0.4 pp per doubling" in text
    assert ("the pruned width-4 lottery net and small dense nets cross at N* ≈ 5,0" in text
            and "with significant measured points on both sides" in text)
    for name in ("5_scaling", "8_effect_map", "9_effect_vs_weights"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1000
    for name in ("scaling_laws", "train_small_laws", "crossing", "pooled", "best_lr"):
        for ext in ("md", "tex", "csv"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    laws = pd.read_csv(tmp_path / "scaling_laws.csv")
    assert {"mu", "sigma", "extrapolation_mean_abs", "held_out_width"} <= set(laws)
    assert "## Scaling law per arm" in text and " μ % |" in text and " σ % |" in text


def test_a_shrunk_nets_density_is_over_the_dense_nets_weights_not_its_own():
    """A structured round's net is smaller, not masked: its own total is the shrunk net's, so
    the law's N = d · (dense weights) must take the dense net's count (nonzero / density)."""
    runs = pd.DataFrame({
        "run_id": ["a", "b"], "arm": ["lottery", "lottery"], "width": [1.0, 1.0],
        "round": [1, 1], "seed": [0, 1], "final_test_acc": [0.6, 0.62],
        "remaining_pct": [25.0, 25.0], "nonzero_weights": [2500, 2500],
        "total_weights": [2500, 2500]})  # shrunk: every weight of its own is nonzero
    cells = scaling._cells(runs, "final_test_acc")
    assert cells.total.tolist() == [10_000] and cells.n.tolist() == [2500]
    assert cells.d.tolist() == [0.25]
