"""CIFAR ResNets (He et al. 2016): 3 stages of basic blocks, depth 6n+2, open_lth's init
(`study.models.base.open_lth`).

Structured pruning removes only the *inner* channels of each block (conv1's filters, bn1, and
conv2's matching inputs), as Li et al. (2017) do for ResNet-56/110: the channels on the residual
path are coupled across a whole stage and are kept, so the surgery never breaks an addition.
"""

from __future__ import annotations

import torch
from torch import nn

from study.models.base import Member, PrunableNet, UnitGroup

DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet56": 9, "resnet110": 18}


class Block(nn.Module):
    def __init__(self, c_in: int, mid: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:  # projection shortcut (option B)
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(PrunableNet):
    """`stage_channels` are the residual widths; `widths` the inner width of every block."""

    init_scheme = "open_lth"

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, blocks_per_stage: int,
                 stage_channels: list[int], widths: list[int]) -> None:
        super().__init__(widths)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.blocks_per_stage, self.stage_channels = blocks_per_stage, list(stage_channels)
        self.conv = nn.Conv2d(input_shape[0], stage_channels[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(stage_channels[0])
        blocks, c_in, mids = [], stage_channels[0], iter(self.widths)
        for s, c_out in enumerate(stage_channels):
            for b in range(blocks_per_stage):
                blocks.append(Block(c_in, next(mids), c_out, 2 if s > 0 and b == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def rebuild(self, widths: list[int]) -> ResNet:
        return ResNet(self.input_shape, self.num_classes, self.blocks_per_stage,
                      self.stage_channels, widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))  # (B, C, H, W)
        return self.fc(self.blocks(x).mean((2, 3)))

    def unit_groups(self) -> list[UnitGroup]:
        groups = []
        for i, block in enumerate(self.blocks):
            p = f"blocks.{i}"
            members = (Member(f"{p}.conv1.weight", 0),
                       *(Member(f"{p}.bn1.{t}", 0)
                         for t in ("weight", "bias", "running_mean", "running_var")),
                       Member(f"{p}.conv2.weight", 1))
            groups.append(UnitGroup(f"{p}.conv1", f"{p}.conv1", block.conv1.out_channels,
                                    members, batchnorm=f"{p}.bn1"))
        return groups
