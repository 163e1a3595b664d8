"""`study bench`: the measurements in order, at full or quick size, into one result."""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.efficiency import sweep_efficiency
from bench.inference import InferenceCase, inference_cases, run_inference
from bench.options import OptionCase, option_cases, run_options
from bench.orchestration import bench_orchestration
from bench.packed import PackedCase, packed_cases, run_packed
from bench.profiling import cprofiled
from bench.records import bench_records
from bench.report import collect_ratios, intervals, ratio_keys, table, write
from bench.timing import load_average, torch_threads
from bench.trainer import TrainerCase, run_trainer, trainer_cases
from study.space import load_space


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of every measurement; `for_mode` gives the full and the quick (< 3 min) sets."""

    quick: bool = False
    threads: int = 1
    """Torch threads for the in-process measurements (a trial's default: 1 CPU)."""
    parts: tuple[str, ...] = field(default_factory=lambda: tuple(PARTS))
    trainer: list[TrainerCase] = field(default_factory=list)
    options: list[OptionCase] = field(default_factory=list)
    """bf16, channels-last and compile, each against the default loop."""
    trial_seconds: float = 30.0
    """Length of the orchestration trial (the 5% target is stated for 30 s)."""
    orchestration_reps: int = 2
    """Interleaved run/sweep pairs."""
    inference: list[InferenceCase] = field(default_factory=list)
    sparsities: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    batches: tuple[int, ...] = (1, 256)
    inference_reps: int = 9
    space: str = "quickstart"
    """Space whose plan the efficiency part counts."""
    profile_select: tuple[str, ...] = ()
    """The trials of `space` (with their parents) whose packs the efficiency part profiles."""
    tracking_uri: str | None = None
    """A store holding a finished run of `space`: adds wall time against the critical path."""
    packed: list[PackedCase] = field(default_factory=list)
    """Packs of K stacked nets against the solo bare loop."""
    record_packs: int = 4
    """Packs of 16 runs each writer of the records part records."""
    device: str = "cpu"
    """Where the options and packed parts train (the GPU check); the others measure the CPU."""

    @classmethod
    def for_mode(cls, quick: bool, **overrides) -> BenchConfig:
        sizes = (dict(trial_seconds=2.0, orchestration_reps=1, inference_reps=2, record_packs=1)
                 if quick else {})
        if overrides.get("space", "quickstart") == "quickstart":  # one width's chains: ~30 s
            lr = load_space("quickstart")[0].grid["train.lr"][0]  # quick: its first lr only
            sizes["profile_select"] = ("seed=0", "model.width=0.5", *(
                (f"train.lr={lr:g}",) if quick else ()))
        trainer = trainer_cases(quick)
        device = overrides.get("device", "cpu")
        return cls(quick=quick, trainer=trainer, options=option_cases(trainer, quick, device),
                   inference=inference_cases(), packed=packed_cases(quick),
                   **{**sizes, **overrides})

    def keys(self) -> list[str]:
        return ratio_keys([c.name for c in self.trainer], [c.name for c in self.inference],
                          list(self.batches), list(self.sparsities),
                          [(c.case.name, o) for c in self.options for o in c.options],
                          [(c.name, k) for c in self.packed for k in c.ks])


def _meta(config: BenchConfig) -> dict:
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = ""
    gpu = torch.cuda.get_device_name(config.device) if config.device.startswith("cuda") else None
    return {"quick": config.quick, "threads": config.threads, "torch": torch.__version__,
            "device": config.device, "gpu": gpu,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": torch.multiprocessing.cpu_count(), "git": revision,
            "load_average_start": load_average(), "trial_seconds": config.trial_seconds,
            "clock": "ratios from CPU time of interleaved rounds, except orchestration (wall)"}


def run_bench(config: BenchConfig, out: Path | None = None, docs_figure: Path | None = None,
              echo=print, profile: bool = False) -> dict:
    """Run the configured parts; write bench.json and the figures to `out` if given, and with
    `profile` each part's cProfile summary to out/profile/PART.txt."""
    results: dict = {"meta": _meta(config), "seconds": {}}
    with torch_threads(config.threads):
        for part in config.parts:
            echo(f"[bench] {part}")
            start = time.perf_counter()
            if profile and out is not None:
                results[part] = cprofiled(lambda p=part: PARTS[p](config, echo),
                                          out / "profile" / f"{part}.txt")
            else:
                results[part] = PARTS[part](config, echo)
            results["seconds"][part] = time.perf_counter() - start
    results["meta"]["load_average_end"] = load_average()
    results["ratios"] = collect_ratios(results, config.keys())
    results["intervals"] = intervals(results)
    results["table"] = table(results["ratios"], results.get("inference") or [],
                             results["intervals"])
    if out is not None:
        results["files"] = {k: str(v) for k, v in write(results, out, docs_figure).items()}
    return results


PARTS: dict[str, Callable[[BenchConfig, Callable[[str], object]], object]] = {
    "trainer": lambda c, echo: run_trainer(c.trainer, echo),
    "options": lambda c, echo: run_options(c.options, c.device, echo=echo),
    "orchestration": lambda c, echo: bench_orchestration(c.trial_seconds, c.orchestration_reps,
                                                         echo=echo),
    "inference": lambda c, echo: run_inference(c.inference, list(c.sparsities), list(c.batches),
                                               c.inference_reps, echo),
    "efficiency": lambda c, echo: sweep_efficiency(c.space, c.tracking_uri, echo,
                                                   c.profile_select),
    "packed": lambda c, echo: run_packed(c.packed, c.device, echo),
    "records": lambda c, echo: bench_records(packs=c.record_packs, echo=echo),
}
"""Every part of the benchmark by name, in the order `study bench` runs them."""
