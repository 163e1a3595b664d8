"""Sparse training from scratch: the mask moves during training, its nonzero count does not.

SET (Mocanu et al., Nature Communications 2018) and RigL (Evci et al., ICML 2020) start from a
random mask with ERK layer densities (`study.pruning.at_init.random_erk`) and, every ΔT steps
until `end` of training, in every sparse layer: drop the k active weights of lowest magnitude,
grow k inactive ones (SET: at random; RigL: those of largest gradient magnitude), with
k = f(t)·(active weights), f(t) = α/2·(1 + cos(π·t / (end·T))) (RigL's cosine decay; α = 0.3,
end = 0.75). A grown weight starts at zero, and so does its optimizer state (momentum, Adam's
moments: a connection just grown has no history). Per-layer counts never change, so neither
does the total.

`MaskUpdate` is a hook of the one training loop (`study.train.train_members`): after each
optimizer step the engine (`Solo`, `Stacked`) hands it views of a member's weights, gradients
(the dense ones of that step's loss), masks and optimizer state, and the hook edits them in
place. Its draws are addressed by (seed, round, step) and its log is part of the checkpoint, so
a resumed run moves the mask exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from study import seeds

Views = dict[str, torch.Tensor]
GROWTH = ("random", "gradient")


@dataclass
class MaskUpdate:
    """One member's drop-and-grow schedule, and the log of what each update did."""

    growth: str
    """random (SET) or gradient (RigL)."""
    total_steps: int
    interval: int = 100
    alpha: float = 0.3
    end: float = 0.75
    seed: int = 0
    round: int = 0
    log: list[list[float]] = field(default_factory=list)
    """[step, drop fraction, weights moved, nonzero count after] per update."""

    def __post_init__(self) -> None:
        if self.growth not in GROWTH:
            raise ValueError(f"growth: {self.growth!r}; allowed: {', '.join(GROWTH)}")

    @property
    def last_step(self) -> float:
        """Updates happen strictly before this step (`end` of the schedule)."""
        return self.end * self.total_steps

    def due(self, step: int) -> bool:
        """Whether the mask moves after the optimizer step of `step` (0-based)."""
        return step > 0 and step % self.interval == 0 and step < self.last_step

    def fraction(self, step: int) -> float:
        """The share of each layer's active weights dropped (and regrown) at `step`."""
        if step >= self.last_step:
            return 0.0
        return self.alpha / 2 * (1 + math.cos(math.pi * step / self.last_step))

    @torch.no_grad()
    def __call__(self, step: int, weights: Views, grads: Views, masks: Views,
                 states: list[Views]) -> None:
        """Drop and grow in every layer of `masks` (0/1 views, edited in place); the grown
        weights and their entries in each optimizer state tensor are zeroed."""
        f = self.fraction(step)
        gen = torch.Generator().manual_seed(seeds.grow(self.seed, self.round, step))
        moved = 0
        for name, mask in masks.items():
            active = mask.reshape(-1) != 0
            n_active, size = int(active.sum()), active.numel()
            k = round(f * n_active)
            if k == 0 or n_active == size:  # a dense layer (ERK density 1) stays dense
                continue
            magnitude = weights[name].reshape(-1).abs().float()
            magnitude[~active] = math.inf
            kept = active.clone()
            kept[magnitude.argsort(stable=True)[:k]] = False
            if self.growth == "gradient":
                score = grads[name].reshape(-1).abs().float().cpu()
            else:
                score = torch.rand(size, generator=gen)
            score[kept.cpu()] = -math.inf
            grown = torch.zeros(size, dtype=torch.bool)
            grown[score.argsort(descending=True, stable=True)[:k]] = True
            grown = grown.to(mask.device)
            new = kept | grown
            mask.copy_(new.view(mask.shape))  # in place whatever the layout (channels-last)
            weights[name].masked_fill_(grown.view(mask.shape), 0.0)
            weights[name].mul_(mask)  # the dropped leave now, before the next forward pass
            for state in states:
                state[name].masked_fill_(grown.view(mask.shape), 0.0)
            moved += int((new & ~active).sum())
        nonzero = sum(int((m != 0).sum()) for m in masks.values())
        self.log.append([step, f, moved, nonzero])

    def state_dict(self) -> list[list[float]]:
        return [list(row) for row in self.log]

    def load_state_dict(self, log: list[list[float]]) -> None:
        self.log = [list(row) for row in log]

    def metrics(self) -> dict[str, float]:
        """What a run records of its updates (the full log is the `mask_updates.pt` artifact)."""
        if not self.log:
            return {"mask_updates": 0.0}
        nonzero = [row[3] for row in self.log]
        return {"mask_updates": float(len(self.log)), "mask_moved": sum(r[2] for r in self.log),
                "mask_nonzero_min": min(nonzero), "mask_nonzero_max": max(nonzero)}

    def artifact(self) -> dict[str, torch.Tensor]:
        rows = torch.tensor(self.log, dtype=torch.float64).reshape(-1, 4)
        return {"step": rows[:, 0].long(), "drop_fraction": rows[:, 1],
                "moved": rows[:, 2].long(), "nonzero": rows[:, 3].long()}
