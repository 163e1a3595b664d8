"""Trainer throughput: the library's one training loop against a minimal hand-written loop.

Both loops train copies of the same model on the same tensors, batch size, optimizer and thread
count, and run in turn (A, B, A, B). Neither evaluates: the validation and test splits are empty,
so the library's end-of-run evaluation costs nothing, and `eval_every` exceeds the steps. With
masks, the bare loop does the simplest correct thing: multiply each weight by its mask after
every step (the library fuses those multiplies into one `_foreach_mul_`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from bench.profiling import aten_ops, op_difference
from bench.timing import median, paired_ratio, race, ratio_interval
from study.data.registry import Splits, random_splits
from study.execution import Execution
from study.models import PrunableNet, build_model
from study.pruning.masks import Masks, full_masks, prune_lowest
from study.specs import TrainSpec
from study.train import train

SPARSITY = 0.8  # the masked cases: 80% of every prunable weight tensor is zero
CONTIGUOUS = Execution(channels_last=False)  # what channels-last adds: the options part
OPS_STEPS = 20  # steps whose torch operators are counted (a count does not need many)


@dataclass(frozen=True)
class TrainerCase:
    """One model, batch and optimizer, as its paper trains it (or the quickstart does): what
    the trainer, options and packed parts time their loops on."""

    name: str
    model: str
    input_shape: tuple[int, ...]
    train: TrainSpec
    steps: int
    """Steps per timed run; conv nets take seconds per step on a CPU thread, so few."""
    reps: int
    """Timed rounds (each runs every loop once)."""
    samples: int = 4096
    """Random training samples on the device: batches are indexed from them."""
    hidden: tuple[int, ...] | None = None

    def inputs(self, device: str = "cpu", seed: int = 0) -> tuple[Splits, PrunableNet, TrainSpec]:
        """Random data of the case's shape on `device`, the model to copy for every loop, and
        the TrainSpec of a timed run (`steps` long, no evaluation before its end)."""
        data = synthetic_splits(self.input_shape, self.samples, seed, device)
        template = build_model(self.model, self.input_shape, 10, hidden=self.hidden, seed=seed)
        spec = self.train.model_copy(update={"steps": self.steps, "eval_every": self.steps + 1})
        return data, template, spec


def trainer_cases(quick: bool) -> list[TrainerCase]:
    """MNIST-1D MLP (quickstart), LeNet-300-100 (LTH), Conv-4 (LTH), ResNet-20 (CIFAR)."""
    # many short rounds beat few long ones on a shared machine: a round's two runs are
    # adjacent in time, so a burst of background load hits both
    mlp_steps, lenet_steps, conv_steps = (80, 20, 2) if quick else (300, 100, 3)
    fc_reps, conv_reps = (10, 3) if quick else (25, 9)
    conv_batch = 16 if quick else 60

    def spec(**kw) -> TrainSpec:
        return TrainSpec(steps=1, **kw)

    return [
        TrainerCase("mlp-mnist1d", "mlp", (40,), spec(optimizer="sgd", lr=0.1, momentum=0.9,
                    batch_size=100), mlp_steps, fc_reps, samples=3600, hidden=(100, 100)),
        TrainerCase("lenet-300-100", "mlp", (1, 28, 28), spec(optimizer="adam", lr=1.2e-3,
                    batch_size=60), lenet_steps, fc_reps),
        TrainerCase("conv4", "conv4", (3, 32, 32), spec(optimizer="adam", lr=3e-4,
                    batch_size=conv_batch), conv_steps, conv_reps, samples=1024),
        TrainerCase("resnet20", "resnet20", (3, 32, 32), spec(
            optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
            batch_size=conv_batch if quick else 64), conv_steps, conv_reps, samples=1024),
    ]


def synthetic_splits(shape: tuple[int, ...], n: int, seed: int = 0,
                     device: str = "cpu") -> Splits:
    """Random inputs and 10-class labels of a dataset's shape on `device`."""
    return random_splits(shape, 10, n, seed, device)


def magnitude_masks(model: PrunableNet, sparsity: float) -> Masks:
    """Unstructured layerwise magnitude masks: `sparsity` of every prunable tensor is zero."""
    params = dict(model.named_parameters())
    names = list(model.prunable())
    full = full_masks({n: params[n].shape for n in names})
    scores = {n: params[n].detach().abs() for n in names}
    return prune_lowest(scores, full, {n: sparsity for n in names})


def bare_optimizer(spec: TrainSpec, model: nn.Module) -> torch.optim.Optimizer:
    """The same torch optimizer and hyperparameters, written out by hand."""
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum,
                           weight_decay=spec.weight_decay)


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: TrainSpec, steps: int,
              masks: Masks | None = None, seed: int = 0) -> None:
    """What one would write by hand: shuffle each epoch, slice batches, step, re-mask."""
    params = dict(model.named_parameters())
    masked = [(params[n], m.to(params[n].dtype)) for n, m in (masks or {}).items()]
    opt = bare_optimizer(spec, model)
    gen = torch.Generator().manual_seed(seed)
    per_epoch = max(1, len(y) // spec.batch_size)
    with torch.no_grad():
        for p, m in masked:
            p.mul_(m)
    model.train()
    for step in range(steps):
        i = step % per_epoch
        if i == 0:
            perm = torch.randperm(len(y), generator=gen)
        idx = perm[i * spec.batch_size : (i + 1) * spec.batch_size]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, m in masked:
                p.mul_(m)


def bench_trainer(case: TrainerCase, masked: bool, seed: int = 0) -> dict:
    """Samples/s of both loops on `case`, and the library's throughput relative to bare."""
    data, template, spec = case.inputs(seed=seed)
    masks = magnitude_masks(template, SPARSITY) if masked else None

    def setup(name: str, steps: int):
        model = copy.deepcopy(template)
        if name == "library":  # in the bare loop's memory layout: the loop's cost alone
            return lambda: train(model, data, spec, seed=seed, total_steps=steps, masks=masks,
                                 execution=CONTIGUOUS)
        return lambda: bare_loop(model, data.x_train, data.y_train, spec, steps, masks, seed)

    _, times = race(["library", "bare"], case.steps, case.reps, setup)
    profiled = min(case.steps, OPS_STEPS)
    ops = {name: aten_ops(setup(name, profiled), profiled) for name in ("library", "bare")}
    lib, bare = times["library"], times["bare"]
    samples = case.steps * case.train.batch_size
    return {
        "case": case.name, "model": case.model, "masks": f"{SPARSITY:.0%}" if masked else "none",
        "optimizer": case.train.optimizer, "batch": case.train.batch_size, "steps": case.steps,
        "reps": case.reps,
        "library_samples_per_s": samples / median(lib["wall"]),
        "bare_samples_per_s": samples / median(bare["wall"]),
        # throughput ratio = inverse time ratio; CPU time is the headline (see timing.py)
        "ratio": paired_ratio(bare["cpu"], lib["cpu"]),
        "ratio_interval": ratio_interval(bare["cpu"], lib["cpu"]),
        "ratio_wall": paired_ratio(bare["wall"], lib["wall"]),
        "aten_ops_per_step": {name: sum(c.values()) for name, c in ops.items()},
        "extra_ops_per_step": op_difference(ops["library"], ops["bare"]),
        "times_s": times,
    }


def run_trainer(cases: list[TrainerCase], echo=print) -> list[dict]:
    rows = []
    for case in cases:
        for masked in (False, True):
            rows.append(row := bench_trainer(case, masked))
            low, high = row["ratio_interval"]
            ops = row["aten_ops_per_step"]
            echo(f"  trainer {row['case']:<14} masks {row['masks']:<4} library/bare "
                 f"{row['ratio']:.3f}x [{low:.3f}, {high:.3f}] (CPU), {row['ratio_wall']:.3f}x "
                 f"(wall); torch ops/step {ops['library']:.1f} vs {ops['bare']:.1f}")
    return rows
