"""The base class every model family derives from: rebuildable at any widths, aware of its units.

Structured pruning needs two things from a model: which tensors index a unit (a neuron or a
filter) along which dimension, and how to build the same family at smaller widths. Each family
declares both; `study.pruning.structured` does the surgery once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Member:
    """One tensor (parameter or buffer, by state-dict name) that a unit indexes along `dim`.

    `block` > 1 when each unit owns a contiguous block of indices, as a conv channel owns its
    H*W positions in the flattened input of the first linear layer.
    """

    tensor: str
    dim: int
    block: int = 1


@dataclass(frozen=True)
class UnitGroup:
    """The units of one prunable layer: the neurons or filters structured pruning may remove."""

    name: str
    layer: str
    """Module name whose output units these are (its weight is ranked by l1_filter)."""
    size: int
    members: tuple[Member, ...]
    batchnorm: str | None = None
    """Module name of the BatchNorm that scales these units (ranked by bn_scale)."""


class PrunableNet(nn.Module):
    """A model family at explicit hidden `widths`, with Glorot or Kaiming init."""

    init_scheme: str = "glorot"

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.widths = [int(w) for w in widths]

    def rebuild(self, widths: list[int]) -> PrunableNet:
        """The same family at other hidden widths (fresh weights)."""
        raise NotImplementedError

    def unit_groups(self) -> list[UnitGroup]:
        raise NotImplementedError

    @property
    def output_layer(self) -> str:
        """Name of the final linear layer (LTH prunes it at its own rate)."""
        return [n for n, m in self.named_modules() if isinstance(m, nn.Linear)][-1]

    def prunable(self) -> dict[str, str]:
        """Weights that unstructured pruning may zero: {param name: 'linear'|'conv'|'output'}."""
        kinds = {}
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
                kinds[f"{name}.weight"] = "output" if name == self.output_layer else kind
        return kinds

    def reset_parameters(self) -> None:
        """The papers' init: Glorot for LTH's LeNet/Conv nets, Kaiming for VGG/ResNet."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                if self.init_scheme == "glorot":
                    nn.init.xavier_normal_(module.weight)
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def seeded(build, seed: int) -> PrunableNet:
    """Build a model whose θ0 depends only on `seed` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
        model.reset_parameters()
    return model


def scaled(widths: list[int], width: float) -> list[int]:
    return [max(1, round(w * width)) for w in widths]
