"""Fully connected nets: LeNet-300-100 (LTH's MNIST net) and any hidden sizes."""

from __future__ import annotations

import math

import torch
from torch import nn

from study.models.base import Member, PrunableNet, UnitGroup


class MLP(PrunableNet):
    """ReLU MLP on flattened inputs; `fc{i}` are the layers, the last one the output."""

    init_scheme = "glorot"

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, widths: list[int]) -> None:
        super().__init__(widths)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        sizes = [math.prod(input_shape), *self.widths, num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def rebuild(self, widths: list[int]) -> MLP:
        return MLP(self.input_shape, self.num_classes, widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, prod(input_shape))
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)

    def unit_groups(self) -> list[UnitGroup]:
        return [
            UnitGroup(
                name=f"layers.{i}", layer=f"layers.{i}", size=w,
                members=(Member(f"layers.{i}.weight", 0), Member(f"layers.{i}.bias", 0),
                         Member(f"layers.{i + 1}.weight", 1)),
            )
            for i, w in enumerate(self.widths)
        ]
