"""`analyze` end to end on the synthetic study: report, tables, figures, artifacts on the latest
launch run; and the command line's exit code 2 for experiments it cannot analyse."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from test_analysis_store import DIVERGED, synthetic_store

from analysis import AnalysisError, analyze
from analysis.__main__ import main

FIGURES = ["1_accuracy_vs_remaining_mnist1d_mlp_1", "1_accuracy_vs_remaining_mnist1d_mlp_2",
           "2_early_stop_vs_remaining_mnist1d_mlp_1", "3_rethinking", "4_regime_map",
           "5_scaling", "6_training_curves"]
TABLES = ["verdicts", "rethinking", "scaling_laws", "train_small_laws", "crossing", "pooled",
          "best_lr", "runs_not_analysed", "unmatched_runs"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    uri, folder = synthetic_store(tmp_path_factory)
    lines: list[str] = []
    report = analyze("synthetic", folder / "out", uri, echo=lines.append)
    return uri, report, lines


def test_report_has_the_verdict_table_and_sentences(analysed):
    _, report, _ = analysed
    text = report.read_text()
    assert "## Verdict table" in text and "| comparison" in text and "| verdict" in text
    assert "effect: lottery better" in text and "no effect detected" in text
    assert ("At lr 0.01, unstructured, width 1, 12.5% remaining (round 3): lottery beats "
            "reinit by +3.0 pp [") in text
    assert "no difference detected between lottery and reinit" in text
    assert "Lottery effect present (lottery > reinit, Holm-adjusted) at: lr 0.01, structured; " \
           "lr 0.01, unstructured." in text


def test_report_lists_every_run_not_analysed(analysed):
    uri, report, _ = analysed
    text = report.read_text()
    assert "runs not analysed: failed 1, killed 0, running 0, diverged 1, skipped 1" in text
    assert "unmatched runs (a compared arm without its partner): 1" in text
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("synthetic").experiment_id
    diverged = client.search_runs([exp], "tags.`study.outcome` = 'diverged'")[0]
    assert diverged.info.run_id in text and "upstream diverged" in text
    unmatched = (report.parent / "unmatched_runs.csv").read_text()
    lottery = client.search_runs([exp], f"tags.`study.arm` = 'lottery' and tags.`study.ticket` "
                                 f"= '{diverged.data.tags['study.ticket']}' and "
                                 f"tags.`study.round` = '{DIVERGED['round']}'")[0]
    assert lottery.info.run_id in unmatched and "diverged" in unmatched


def test_every_table_in_three_formats_and_every_figure_in_two(analysed):
    _, report, lines = analysed
    out = report.parent
    for name in TABLES:
        for ext in ("md", "tex", "csv"):
            assert (out / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    assert "\\begin{tabular}" in (out / "verdicts.tex").read_text()
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000, f"{name}.{ext}"
        assert f"![{name}]({name}.png)" in report.read_text()
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(FIGURES) + 1  # + width 2's early stop
    assert "<table" in page and "effect: lottery better" in page
    assert lines[-1].startswith("analysed ")


def test_every_figure_is_numbered_by_its_place_in_one_registry():
    """`pipeline.FIGURES`: a figure's number is its place, each is drawn by a step of
    `analyze` that draws its part, and the file names the report, the README and
    docs/results/quickstart/ refer to stay as they are."""
    import inspect
    from pathlib import Path

    from analysis import pipeline

    stems = [pipeline.stem(f) for f in pipeline.FIGURES]
    assert stems == [
        "1_accuracy_vs_remaining", "2_early_stop_vs_remaining", "3_rethinking", "4_regime_map",
        "5_scaling", "6_training_curves", "7_criteria", "8_effect_map", "9_effect_vs_weights",
        "10_barrier_vs_k", "11_barrier_vs_gap", "12_damage_recovery", "13_finetune_chain",
        "14_compute", "15_effect_map_at_init", "16_effect_map_dynamic",
        "17_accuracy_vs_nonzero"]
    quickstart = Path(__file__).parents[1] / "docs" / "results" / "quickstart"
    for png in quickstart.glob("*.png"):
        assert any(png.stem == s or png.stem.startswith(s + "_") for s in stems), png.name
    source = inspect.getsource(pipeline)
    for part in {f.part for f in pipeline.FIGURES}:
        assert f'_draw(book, "{part}"' in source, part


def test_figures_and_report_are_logged_to_the_latest_launch(analysed):
    uri, report, _ = analysed
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("synthetic").experiment_id
    launches = sorted(client.search_runs([exp], "tags.`study.stage` = 'launch'"),
                      key=lambda r: r.info.start_time)
    logged = {f.path for f in client.list_artifacts(launches[-1].info.run_id, "analysis")}
    assert {"analysis/report.md", "analysis/report.html", "analysis/verdicts.csv",
            "analysis/4_regime_map.png", "analysis/4_regime_map.pdf"} <= logged
    assert not client.list_artifacts(launches[0].info.run_id, "analysis")


def test_missing_data_skips_a_figure_with_its_reason(tmp_path_factory, tmp_path):
    uri, _ = synthetic_store(tmp_path_factory)
    lines: list[str] = []
    text = analyze("single", tmp_path, uri, echo=lines.append).read_text()
    assert "- scaling figure (5_scaling) skipped: only one width (1)" in text
    assert "- scaling laws skipped: only one width" in text
    assert "- lottery-effect map (8_effect_map) skipped: only one width" in text
    assert "- best-lr comparison skipped: a single learning rate: nothing to choose from" in text
    assert text.startswith("# Study report: single\n\n## Answer\n\nLottery effect")
    assert "- regime map (4_regime_map) skipped: a single learning rate and a single " \
           "granularity" in text
    assert "- Rethinking comparison (3_rethinking) skipped: no fine-tuned and Scratch-B runs" \
           in text
    assert not (tmp_path / "5_scaling.png").exists()
    assert (tmp_path / "1_accuracy_vs_remaining.png").exists()
    assert any("not logged" in line for line in lines)  # no launch run to log to


def test_an_experiment_whose_runs_all_failed_still_gets_a_report(tmp_path_factory, tmp_path):
    uri, _ = synthetic_store(tmp_path_factory)
    text = analyze("crashed", tmp_path, uri, echo=lambda line: None).read_text()
    assert "runs not analysed: failed 1" in text
    assert "every figure skipped: no trial run finished" in text
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(("experiment", "message"), [
    ("nothing", "unknown experiment 'nothing'"),
    ("empty", "experiment 'empty' has no trial runs"),
    ("untagged", "lacks the required tag 'study.ticket'"),
])
def test_the_command_line_exits_2_with_the_reason(tmp_path_factory, tmp_path, capsys,
                                                    experiment, message):
    uri, _ = synthetic_store(tmp_path_factory)
    assert main([experiment, "--tracking-uri", uri, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(AnalysisError, match=message):
        analyze(experiment, tmp_path, uri)


def test_a_store_that_does_not_exist_is_not_created(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    assert main(["quickstart", "--tracking-uri", uri]) == 2
    assert "no tracking store" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()
