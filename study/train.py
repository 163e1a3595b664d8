"""The one training loop every arm uses.

Randomness is addressed by position: the batch at step s is a slice of epoch s // E's seeded
permutation, and augmentation at step s draws from a generator seeded by (seed, s). So arms with
the same seed see the same data order, a lottery ticket rewound to step k continues with the
dense run's batches from k, and a resumed run ends with the same numbers as an uninterrupted one.
The learning rate is a pure function of the step, so the schedule needs no state either.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from study.data import Splits
from study.execution import Execution
from study.specs import TrainSpec

Masks = dict[str, torch.Tensor]
EVAL_BATCH = 1024


@dataclass
class TrainState:
    """Everything a checkpoint must hold to continue exactly where training stopped."""

    step: int
    curves: list[dict[str, float]] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0
    seconds: float = 0.0


@dataclass
class TrainResult:
    outcome: str  # "finished" | "diverged"
    steps: int
    seconds: float
    curves: list[dict[str, float]]
    diverged_step: int | None = None
    resumed_from: int | None = None  # the checkpoint's step, when training resumed from one

    def summary(self) -> dict[str, float]:
        """Early-stop bookkeeping: the step of minimum validation loss and test accuracy there
        (only the final accuracy when there is no validation split)."""
        if not self.curves:
            return {}
        out = {"final_test_acc": self.curves[-1]["test_acc"]}
        rows = [r for r in self.curves if math.isfinite(r["val_loss"])]
        if rows:
            best = min(rows, key=lambda r: r["val_loss"])
            out.update(best_val_acc=max(r["val_acc"] for r in rows),
                       test_acc_at_best_val=best["test_acc"], early_stop_step=best["step"])
        return out


class Heartbeat:
    """When this process last finished a training step: what a stall watchdog reads
    (`study.supervise`). Process-wide, because a hang can be in any loop the process runs,
    a trial's own or the replay of a dense run to its rewind step."""

    def __init__(self) -> None:
        self.step, self.beats, self.last = 0, 0, 0.0

    def beat(self, step: int) -> None:
        self.step, self.last, self.beats = step, time.perf_counter(), self.beats + 1


heartbeat = Heartbeat()


class Checkpointer:
    """Where a trial keeps its resumable state, and when: every `every` steps if given, else
    every `seconds` of training (neither: never). The sweep swaps in Ray Tune's version.

    A resume is exact from any step, so the cadence can follow the clock: a fast net does not
    write a checkpoint every few hundred milliseconds, a slow one still loses little work."""

    def __init__(self, every: int | None = None, seconds: float | None = None) -> None:
        self.every, self.seconds = every, seconds
        self._last = time.perf_counter()

    def due(self, step: int) -> bool:
        if self.every:
            return step % self.every == 0
        if self.seconds is None or time.perf_counter() - self._last < self.seconds:
            return False
        self._last = time.perf_counter()
        return True

    def load(self) -> dict | None:
        return None

    def save(self, state: dict) -> None:
        pass


def lr_at(spec: TrainSpec, step: int, total: int, base_lr: float) -> float:
    """Linear warmup, then constant / step (milestones as fractions) / cosine decay."""
    warm = min(1.0, (step + 1) / spec.warmup_steps) if spec.warmup_steps else 1.0
    progress = step / max(1, total)
    if spec.schedule == "step":
        factor = spec.gamma ** sum(progress >= m for m in spec.milestones)
    elif spec.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    return base_lr * warm * factor


def make_optimizer(spec: TrainSpec, params, lr: float) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=spec.momentum, nesterov=spec.nesterov,
                           weight_decay=spec.weight_decay)


class BatchOrder:
    """Seeded, position-addressable batches: indices for step s depend only on (seed, s)."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device) -> None:
        self.n, self.batch, self.seed, self.device = n, min(batch_size, n), seed, device
        self.per_epoch = max(1, n // self.batch)
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen).to(self.device)
        return self._perm[i * self.batch : (i + 1) * self.batch]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for `precision` "bf16"; nothing at all for fp32 (not even a context
    that is switched off: the loop pays nothing for the option)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             precision: str = "fp32") -> tuple[float, float]:
    """(mean loss, accuracy) in eval mode, in the precision the net trains in; (nan, nan) on an
    empty split."""
    if len(y) == 0:
        return math.nan, math.nan
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), EVAL_BATCH):
        with autocast(x.device, precision):
            logits = model(x[i : i + EVAL_BATCH])
        loss += float(nn.functional.cross_entropy(logits, y[i : i + EVAL_BATCH], reduction="sum"))
        correct += int((logits.argmax(1) == y[i : i + EVAL_BATCH]).sum())
    model.train(was_training)
    return loss / len(y), correct / len(y)


def train(model: nn.Module, data: Splits, spec: TrainSpec, *, seed: int, total_steps: int,
          start_step: int = 0, stop_step: int | None = None, lr: float | None = None,
          masks: Masks | None = None, checkpointer: Checkpointer | None = None,
          on_eval: Callable[[dict[str, float]], None] | None = None,
          execution: Execution | None = None) -> TrainResult:
    """Train `model` in place from `start_step` to `stop_step` (default `total_steps`).

    `masks` ({param name: bool}) keep pruned weights at zero; the schedule spans `total_steps`.
    `execution` may lay conv tensors out channels-last and compile the training forward.
    """
    execution = execution or Execution()
    base_lr = spec.lr if lr is None else lr
    stop_step = total_steps if stop_step is None else stop_step
    if execution.channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if execution.compile else model
    params = dict(model.named_parameters())
    # each mask takes its weight's device, dtype and memory layout
    masked = [(params[n], torch.empty_like(params[n]).copy_(m)) for n, m in (masks or {}).items()]
    weights, keep = [p for p, _ in masked], [m for _, m in masked]
    bn_scales = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    opt = make_optimizer(spec, model.parameters(), base_lr)
    order = BatchOrder(len(data.y_train), spec.batch_size, seed, data.x_train.device)
    state = TrainState(step=start_step)
    checkpointer = checkpointer or Checkpointer()
    if (saved := checkpointer.load()) is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = TrainState(**saved["state"])
        resumed_from = state.step
    else:
        resumed_from = None
    _apply(weights, keep)
    model.train()
    # the train loss is summed on the device (no sync per step), exactly as before a resume
    running = torch.tensor(state.loss_sum, device=data.x_train.device)
    cast = autocast(data.x_train.device, spec.precision)  # re-entered each step, built once
    started = time.perf_counter() - state.seconds
    while state.step < stop_step:
        step = state.step
        for group in opt.param_groups:
            group["lr"] = lr_at(spec, step, total_steps, base_lr)
        idx = order(step)
        x = data.x_train[idx]
        if data.augment is not None:
            x = data.augment(x, torch.Generator(x.device).manual_seed(seed * 1_000_003 + step))
        if execution.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with cast:  # the loss itself autocasts to fp32
            loss = nn.functional.cross_entropy(forward(x), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if spec.bn_l1 and bn_scales:  # Network Slimming: subgradient of l1 * sum |gamma|
            torch._foreach_add_([p.grad for p in bn_scales],
                                torch._foreach_sign(bn_scales), alpha=spec.bn_l1)
        opt.step()
        _apply(weights, keep)
        running += loss.detach()
        state.loss_count += 1
        state.step += 1
        heartbeat.beat(state.step)
        evaluate_now = state.step % spec.eval_every == 0 or state.step == stop_step
        save_now = checkpointer.due(state.step)
        if evaluate_now or save_now:
            state.loss_sum = float(running)  # a sync: divergence is caught here at the latest
            if not math.isfinite(state.loss_sum):
                return TrainResult("diverged", state.step, time.perf_counter() - started,
                                   state.curves, diverged_step=state.step,
                                   resumed_from=resumed_from)
        if evaluate_now:
            _record(model, data, state, on_eval, spec.precision)
            running.zero_()
        if save_now and state.step < stop_step:
            state.seconds = time.perf_counter() - started
            checkpointer.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "state": vars(state).copy()})
    return TrainResult("finished", state.step, time.perf_counter() - started, state.curves,
                       resumed_from=resumed_from)


def evaluate_only(model: nn.Module, data: Splits, masks: Masks | None = None,
                  precision: str = "fp32") -> TrainResult:
    """An untrained arm (supermask): its mask applied, one evaluation at step 0, no training."""
    params = dict(model.named_parameters())
    for name, mask in (masks or {}).items():
        _apply([params[name]], [mask.to(params[name].device, params[name].dtype)])
    state = TrainState(step=0)
    _record(model, data, state, None, precision)
    return TrainResult("finished", 0, 0.0, state.curves)


@torch.no_grad()
def _apply(weights: list[torch.Tensor], keep: list[torch.Tensor]) -> None:
    """Zero the pruned weights: one fused multiply per step (DESIGN.md's cheap masking)."""
    if weights:
        torch._foreach_mul_(weights, keep)


def _record(model: nn.Module, data: Splits, state: TrainState,
            on_eval: Callable[[dict[str, float]], None] | None, precision: str = "fp32") -> None:
    val_loss, val_acc = evaluate(model, data.x_val, data.y_val, precision)
    _, test_acc = evaluate(model, data.x_test, data.y_test, precision)
    row = {"step": state.step, "train_loss": state.loss_sum / max(1, state.loss_count),
           "val_loss": val_loss, "val_acc": val_acc, "test_acc": test_acc}
    state.curves.append(row)
    state.loss_sum, state.loss_count = 0.0, 0
    if on_eval is not None:
        on_eval(row)
