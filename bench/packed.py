"""Packed training against the one-at-a-time bare loop: what stacking K small nets buys.

Each case times, in turn (A, B, C, ...), the solo bare loop (`bench.trainer.bare_loop`:
one net, torch.optim, hand-written), the library's plain loop (`study.train.Solo`, what a trial
alone runs) and its loop on packs of K members (`study.train.train_members`, stacked even at
K = 1), on the same random data, batch and thread count. A pack does K nets' work, so its
samples/s counts K x batch samples a step. Beside them, the pack size a sweep picks for the net
by default (`study.packing`, measured once per machine) and that choice's gain.

The share of the matmul limit is the pack's training FLOPs (3 x the forward's 2 x
multiply-accumulates per sample) over the float32 matmul throughput measured here on one large
product: a bound for nets of linear layers only. A convolution has no such bound here (oneDNN's
direct and Winograd kernels beat the product's rate: Conv-4 read 1.5x of it), so its share is
left out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from bench.timing import median, paired_ratio, race, timed
from bench.trainer import CONTIGUOUS, TrainerCase, bare_loop
from study.execution import Execution
from study.models import build_model, count
from study.packing import Net, best_pack_size
from study.specs import TrainSpec
from study.train import Member, train_members

MATMUL_SIZE = 1024


@dataclass(frozen=True)
class PackedCase(TrainerCase):
    ks: tuple[int, ...] = (1,)
    """Pack sizes timed against the solo bare loop."""


def packed_cases(quick: bool) -> list[PackedCase]:
    """The quickstart's MNIST-1D MLP (K up to 64), LeNet-300-100 and Conv-4 (K up to 16)."""
    mlp_steps, lenet_steps, conv_steps = (60, 20, 2) if quick else (150, 40, 3)
    reps = 3 if quick else 5
    return [
        PackedCase("mlp-mnist1d", "mlp", (40,), TrainSpec(
            optimizer="sgd", lr=0.1, momentum=0.9, batch_size=100, steps=1), mlp_steps, reps,
            samples=3600, hidden=(100, 100), ks=(1, 4, 16, 64)),
        PackedCase("lenet-300-100", "mlp", (1, 28, 28), TrainSpec(
            optimizer="adam", lr=1.2e-3, batch_size=60, steps=1), lenet_steps, reps,
            samples=2048, ks=(1, 4, 16)),
        PackedCase("conv4", "conv4", (3, 32, 32), TrainSpec(
            optimizer="adam", lr=3e-4, batch_size=16 if quick else 60, steps=1), conv_steps,
            2 if quick else 3, samples=512, ks=(1, 4, 16)),
    ]


def matmul_limit(device: str = "cpu") -> float:
    """Float32 FLOP/s of one large matrix product here, at the current thread count (best of 5)."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen).to(device) for _ in range(2))
    sync = _sync(device)
    a @ b
    sync()
    best = min(timed(lambda: (a @ b, sync()))[0] for _ in range(5))
    return 2 * MATMUL_SIZE**3 / best


def _sync(device: str):
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def bench_packed(case: PackedCase, device: str = "cpu", limit: float | None = None,
                 seed: int = 0) -> list[dict]:
    """One row per K: samples/s, ratio to the solo bare loop timed beside it, share of the
    matmul limit (and the bare loop's own samples/s)."""
    data, _, spec = case.inputs(device, seed)
    chosen = best_pack_size(Net(case.model, case.input_shape, 10, 1.0, case.hidden, case.train),
                            device, torch.get_num_threads())
    ks = sorted(set(case.ks) | ({chosen} - {1}))  # the default is timed whatever the case asks
    templates = [build_model(case.model, case.input_shape, 10, hidden=case.hidden, seed=i)
                 for i in range(max(ks))]
    flops = 6 * _flops(case) if linear_only(case) else None  # training FLOPs per sample
    execution = Execution(device=device, channels_last=CONTIGUOUS.channels_last)
    sync, names = _sync(device), ["solo bare", "solo", *(f"K={k}" for k in ks)]

    def make(name: str, steps: int):
        if name == "solo bare":
            model = copy.deepcopy(templates[0]).to(device)
            return lambda: (bare_loop(model, data.x_train, data.y_train, spec, steps,
                                      seed=seed), sync())
        k = 1 if name == "solo" else int(name.removeprefix("K="))
        members = [Member(copy.deepcopy(t).to(device), spec, i)
                   for i, t in enumerate(templates[:k])]
        return lambda: (train_members(members, data, total_steps=steps, execution=execution,
                                      stacked=name != "solo"), sync())

    _, times = race(names, case.steps, case.reps, make)
    samples = case.steps * spec.batch_size
    bare = times["solo bare"]
    limit = limit or matmul_limit(device)
    bare_per_s = samples / median(bare["wall"])
    rows = []
    for name in names[1:]:
        t, k = times[name], 1 if name == "solo" else int(name.removeprefix("K="))
        per_s = k * samples / median(t["wall"])
        rows.append({
            "model": case.name, "k": k, "stacked": name != "solo", "samples_per_s": per_s,
            # K nets' work in the time of one pack round, over one bare net's in its round
            "ratio_vs_solo_bare": k * paired_ratio(bare["wall"], t["wall"]),
            "share_of_matmul_limit": per_s * flops / limit if flops else None,
            "ratio_vs_solo_bare_cpu_time": k * paired_ratio(bare["cpu"], t["cpu"]),
            "default": k == chosen and (name == "solo") == (chosen == 1),
            "solo_bare_samples_per_s": bare_per_s, "device": device,
            "threads": torch.get_num_threads(), "steps": case.steps, "reps": case.reps,
        })
    return rows


def linear_only(case: PackedCase) -> bool:
    """Whether the net's weights are all linear layers (the matmul limit bounds those)."""
    model = build_model(case.model, case.input_shape, 10, hidden=case.hidden)
    return not any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())


def _flops(case: PackedCase) -> int:
    """Multiply-accumulates of one sample's forward pass."""
    return count(build_model(case.model, case.input_shape, 10, hidden=case.hidden)).flops


def run_packed(cases: list[PackedCase], device: str = "cpu", echo=print) -> list[dict]:
    limit = matmul_limit(device)
    echo(f"  packed: float32 matmul limit {limit / 1e9:.1f} GFLOP/s ({MATMUL_SIZE}^3, "
         f"{torch.get_num_threads()} thread(s), {device})")
    rows = []
    for case in cases:
        rows += (new := bench_packed(case, device, limit))
        share = (f"  {new[0]['solo_bare_samples_per_s'] * 6 * _flops(case) / limit:.1%} of the "
                 "matmul limit" if new[0]["share_of_matmul_limit"] is not None else "")
        echo(f"  packed {case.name:<14} solo bare {new[0]['solo_bare_samples_per_s']:>11,.0f} "
             f"samples/s{share}")
        for row in new:
            label = f"K={row['k']}" if row["stacked"] else "solo"
            share = (f"  {row['share_of_matmul_limit']:.1%} of the matmul limit"
                     if row["share_of_matmul_limit"] is not None else "")
            echo(f"  packed {row['model']:<14} {label:<9} {row['samples_per_s']:>11,.0f} "
                 f"samples/s  {row['ratio_vs_solo_bare']:.2f}x solo bare (wall; "
                 f"{row['ratio_vs_solo_bare_cpu_time']:.2f}x CPU time){share}"
                 + ("  <- the default here" if row["default"] else ""))
    return rows
