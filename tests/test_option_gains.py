"""The dry run names the execution options the options bench found paying on this machine."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from bench.options import OptionCase, option_cases, run_options
from bench.trainer import trainer_cases
from study import option_gains
from study.cli import app


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path))
    return tmp_path / "option_gains.json"


def test_the_dry_run_names_what_pays_here_and_its_switch_and_nothing_is_switched_on(cache):
    option_gains.record([
        {"model": "mlp", "option": "bf16", "ratio": 0.68, "device": "cpu"},
        {"model": "mlp", "option": "compile", "ratio": 0.97, "device": "cpu"},
        {"model": "conv4", "option": "bf16", "ratio": 1.78, "device": "cpu"},
        {"model": "conv4", "option": "channels_last", "ratio": 1.19, "device": "cpu"}])
    words = option_gains.advice(["conv4", "mlp", "conv4"])
    assert "conv4: bf16 1.78x (train.precision='bf16' in the space (changes the numbers)); " \
        "channels_last 1.19x (--channels-last)" in words
    assert "mlp: none pays (bf16 0.68x, compile 0.97x)" in words
    assert option_gains.advice(["resnet20"]).startswith("options: none measured for resnet20")
    result = CliRunner().invoke(app, ["sweep", "smoke", "--dry-run", "--tracking-uri",
                                      f"sqlite:///{cache.parent / 'mlflow.db'}"])
    assert result.exit_code == 0, result.output
    assert "mlp: none pays (bf16 0.68x, compile 0.97x)" in result.output  # smoke is an MLP


def test_a_dry_run_without_figures_says_which_command_measures_them(cache):
    assert not cache.exists()
    words = option_gains.advice(["mlp"])
    assert "none measured for mlp" in words and "`study bench --part options`" in words


@pytest.mark.timeout(120)
def test_the_options_bench_keeps_its_ratios_for_the_dry_run(cache):
    mlp = [replace(c, steps=3, reps=2) for c in trainer_cases(quick=True)
           if c.name == "mlp-mnist1d"]
    small = [OptionCase(c.case, ("bf16",)) for c in option_cases(mlp, quick=True)]
    rows = run_options(small, echo=lambda s: None)
    saved = json.loads(cache.read_text())
    (where,) = saved
    assert saved[where]["mlp"]["bf16"] == pytest.approx(rows[0]["ratio"])
