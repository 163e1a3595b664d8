"""Model registry: MLP/LeNet, LTH Conv-2/4/6, CIFAR VGG and ResNet, with a width multiplier."""

from study.models.base import Member, PrunableNet, UnitGroup
from study.models.counting import Counts, count
from study.models.registry import MODELS, build_model, has_batchnorm

__all__ = ["MODELS", "Counts", "Member", "PrunableNet", "UnitGroup", "build_model", "count",
           "has_batchnorm"]
