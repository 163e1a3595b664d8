"""How a trial runs, as opposed to what it computes.

The device, the memory layout of conv activations and whether the forward pass is compiled
change speed, not the experiment, so none of them enters a trial's id; each is recorded as a
tag on the run. bfloat16 autocast is different: it changes the numbers, so it is part of the
spec (`train.precision`) and of the id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Execution:
    device: str = "cpu"
    channels_last: bool = False
    """NHWC memory layout for conv weights and inputs: what cuDNN's tensor-core kernels want."""
    compile: bool = False
    """`torch.compile` the training forward pass. Off by default: it pays only for long runs
    on a GPU (the compile takes tens of seconds), and on CPU it does not pay (`study bench`)."""

    @classmethod
    def on(cls, device: str = "cpu", channels_last: bool | None = None,
           compile: bool = False) -> Execution:
        """Defaults by device: channels-last on CUDA (unless said otherwise), never on CPU."""
        if channels_last is None:
            channels_last = torch.device(device).type == "cuda"
        return cls(device=device, channels_last=channels_last, compile=compile)

    def tags(self) -> dict[str, str]:
        return {"study.device": self.device, "study.channels_last": str(self.channels_last),
                "study.compile": str(self.compile)}


def bf16_supported(device: str) -> bool:
    """bfloat16 autocast runs on every CPU and on CUDA GPUs from Ampere on."""
    if torch.device(device).type != "cuda":
        return True
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
