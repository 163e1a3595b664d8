"""CIFAR's standard augmentation on whole batches on the device (as airbench does).

The recipe is torchvision's `RandomCrop(32, padding=4)` then `RandomHorizontalFlip()`, as used by
the LTH and Rethinking papers, but as a few tensor ops over the batch instead of a per-image
Python loop, and driven by an explicit `torch.Generator`, so a (seed, step) pair always gives
the same batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, *, pad: int = 4,
                     fill: Sequence[float] | float = 0.0) -> torch.Tensor:
    """Per image: a random crop of the padded image (offsets 0..2*pad), then a flip with p=1/2.

    `fill` is the per-channel padding value; in normalised units it should be what a black pixel
    becomes, since torchvision pads the raw image before normalising.
    """
    b, c, h, w = x.shape
    dev = x.device
    fill_t = x.new_tensor(fill).expand(c).reshape(1, c, 1, 1)
    padded = fill_t.repeat(b, 1, h + 2 * pad, w + 2 * pad)  # (B, C, H+2p, W+2p)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    flip = torch.rand(b, generator=generator, device=dev) < 0.5
    i, j = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = (dy[:, None] + i).view(b, 1, h, 1).expand(b, c, h, w + 2 * pad)
    # The flip is folded into the column index: one gather crops and mirrors at once.
    cols = (dx[:, None] + torch.where(flip[:, None], w - 1 - j, j)).view(b, 1, 1, w)
    return padded.gather(2, rows).gather(3, cols.expand(b, c, h, w))  # (B, C, H, W)


def crop_flip(mean: Sequence[float], std: Sequence[float], pad: int = 4) -> Augment:
    """The batch augmentation for normalised data: pads with the normalised value of black."""
    fill = tuple(-m / s for m, s in zip(mean, std, strict=True))
    return partial(random_crop_flip, pad=pad, fill=fill)
