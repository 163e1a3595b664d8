"""How a trial runs, as opposed to what it computes.

The device, the memory layout of conv activations and whether the forward pass is compiled
change speed, not the experiment, so none of them enters a trial's id; each is recorded as a
tag on the run. bfloat16 autocast is different: it changes the numbers, so it is part of the
spec (`train.precision`) and of the id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from study.contract import CHANNELS_LAST, COMPILE, DEVICE


@dataclass(frozen=True)
class Execution:
    device: str = "cpu"
    channels_last: bool = False
    """NHWC memory layout for conv weights and inputs (fully connected nets are unaffected).
    Opt-in: on an AVX2-only AMD EPYC with torch 2.13's oneDNN, channels-last backward of conv
    nets with few channels (4-16, e.g. ResNet-20 at width 0.25 or a structured round) hangs or
    crashes the process, while the default layout trains them fine. Where it works it can be
    1.1-1.3x faster for conv nets (`study bench --part options` measures it per machine); cuDNN's
    tensor-core kernels want it on GPUs, which `scripts/gpu_check.sh` measures."""
    compile: bool = False
    """`torch.compile` the training forward pass. Off by default: the compile takes seconds
    to minutes, and on CPU the compiled MLP is slower (`study bench`); try it for long GPU runs."""

    def tags(self) -> dict[str, str]:
        return {DEVICE: self.device, CHANNELS_LAST: str(self.channels_last),
                COMPILE: str(self.compile)}


def bf16_supported(device: str) -> bool:
    """bfloat16 autocast runs on every CPU and on CUDA GPUs from Ampere on."""
    if torch.device(device).type != "cuda":
        return True
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
