"""Plain conv stacks: LTH's Conv-2/4/6 (Glorot, no BN) and CIFAR VGG-11/16/19 (BN; the init of
the Rethinking code's VGG, `study.models.base.slimming_vgg`).

Both are a feature stack described by a list of channel counts and 'M' (max-pool), followed by
fully connected layers; VGG global-average-pools to one position per channel first.
"""

from __future__ import annotations

import torch
from torch import nn

from study.models.base import Member, PrunableNet, UnitGroup

CONV_CFG = {
    "conv2": ([64, 64, "M"], [256, 256]),
    "conv4": ([64, 64, "M", 128, 128, "M"], [256, 256]),
    "conv6": ([64, 64, "M", 128, 128, "M", 256, 256, "M"], [256, 256]),
}
VGG_CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def _with_widths(layout: list, widths: list[int]) -> list:
    """Replace the channel counts of a layout, in order, keeping the pools."""
    it = iter(widths)
    return [item if item == "M" else next(it) for item in layout]


class ConvNet(PrunableNet):
    """Conv stack (3x3, padding 1) + fully connected head; `widths` = channels then fc sizes."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, layout: list,
                 widths: list[int], batchnorm: bool, global_pool: bool) -> None:
        super().__init__(widths)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.layout, self.batchnorm, self.global_pool = list(layout), batchnorm, global_pool
        self.init_scheme = "slimming_vgg" if batchnorm else "glorot"
        n_conv = sum(item != "M" for item in layout)
        channels, fc = self.widths[:n_conv], self.widths[n_conv:]
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        c_in, side = input_shape[0], input_shape[1]
        for item in _with_widths(layout, channels):
            if item == "M":
                side //= 2
                continue
            self.convs.append(nn.Conv2d(c_in, item, 3, padding=1, bias=not batchnorm))
            self.bns.append(nn.BatchNorm2d(item) if batchnorm else nn.Identity())
            c_in = item
        self.positions = 1 if global_pool else side * side
        sizes = [c_in * self.positions, *fc, num_classes]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def rebuild(self, widths: list[int]) -> ConvNet:
        return ConvNet(self.input_shape, self.num_classes, self.layout, widths, self.batchnorm,
                       self.global_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convs = iter(zip(self.convs, self.bns))
        for item in self.layout:  # x: (B, C, H, W)
            if item == "M":
                x = torch.max_pool2d(x, 2)
            else:
                conv, bn = next(convs)
                x = torch.relu(bn(conv(x)))
        x = x.mean((2, 3)) if self.global_pool else x.flatten(1)
        for fc in self.fcs[:-1]:
            x = torch.relu(fc(x))
        return self.fcs[-1](x)

    def unit_groups(self) -> list[UnitGroup]:
        groups = []
        n_conv = len(self.convs)
        for i, conv in enumerate(self.convs):
            own = [Member(f"convs.{i}.weight", 0)]
            if conv.bias is not None:
                own.append(Member(f"convs.{i}.bias", 0))
            bn = None
            if self.batchnorm:
                bn = f"bns.{i}"
                own += [Member(f"bns.{i}.{t}", 0)
                        for t in ("weight", "bias", "running_mean", "running_var")]
            nxt = (Member(f"convs.{i + 1}.weight", 1) if i + 1 < n_conv
                   else Member("fcs.0.weight", 1, block=self.positions))
            groups.append(UnitGroup(f"convs.{i}", f"convs.{i}", conv.out_channels,
                                    (*own, nxt), batchnorm=bn))
        for j, fc in enumerate(self.fcs[:-1]):
            groups.append(UnitGroup(
                f"fcs.{j}", f"fcs.{j}", fc.out_features,
                (Member(f"fcs.{j}.weight", 0), Member(f"fcs.{j}.bias", 0),
                 Member(f"fcs.{j + 1}.weight", 1))))
        return groups
