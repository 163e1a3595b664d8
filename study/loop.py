"""What the training loop's two engines share: a member's share of a run, its batches by
position, its lr at a step, autocast, evaluation and a moving mask's write-back.

The plain engine (`study.train.Solo`, one net as a module) and the stacked one
(`study.stacked.Stacked`, K nets as one model) both build on these, and `study.train` picks
between them, so they live below both: the imports run one way. They import nothing of the
study but `seeds`, so the untrained evaluations (`study.pruning.agnostic`, `study.interpolate`)
evaluate a net exactly as the loop does without importing the loop.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from study import seeds

if TYPE_CHECKING:
    from study.pruning.dynamic import MaskUpdate
    from study.specs import TrainSpec

Masks = dict[str, torch.Tensor]
EVAL_BATCH = 1024


def lr_at(spec: TrainSpec, step: int, total: int, base_lr: float) -> float:
    """The lr at `step`: `base_lr` times the schedule (`TrainSpec.lr_factor`)."""
    return base_lr * spec.lr_factor(step, total)


class BatchOrder:
    """Seeded, position-addressable batches: indices for step s depend only on (seed, s)."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device) -> None:
        self.n, self.batch, self.seed, self.device = n, min(batch_size, n), seed, device
        self.per_epoch = max(1, n // self.batch)
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        return self.permutation(epoch)[i * self.batch : (i + 1) * self.batch]

    def permutation(self, epoch: int) -> torch.Tensor:
        """The epoch's order of the n samples (its steps take consecutive slices)."""
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(seeds.batch_order(self.seed, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen).to(self.device)
        return self._perm


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


@dataclass
class Member:
    """One trial's share of a training run: its net, schedule (lr included), seed, masks and
    callback.

    Members of one run (a pack) share the data, the step range and the loop; everything that
    makes a trial itself (θ0, data order, augmentation draws, mask, lr, weight decay) is here."""

    model: nn.Module
    spec: TrainSpec
    seed: int
    masks: Masks | None = None
    on_eval: Callable[[dict[str, float]], None] | None = None
    mask_update: MaskUpdate | None = None
    """Sparse training (SET, RigL): moves `masks` during training; the engine writes the
    final mask back into `masks` when training ends."""


@torch.no_grad()
def write_masks(member: Member, final: dict[str, torch.Tensor]) -> None:
    """A moving mask's final state into the member's own masks (what its run counts)."""
    for name, mask in final.items():
        member.masks[name] = (mask != 0).cpu().view(member.masks[name].shape)
