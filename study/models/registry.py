"""Plain-dict model registry: name -> builder of a `PrunableNet` at a width multiplier."""

from __future__ import annotations

from collections.abc import Callable

from study.models.base import PrunableNet, scaled, seeded
from study.models.convnets import CONV_CFG, VGG_CFG, ConvNet
from study.models.mlp import MLP
from study.models.resnet import DEPTHS, ResNet

Builder = Callable[[tuple[int, ...], int, float, "tuple[int, ...] | None"], PrunableNet]


def _mlp(shape, classes, width, hidden=None) -> PrunableNet:
    return MLP(shape, classes, scaled(list(hidden or (300, 100)), width))


def _conv(name: str) -> Builder:
    layout, fc = CONV_CFG[name]

    def build(shape, classes, width, hidden=None) -> PrunableNet:
        channels = [c for c in layout if c != "M"]
        return ConvNet(shape, classes, layout, scaled(channels + fc, width), batchnorm=False,
                       global_pool=False)
    return build


def _vgg(name: str) -> Builder:
    layout = VGG_CFG[name]

    def build(shape, classes, width, hidden=None) -> PrunableNet:
        channels = [c for c in layout if c != "M"]
        return ConvNet(shape, classes, layout, scaled(channels, width), batchnorm=True,
                       global_pool=True)
    return build


def _resnet(name: str) -> Builder:
    n = DEPTHS[name]

    def build(shape, classes, width, hidden=None) -> PrunableNet:
        stages = scaled([16, 32, 64], width)
        return ResNet(shape, classes, n, stages, [c for c in stages for _ in range(n)])
    return build


MODELS: dict[str, Builder] = {
    "mlp": _mlp,
    **{name: _conv(name) for name in CONV_CFG},
    **{name: _vgg(name) for name in VGG_CFG},
    **{name: _resnet(name) for name in DEPTHS},
}


def has_batchnorm(name: str) -> bool:
    return name.startswith(("vgg", "resnet"))


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, *, width: float = 1.0,
                hidden: tuple[int, ...] | None = None, seed: int = 0) -> PrunableNet:
    """A model whose θ0 is a function of `seed` alone."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return seeded(lambda: MODELS[name](tuple(input_shape), num_classes, width, hidden), seed)
