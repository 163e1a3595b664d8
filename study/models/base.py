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


def glorot(module: nn.Module) -> None:
    """LTH's LeNet and Conv-2/4/6 (Frankle & Carbin 2019, "Gaussian Glorot"): Glorot normal
    weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def slimming_vgg(module: nn.Module) -> None:
    """The CIFAR VGG of the Rethinking code (Liu et al. 2019, `cifar/network-slimming/models/
    vgg.py`; the same net: bias-free 3x3 conv + BN + ReLU, one Linear): conv N(0, 2/(k·k·out))
    (He et al.'s fan_out), BN γ = 0.5 and β = 0, Linear N(0, 0.01²) with zero bias."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.constant_(module.weight, 0.5)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.01)
        nn.init.zeros_(module.bias)


def open_lth(module: nn.Module) -> None:
    """open_lth's CIFAR ResNet (Frankle et al.; `models/cifar_resnet.py` with its defaults
    model_init=kaiming_normal, batchnorm_init=uniform; the same net, 1x1 projection
    shortcuts): every conv and linear weight N(0, 2/fan_in), biases left at PyTorch's default
    U(±1/√fan_in), BN γ ~ U[0, 1) and β = 0."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.kaiming_normal_(module.weight)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.uniform_(module.weight, 0.0, 1.0)
        nn.init.zeros_(module.bias)


INITS = {"glorot": glorot, "slimming_vgg": slimming_vgg, "open_lth": open_lth}
"""Each family's init, after its reference implementation (by the name a family declares)."""


class PrunableNet(nn.Module):
    """A model family at explicit hidden `widths`, initialised as its reference code does."""

    init_scheme: str = "glorot"
    """A key of `INITS`."""

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
        """The family's init (`INITS[init_scheme]`) on every module."""
        self.apply(INITS[self.init_scheme])


def seeded(build, seed: int) -> PrunableNet:
    """Build a model whose θ0 depends only on `seed` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
        model.reset_parameters()
    return model


def scaled(widths: list[int], width: float) -> list[int]:
    return [max(1, round(w * width)) for w in widths]
