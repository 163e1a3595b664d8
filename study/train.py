"""The one training loop every arm uses.

Randomness is addressed by position: the batch at step s is a slice of epoch s // E's seeded
permutation, and augmentation at step s draws from a generator seeded by (seed, s). So arms with
the same seed see the same data order, a lottery ticket rewound to step k continues with the
dense run's batches from k, and a resumed run ends with the same numbers as an uninterrupted one.
The learning rate is a pure function of the step, so the schedule needs no state either.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from study import seeds
from study.data import Splits
from study.execution import Execution
from study.loop import BatchOrder, Masks, Member, autocast, evaluate, lr_at, write_masks
from study.phases import clock
from study.specs import TrainSpec
from study.stacked import Stacked


@dataclass
class TrainState:
    """Everything a checkpoint must hold to continue exactly where training stopped (per member:
    curves, the train-loss sum since the last evaluation, and where it diverged, if it did)."""

    step: int
    curves: list[list[dict[str, float]]] = field(default_factory=list)
    loss_sum: list[float] = field(default_factory=list)
    loss_count: int = 0
    seconds: float = 0.0
    diverged: dict[int, list[float]] = field(default_factory=dict)  # member: [step, seconds]


@dataclass
class TrainResult:
    outcome: str  # "finished" | "diverged"
    steps: int
    seconds: float
    curves: list[dict[str, float]]
    diverged_step: int | None = None
    resumed_from: int | None = None  # the checkpoint's step, when training resumed from one

    def summary(self, start_step: int = 0) -> dict[str, float]:
        """Early-stop and convergence bookkeeping: the step of minimum validation loss (LTH's
        early-stopping iteration) and test accuracy there, the step where the best validation
        accuracy was first reached, and whether the run converged by `converged` (only the
        final accuracy when there is no validation split). `start_step`: where training began
        (a rewound ticket starts at k)."""
        if not self.curves:
            return {}
        out = {"final_test_acc": self.curves[-1]["test_acc"]}
        rows = [r for r in self.curves if math.isfinite(r["val_loss"])]
        if rows:
            best = min(rows, key=lambda r: r["val_loss"])
            top = max(rows, key=lambda r: r["val_acc"])  # the first row at the maximum
            out.update(best_val_acc=top["val_acc"], test_acc_at_best_val=best["test_acc"],
                       early_stop_step=best["step"], best_val_step=top["step"],
                       converged=float(converged(best["step"], start_step, self.steps)))
        return out


CONVERGED_BY = 0.9
"""A run has converged when its validation loss reached its minimum within the first 90% of
its training steps (`converged`)."""


def converged(early_stop_step: int, start_step: int, end_step: int) -> bool:
    """The convergence rule (docs/science.md): the early-stopping iteration (LTH's: the step of
    minimum validation loss) is not in the last 10% of the steps the run trained. A run whose
    validation loss still falls at its end has not finished learning. Validation accuracy is
    the weaker signal: it is flat and noisy near a finished run's end, where a cosine decay's
    last small steps often lift it by a few tenths (that rule passed 76-84% of the
    under-trained lr-0.01, 1,000-step MNIST-1D runs, where Scratch-B at twice the steps beat
    the dense net; this one 4-16%). Under a
    cosine schedule every run flattens as its lr vanishes, so this flag alone cannot tell a
    finished run from a budget-limited one: the quickstart's budget check (the same cells at
    twice the steps) is the other half of the test."""
    return early_stop_step - start_step <= CONVERGED_BY * (end_step - start_step)


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


def make_optimizer(spec: TrainSpec, params) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                           weight_decay=spec.weight_decay)


class Solo:
    """One member trained as a plain module with a torch optimizer: the reference mechanics
    (a pack of one is exactly this). `study.stacked.Stacked` is the same interface for K > 1."""

    def __init__(self, members: list[Member], data: Splits, total_steps: int,
                 execution: Execution) -> None:
        (member,) = members
        self.member, self.data, self.total_steps = member, data, total_steps
        self.alive = [0]
        model, self.execution = member.model, execution
        if execution.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(model) if execution.compile else model
        params = dict(model.named_parameters())
        # each mask takes its weight's device, dtype and memory layout
        masked = [(params[n], torch.empty_like(params[n]).copy_(m))
                  for n, m in (member.masks or {}).items()]
        self.weights, self.keep = [p for p, _ in masked], [m for _, m in masked]
        self.masked = list(member.masks or {})
        self.bn_scales = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        self.opt = make_optimizer(member.spec, model.parameters())
        self.order = BatchOrder(len(data.y_train), member.spec.batch_size, member.seed,
                                data.x_train.device)
        self.cast = autocast(data.x_train.device, member.spec.precision)  # built once

    def start(self) -> None:
        _apply(self.weights, self.keep)
        self.member.model.train()

    def step(self, step: int) -> torch.Tensor:
        """One optimizer step at `step`; the member's (detached) loss, shape (1,)."""
        spec, data, seed = self.member.spec, self.data, self.member.seed
        for group in self.opt.param_groups:
            group["lr"] = lr_at(spec, step, self.total_steps, spec.lr)
        idx = self.order(step)
        x = data.x_train[idx]
        if data.augment is not None:
            draw = torch.Generator(x.device).manual_seed(seeds.augmentation(seed, step))
            x = data.augment(x, draw)
        if self.execution.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.cast:  # the loss itself autocasts to fp32
            loss = nn.functional.cross_entropy(self.forward(x), data.y_train[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if spec.bn_l1 and self.bn_scales:  # Network Slimming: subgradient of l1 * sum |gamma|
            torch._foreach_add_([p.grad for p in self.bn_scales],
                                torch._foreach_sign(self.bn_scales), alpha=spec.bn_l1)
        self.opt.step()
        _apply(self.weights, self.keep)
        return loss.detach()  # 0-d: adds into the (1,) running sum without a view op

    def update_masks(self, step: int) -> None:
        """The member's mask update after the optimizer step of `step`, if one is due."""
        hook = self.member.mask_update
        if hook is None or not hook.due(step):
            return
        states = self.opt.state
        slots = sorted({k for p in self.weights for k, v in states[p].items()
                        if torch.is_tensor(v) and v.shape == p.shape})
        hook(step, dict(zip(self.masked, self.weights)),
             {n: p.grad for n, p in zip(self.masked, self.weights)},
             dict(zip(self.masked, self.keep)),
             [{n: states[p][k] for n, p in zip(self.masked, self.weights)} for k in slots])

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
        return [evaluate(self.member.model, x, y, self.member.spec.precision)]

    def drop(self, rows: list[int]) -> None:
        """Keep only `rows` of the alive members (a pack of one keeps it or ends)."""
        self.alive = [self.alive[r] for r in rows]

    def state_dict(self) -> dict:
        saved = {"model": self.member.model.state_dict(), "optimizer": self.opt.state_dict()}
        if self.member.mask_update is not None:  # the mask moves: it is state
            saved["masks"] = [m.detach().clone() for m in self.keep]
            saved["mask_log"] = self.member.mask_update.state_dict()
        return saved

    def load_state_dict(self, saved: dict) -> None:
        self.member.model.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        if self.member.mask_update is not None:
            for keep, m in zip(self.keep, saved["masks"]):
                keep.copy_(m)
            self.member.mask_update.load_state_dict(saved["mask_log"])

    def finish(self) -> None:
        """The module trained in place; a moving mask is written back into the member's."""
        if self.member.mask_update is not None:
            write_masks(self.member, dict(zip(self.masked, self.keep)))


def train(model: nn.Module, data: Splits, spec: TrainSpec, *, seed: int, total_steps: int,
          start_step: int = 0, stop_step: int | None = None,
          masks: Masks | None = None, checkpointer: Checkpointer | None = None,
          on_eval: Callable[[dict[str, float]], None] | None = None,
          execution: Execution | None = None) -> TrainResult:
    """Train `model` in place from `start_step` to `stop_step` (default `total_steps`).

    `masks` ({param name: bool}) keep pruned weights at zero; the schedule spans `total_steps`.
    `execution` may lay conv tensors out channels-last and compile the training forward.
    """
    (result,) = train_members([Member(model, spec, seed, masks, on_eval)], data,
                              total_steps=total_steps, start_step=start_step,
                              stop_step=stop_step, checkpointer=checkpointer,
                              execution=execution)
    return result


def train_members(members: list[Member], data: Splits, *, total_steps: int,
                  start_step: int = 0, stop_step: int | None = None,
                  checkpointer: Checkpointer | None = None, execution: Execution | None = None,
                  stacked: bool | None = None) -> list[TrainResult]:
    """The training loop: every member from `start_step` to `stop_step`, one result each.

    One member trains as a plain module (`Solo`); several as one stacked model
    (`study.stacked.Stacked`, or with `stacked=True` even one). A member whose loss turns
    non-finite is recorded diverged at the step it is seen and leaves; the others go on.
    """
    execution = execution or Execution()
    stop_step = total_steps if stop_step is None else stop_step
    if stacked if stacked is not None else len(members) > 1:
        engine = Stacked(members, data, total_steps, execution)
    else:
        engine = Solo(members, data, total_steps, execution)
    k = len(members)
    state = TrainState(step=start_step, curves=[[] for _ in members], loss_sum=[0.0] * k)
    checkpointer = checkpointer or Checkpointer()
    resumed_from = None
    if (saved := checkpointer.load()) is not None:
        engine.load_state_dict(saved)
        state = TrainState(**saved["state"])
        resumed_from = state.step
    engine.start()
    # train losses are summed on the device (no sync per step), exactly as before a resume
    running = torch.tensor([state.loss_sum[m] for m in engine.alive], device=data.x_train.device)
    started = time.perf_counter() - state.seconds
    moving = any(m.mask_update is not None for m in members)  # sparse training (SET, RigL)
    while state.step < stop_step and engine.alive:
        running += engine.step(state.step)
        if moving:
            engine.update_masks(state.step)
        state.loss_count += 1
        state.step += 1
        heartbeat.beat(state.step)
        evaluate_now = state.step % members[0].spec.eval_every == 0 or state.step == stop_step
        save_now = checkpointer.due(state.step)
        if evaluate_now or save_now:
            # a sync: divergence is caught here at the latest
            for m, total in zip(engine.alive, running.tolist()):
                state.loss_sum[m] = total
            keep = [r for r, m in enumerate(engine.alive) if math.isfinite(state.loss_sum[m])]
            if len(keep) < len(engine.alive):
                for m in engine.alive:
                    if not math.isfinite(state.loss_sum[m]):
                        state.diverged[m] = [state.step, time.perf_counter() - started]
                engine.drop(keep)
                running = running[keep]
        if evaluate_now and engine.alive:
            with clock("evaluate"):
                _record(engine, members, data, state)
            running.zero_()
        if save_now and state.step < stop_step and engine.alive:
            state.seconds = time.perf_counter() - started
            checkpointer.save({**engine.state_dict(), "state": vars(state).copy()})
    engine.finish()
    seconds = time.perf_counter() - started
    results = []
    for m in range(k):
        if m in state.diverged:
            step, at = state.diverged[m]
            results.append(TrainResult("diverged", step, at, state.curves[m], diverged_step=step,
                                       resumed_from=resumed_from))
        else:
            results.append(TrainResult("finished", state.step, seconds, state.curves[m],
                                       resumed_from=resumed_from))
    return results


def evaluate_only(model: nn.Module, data: Splits, masks: Masks | None = None,
                  precision: str = "fp32") -> TrainResult:
    """An untrained arm (supermask): its mask applied, one evaluation at step 0, no training."""
    params = dict(model.named_parameters())
    for name, mask in (masks or {}).items():
        _apply([params[name]], [mask.to(params[name].device, params[name].dtype)])
    val_loss, val_acc = evaluate(model, data.x_val, data.y_val, precision)
    _, test_acc = evaluate(model, data.x_test, data.y_test, precision)
    row = {"step": 0, "train_loss": 0.0, "val_loss": val_loss, "val_acc": val_acc,
           "test_acc": test_acc}
    return TrainResult("finished", 0, 0.0, [row])


@torch.no_grad()
def _apply(weights: list[torch.Tensor], keep: list[torch.Tensor]) -> None:
    """Zero the pruned weights: one fused multiply per step for all of them (docs/design.md)."""
    if weights:
        torch._foreach_mul_(weights, keep)


def _record(engine, members: list[Member], data: Splits, state: TrainState) -> None:
    """One evaluation row per alive member: mean train loss since the last, val and test."""
    val = engine.evaluate(data.x_val, data.y_val)
    test = engine.evaluate(data.x_test, data.y_test)
    for m, (val_loss, val_acc), (_, test_acc) in zip(engine.alive, val, test):
        row = {"step": state.step, "train_loss": state.loss_sum[m] / max(1, state.loss_count),
               "val_loss": val_loss, "val_acc": val_acc, "test_acc": test_acc}
        state.curves[m].append(row)
        state.loss_sum[m] = 0.0
        if members[m].on_eval is not None:
            members[m].on_eval(row)
    state.loss_count = 0
