"""`study bench` on tiny sizes: well-formed results, every ratio key, figures with data, honest
pruned forms. No timing assertions: on a shared machine only the structure is testable (and the
torch operator counts, which do not depend on load)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from analysis.efficiency import critical_path, recorded_runs, training_efficiency
from bench import BenchConfig, run_bench
from bench.efficiency import bare_rates, plan_efficiency, solo_bare_rate
from bench.inference import METHODS, InferenceCase, bench_inference, pruned_forms
from bench.options import OPTIONS, OptionCase, bench_option, option_cases
from bench.orchestration import compute_span, dense_trial, run_path, trial_runs
from bench.packed import PackedCase, bench_packed, linear_only, matmul_limit
from bench.report import ratios_figure, speed_figure, verdict
from bench.sparse import csr_copy, masked_copy, structured_copy
from bench.timing import torch_threads
from bench.trainer import (
    TrainerCase,
    bare_loop,
    bench_trainer,
    magnitude_masks,
    trainer_cases,
)
from study.cli import app
from study.models import build_model, count
from study.packing import Net, best_pack_size
from study.space import Space, load_space
from study.specs import TrainSpec

TINY_TRAINER = TrainerCase("tiny-mlp", "mlp", (40,), TrainSpec(optimizer="sgd", lr=0.1,
                           batch_size=20, steps=1), steps=20, reps=2, samples=200,
                           hidden=(16, 16))
TINY_INFERENCE = [InferenceCase("tiny-mlp", "mlp", (40,)),
                  InferenceCase("tiny-vgg", "vgg11", (3, 32, 32), width=0.125)]


@pytest.fixture(autouse=True)
def one_thread():
    """As the bench runs (a trial's CPU): two threads on a busy 2-core machine spin-wait."""
    with torch_threads(1):
        yield


TINY_PACKED = PackedCase("tiny-mlp", "mlp", (40,), TrainSpec(lr=0.1, batch_size=32, steps=1),
                         steps=10, ks=(1, 4), reps=2, samples=256, hidden=(16,))


def _tiny_config(**overrides) -> BenchConfig:
    return BenchConfig(trainer=[TINY_TRAINER], options=[OptionCase(TINY_TRAINER, ("bf16",))],
                       inference=TINY_INFERENCE[:1], sparsities=(0.5, 0.9), batches=(1, 4),
                       inference_reps=1, space="smoke", packed=[TINY_PACKED],
                       parts=("trainer", "options", "inference", "efficiency", "packed"),
                       **overrides)


@pytest.mark.timeout(120)
def test_packed_rows_time_packs_of_k_against_the_solo_bare_loop():
    rows = bench_packed(TINY_PACKED)
    chosen = best_pack_size(Net("mlp", (40,), 10, 1.0, (16,), TINY_PACKED.train))
    ks = sorted({1, 4} | {chosen})
    assert [(r["k"], r["stacked"]) for r in rows] == [(1, False)] + [(k, True) for k in ks]
    (default,) = [r for r in rows if r["default"]]  # the size a sweep picks, timed beside
    assert (default["k"], default["stacked"]) == (chosen, chosen > 1)
    for row in rows:
        assert {"model", "k", "samples_per_s", "ratio_vs_solo_bare",
                "share_of_matmul_limit"} <= set(row)
        assert row["model"] == "tiny-mlp" and row["samples_per_s"] > 0
        assert row["ratio_vs_solo_bare"] > 0 and 0 < row["share_of_matmul_limit"] < 1
    assert matmul_limit() > 1e8  # any CPU does 0.1 GFLOP/s
    conv = PackedCase("conv", "conv4", (3, 32, 32), TINY_PACKED.train, 1, 1)
    assert linear_only(TINY_PACKED) and not linear_only(conv)  # no matmul bound for convs


@pytest.mark.parametrize("masked", [False, True])
def test_trainer_row_is_well_formed_and_the_loop_adds_little_work(masked):
    row = bench_trainer(TINY_TRAINER, masked)
    assert row["masks"] == ("80%" if masked else "none") and row["steps"] == 20
    for key in ("ratio", "ratio_wall", "library_samples_per_s", "bare_samples_per_s"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    low, high = row["ratio_interval"]
    assert low <= row["ratio"] <= high
    assert all(len(row["times_s"][n]["cpu"]) == 2 for n in ("library", "bare"))
    # load-independent: the library's loop dispatches at most a few more torch ops per step
    # (its on-device running loss: add_ + detach), and fewer once masks are fused
    ops = row["aten_ops_per_step"]
    assert ops["library"] - ops["bare"] <= 3, row["extra_ops_per_step"]


def test_option_rows_time_the_option_against_the_default_loop():
    conv = TrainerCase("tiny-conv", "conv2", (3, 32, 32), TrainSpec(batch_size=4, steps=1),
                       steps=2, reps=2, samples=16)
    row = bench_option(conv, "channels_last")
    assert row["option"] == "channels_last" and row["ratio"] > 0
    assert set(row["samples_per_s"]) == {"default", "channels_last"}
    assert all(len(row["times_s"][n]["cpu"]) == 2 for n in ("default", "channels_last"))
    quick = {(c.case.name, o) for c in option_cases([TINY_TRAINER, conv], True)
             for o in c.options}
    assert quick == set()  # only the named bench models get option rows
    names = {(c.case.name, o) for c in BenchConfig.for_mode(True).options for o in c.options}
    assert ("mlp-mnist1d", "compile") in names and ("resnet20", "channels_last") in names
    gpu = {(c.case.name, o) for c in option_cases(trainer_cases(True), True, "cuda")
           for o in c.options}
    assert gpu == {(n, o) for n in ("conv4", "resnet20") for o in OPTIONS}


def test_bare_loop_keeps_pruned_weights_at_zero():
    model = build_model("mlp", (40,), 10, hidden=(16, 16), seed=0)
    masks = magnitude_masks(model, 0.8)
    x, y = torch.randn(100, 40), torch.randint(0, 10, (100,))
    bare_loop(model, x, y, TINY_TRAINER.train, 10, masks)
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        assert (params[name][~keep] == 0).all()
        assert abs((~keep).float().mean().item() - 0.8) < 0.02


@pytest.mark.parametrize("name,shape,width", [("mlp", (1, 28, 28), 0.25),
                                              ("vgg11", (3, 32, 32), 0.125),
                                              ("resnet20", (3, 32, 32), 0.25)])
def test_csr_forms_compute_what_the_zeroed_dense_net_computes(name, shape, width):
    model = build_model(name, shape, 10, width=width, seed=0).eval()
    zeros = masked_copy(model, 0.8)
    sparse = csr_copy(zeros)
    assert any(m.weight.layout == torch.sparse_csr for m in sparse.modules()
               if hasattr(m, "weight") and isinstance(m.weight, torch.Tensor))
    with torch.no_grad():
        for batch in (1, 3):
            x = torch.randn(batch, *shape)
            assert torch.allclose(sparse(x), zeros(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,shape,width", [("mlp", (1, 28, 28), 1.0),
                                              ("vgg11", (3, 32, 32), 0.25)])
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_structured_form_is_really_smaller_at_the_matched_sparsity(name, shape, width, sparsity):
    model = build_model(name, shape, 10, width=width, seed=0).eval()
    small, reached = structured_copy(model, sparsity)
    dense, shrunk = count(model), count(small)
    assert shrunk.total_params < dense.total_params
    assert shrunk.flops < dense.flops
    assert abs(reached - sparsity) < 0.03
    assert abs(1 - shrunk.total_weights / dense.total_weights - reached) < 1e-9
    with torch.no_grad():
        assert small(torch.randn(2, *shape)).shape == (2, 10)


def test_pruned_forms_and_inference_rows():
    forms, _ = pruned_forms(build_model("mlp", (40,), 10, hidden=(32, 16)).eval(), 0.9)
    assert set(forms) == {"dense", *METHODS}
    rows = bench_inference(TINY_INFERENCE[0], [0.5, 0.9], [1, 4], reps=1)
    assert len(rows) == 2 * 2 * len(METHODS)
    assert all(r["speedup"] > 0 and r["ms_per_forward"] > 0 for r in rows)


def _tiny_space() -> list:
    space = Space(name="tiny", model={"name": "mlp", "hidden": [8]},
                  train={"steps": 100, "eval_every": 50}, prune={"rounds": 2},
                  arms=["reinit"], seeds=[0])
    return space.expand()


def test_plan_efficiency_counts_what_a_naive_pipeline_recomputes():
    trials = _tiny_space()  # dense, imp r1, imp r2, reinit r1, reinit r2: 100 steps each
    out = plan_efficiency(trials)
    assert out["unique_steps"] == 500
    # dense 100, imp1 200, imp2 300, reinit1 300 (dense + imp1 + own), reinit2 400
    assert out["naive_steps"] == 1300
    assert out["naive_over_unique"] == pytest.approx(2.6)


@pytest.mark.timeout(120)
def test_training_efficiency_is_samples_per_core_second_over_the_bare_loops():
    space, _ = load_space("smoke")
    trials = space.expand()
    runs = {t.id: {"train_steps": 300.0} for t in trials[:4]}  # batch 100: 120,000 samples
    batches = {t.id: t.dense.train.batch_size for t in trials}
    rates = {t.id: 3000.0 if i < 2 else 1500.0 for i, t in enumerate(trials)}
    eff = training_efficiency(batches, runs, wall=10.0, cores=2, bare_rates=rates)
    assert eff["training_samples"] == 120_000
    # the bare loop: 2 x 30,000 samples at 3,000/s and 2 x 30,000 at 1,500/s: 60 core-seconds
    assert eff["solo_bare_core_seconds"] == pytest.approx(60.0)
    assert eff["efficiency"] == pytest.approx(60.0 / 10 / 2)
    assert eff["solo_bare_samples_per_s_per_core"] == pytest.approx(2000.0)
    dense = trials[0]
    assert solo_bare_rate(dense, steps=10, reps=1) > 100  # samples/s of a tiny MLP
    hidden = build_model(dense.dense.model.name, dense.dense.data.info().input_shape,
                         dense.dense.data.info().num_classes, width=dense.dense.model.width,
                         hidden=dense.dense.model.hidden).widths
    runs = {dense.id: {"widths": str([max(1, w // 4) for w in hidden])}}
    (rate,) = bare_rates([dense], runs).values()  # a structured round's narrower net
    assert rate > 100


def test_critical_path_is_the_longest_chain_of_recorded_durations():
    trials = _tiny_space()
    seconds = {("dense", 0): 10.0, ("imp", 1): 5.0, ("imp", 2): 5.0, ("arm", 1): 3.0,
               ("arm", 2): 3.0}
    runs, clock = {}, 0.0
    for t in trials:  # one after the other, each run live from its start to its record
        span = seconds[(t.stage, t.round)]
        runs[t.id] = {"start": clock, "end": clock + span, "seconds": span, "parent": "L"}
        clock += span
    launches = [{"run_id": "L", "start": 0.0, "end": clock}]
    parents = {t.id: [p.id for p in t.parents()] for t in trials}
    out = critical_path(parents, [t.id for t in trials], runs, launches, cpus=2)
    assert out["critical_path_s"] == pytest.approx(23.0)  # dense, imp1, imp2, reinit r2
    assert out["work_s"] == pytest.approx(26.0) and out["wall_s"] == pytest.approx(26.0)
    assert out["wall_over_lower_bound"] == pytest.approx(26.0 / 23.0)
    # the two arms trained as one pack, side by side: their slot time counts once
    arms = [t.id for t in trials if t.stage == "arm"]
    runs[arms[0]] = {**runs[arms[0]], "start": 0.0, "end": 3.0, "pack": "P"}
    runs[arms[1]] = {**runs[arms[1]], "start": 0.5, "end": 3.5, "pack": "P"}
    packed = critical_path(parents, [t.id for t in trials], runs, launches, cpus=2)
    assert packed["work_s"] == pytest.approx(20.0 + 3.5)


def test_run_path_records_one_trial_with_its_span(store):
    seconds = run_path("bench-run", store, [dense_trial(20)])
    runs = trial_runs(store, "bench-run")
    assert seconds > 0 and len(runs) == 1 and runs[0]["train_seconds"] > 0
    assert 0 < compute_span(runs) <= seconds + 1.0
    recorded, launches = recorded_runs("bench-run", store)  # what `--part efficiency` reads
    (trial,) = recorded.values()
    assert len(launches) == 1 and 0 < trial["seconds"] <= seconds + 1.0
    assert trial["train_steps"] == 20 and trial["parent"] == launches[0]["run_id"]


def _points(fig) -> int:
    """Markers on the data lines (the dense reference line left out)."""
    return sum(len(line.get_xdata()) for ax in fig.axes for line in ax.lines
               if line.get_gid() != "dense" and line.get_gid() != "target")


def test_run_bench_writes_every_ratio_key_and_figures_with_data(tmp_path):
    config = _tiny_config()
    results = run_bench(config, tmp_path, docs_figure=tmp_path / "docs" / "speed.png",
                        echo=lambda s: None)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert list(saved["ratios"]) == config.keys()
    for key, value in saved["ratios"].items():
        assert (value is None) == key.startswith(
            ("orchestration/", "efficiency/wall", "efficiency/training")), key
    assert saved["ratios"]["trainer/tiny-mlp/masked80"] > 0
    assert saved["ratios"]["options/tiny-mlp/bf16"] > 0
    assert saved["ratios"]["inference/tiny-mlp/b4/structured/90"] > 0
    assert saved["ratios"]["packed/tiny-mlp/k4"] > 0
    chosen = next(r for r in saved["packed"] if r["default"])
    alone = next(r for r in saved["packed"] if not r["stacked"])
    assert saved["ratios"]["packed/default/tiny-mlp"] == pytest.approx(
        chosen["ratio_vs_solo_bare"] / alone["ratio_vs_solo_bare"])
    assert [row["k"] for row in saved["packed"]][:3] == [1, 1, 4]
    for name in ("bench.png", "bench.pdf", "speed.png", "speed.pdf", "docs/speed.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    speed = speed_figure(results["inference"])
    assert _points(speed) == 1 * 2 * len(METHODS) * 2  # models x batches x methods x sparsities
    bars = ratios_figure(results["trainer"], results["ratios"])
    assert sum(p.get_height() > 0 for p in bars.axes[0].patches) == 2  # unmasked, masked
    assert "trainer/tiny-mlp/unmasked" in results["table"]


def test_verdicts_name_met_missed_and_noise():
    assert verdict("trainer/x/unmasked", 0.97) == (">= 0.95", "met")
    assert verdict("trainer/x/unmasked", 0.90, (0.85, 0.96))[1] == "missed, within noise"
    assert verdict("trainer/x/unmasked", 0.90, (0.85, 0.93))[1] == "MISSED"
    assert verdict("orchestration/trial_in_sweep_over_run", 1.2)[1] == "MISSED"
    assert verdict("orchestration/lone_trial_sweep_over_run", 1.2) == ("", "")
    assert verdict("orchestration/parallel_speedup", None)[1] == "skipped"
    assert verdict("efficiency/naive_over_unique_steps", 4.0) == ("", "")


def test_cli_bench_runs_a_part_and_refuses_unknown_parts(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "--part", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output
    if not torch.cuda.is_available():
        gpu = runner.invoke(app, ["bench", "--part", "options", "--device", "cuda"])
        assert gpu.exit_code == 2 and "no CUDA device here" in gpu.output
    ok = runner.invoke(app, ["bench", "--quick", "--part", "efficiency", "--out",
                             str(tmp_path), "--no-docs"])
    assert ok.exit_code == 0, ok.output
    assert "efficiency/naive_over_unique_steps" in ok.output
    assert json.loads((tmp_path / "bench.json").read_text())["efficiency"]["trials"] > 100


@pytest.mark.slow
@pytest.mark.ray
def test_orchestration_through_ray(ray_local):
    from bench.orchestration import bench_orchestration

    out = bench_orchestration(0.5, 1, echo=lambda s: None)
    assert out["sweep_over_run"] > 0 and out["fixed"]["mlflow_store_create_s"] > 0
    assert out["parallel"]["speedup"] > 0 and out["parallel"]["span_speedup"] > 0
    launch = out["launch"]
    assert launch["tune_launch_s"] > 0
    assert launch["overhead_s"] == pytest.approx(launch["tune_launch_s"] + launch["rest_s"])
