"""Execution options against the default loop: do bf16, channels-last and compile pay here?

Each option trains the same model copy on the same batches as the default (fp32, contiguous,
eager) library loop, timed in turn. `torch.compile` is timed after its compile, which is
reported on its own with the steps it takes to win it back. The defaults on CPU follow from
these numbers; on a GPU the same rows are the check to run (`scripts/gpu_check.sh`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch

from bench.timing import paired_ratio, race, ratio_interval
from bench.trainer import TrainerCase
from study.execution import Execution
from study.option_gains import record
from study.train import train

OPTIONS = ("bf16", "channels_last", "compile")


@dataclass(frozen=True)
class OptionCase:
    case: TrainerCase
    options: tuple[str, ...]


def option_cases(trainer: list[TrainerCase], quick: bool, device: str = "cpu",
                 ) -> list[OptionCase]:
    """On CPU: bf16 and compile on the MLP, every option on Conv-4, channels-last on ResNet-20
    (whose compile takes longer than the quick bench has). On a GPU: every option on the conv
    nets, at a batch that fills the GPU, and many steps per round."""
    by_name = {c.name: c for c in trainer}
    if device.startswith("cuda"):
        return [OptionCase(_on_gpu(by_name[n], quick), OPTIONS) for n in ("conv4", "resnet20")
                if n in by_name]
    wanted = {"mlp-mnist1d": ("bf16", "compile"), "conv4": OPTIONS,
              "resnet20": ("channels_last",)}
    return [OptionCase(by_name[n], opts) for n, opts in wanted.items() if n in by_name]


def _on_gpu(case: TrainerCase, quick: bool) -> TrainerCase:
    batch = 256
    return replace(case, train=case.train.model_copy(update={"batch_size": batch}),
                   steps=30 if quick else 100, reps=3 if quick else 5, samples=batch * 8)


def _setting(option: str, device: str) -> tuple[Execution, str]:
    """(execution, precision) of the default loop, or of the loop with `option` switched on."""
    execution = Execution(device=device, channels_last=option == "channels_last",
                          compile=option == "compile")
    return execution, "bf16" if option == "bf16" else "fp32"


def bench_option(case: TrainerCase, option: str, device: str = "cpu", seed: int = 0) -> dict:
    """Samples/s of the loop with `option` against the default loop on `case`."""
    data, template, spec = case.inputs(device, seed)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def setup(name: str, steps: int):
        execution, precision = _setting(name, device)
        model = copy.deepcopy(template).to(device)
        run_spec = spec.model_copy(update={"precision": precision})
        return lambda: (train(model, data, run_spec, seed=seed, total_steps=steps,
                              execution=execution), sync())

    first, times = race(["default", option], case.steps, case.reps, setup)
    base, other = times["default"], times[option]
    clock = "wall" if device.startswith("cuda") else "cpu"
    step_gain = (sum(base[clock]) - sum(other[clock])) / (case.reps * case.steps)
    row = {
        "case": case.name, "option": option, "device": device, "steps": case.steps,
        "batch": case.train.batch_size, "reps": case.reps,
        "samples_per_s": {n: case.steps * case.train.batch_size / min(t["wall"])
                          for n, t in times.items()},
        "ratio": paired_ratio(base[clock], other[clock]),
        "ratio_interval": ratio_interval(base[clock], other[clock]),
        "first_call_s": first, "times_s": times,
    }
    if option == "compile":
        extra = first[option] - first["default"]
        row["compile_s"] = extra
        row["break_even_steps"] = extra / step_gain if step_gain > 0 else None
    return row


def run_options(cases: list[OptionCase], device: str = "cpu", echo=print) -> list[dict]:
    rows = []
    for oc in cases:
        for option in oc.options:
            rows.append(row := bench_option(oc.case, option, device))
            low, high = row["ratio_interval"]
            tail = ""
            if option == "compile":
                even = row["break_even_steps"]
                tail = (f"; compile {row['compile_s']:.1f}s, pays after "
                        + (f"{even:,.0f} steps" if even is not None else "never"))
            speed = row["samples_per_s"]
            echo(f"  option {row['case']:<12} {option:<13} over default {row['ratio']:.3f}x "
                 f"[{low:.3f}, {high:.3f}] ({speed[option]:,.0f} vs {speed['default']:,.0f} "
                 f"samples/s on {device}){tail}")
    record([{"model": oc.case.model, "option": r["option"], "ratio": r["ratio"],
             "device": device} for oc in cases for r in rows if r["case"] == oc.case.name])
    return rows
