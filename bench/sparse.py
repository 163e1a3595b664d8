"""The three ways a pruned net can run inference, built from one dense net and one sparsity.

- unstructured: the dense net with the pruned weights set to zero (same shapes, same kernels);
- csr: the same zeros, with every linear and conv weight stored as a torch sparse CSR matrix.
  Linear layers compute `torch.sparse.mm(W_csr, x^T)^T`; torch has no sparse convolution on the
  CPU, so conv layers unfold their input (im2col) and multiply the CSR filter matrix
  (C_out, C_in*k*k) by the columns: the standard way to run a sparse conv through SpMM;
- structured: whole neurons / filters removed with `study.pruning.shrink`, a physically smaller
  net whose number of weights matches the sparsity as closely as unit counts allow.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from bench.trainer import magnitude_masks
from study.models import PrunableNet
from study.pruning import shrink
from study.pruning.criteria import l1_filter


def _csr(weight: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we measure it anyway
        warnings.simplefilter("ignore", UserWarning)
        return weight.detach().flatten(1).to_sparse_csr()


class CSRLinear(nn.Module):
    """y = x W^T + b with W in CSR: one sparse-dense matmul on the transposed batch."""

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__()
        self.weight = _csr(layer.weight)  # (out, in)
        self.bias = None if layer.bias is None else layer.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, in)
        out = torch.sparse.mm(self.weight, x.t()).t()  # (B, out)
        return out if self.bias is None else out + self.bias


class CSRConv2d(nn.Module):
    """Conv as im2col + CSR SpMM: (C_out, C_in*k*k) @ (C_in*k*k, B*L) -> (B, C_out, H', W')."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.groups != 1:
            raise ValueError("CSRConv2d: grouped convolutions are not supported")
        self.weight = _csr(conv.weight)
        self.bias = None if conv.bias is None else conv.bias.detach().clone()
        self.kernel, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        self.out_channels = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        b, _, h, w = x.shape
        cols = nn.functional.unfold(x, self.kernel, self.dilation, self.padding, self.stride)
        k, positions = cols.shape[1], cols.shape[2]  # cols: (B, C*k*k, L)
        out = torch.sparse.mm(self.weight, cols.transpose(0, 1).reshape(k, b * positions))
        h_out = (h + 2 * self.padding[0] - self.dilation[0] * (self.kernel[0] - 1) - 1)
        w_out = (w + 2 * self.padding[1] - self.dilation[1] * (self.kernel[1] - 1) - 1)
        shape = (self.out_channels, b, h_out // self.stride[0] + 1, w_out // self.stride[1] + 1)
        out = out.view(shape).transpose(0, 1)  # (B, C_out, H', W')
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def masked_copy(model: PrunableNet, sparsity: float) -> PrunableNet:
    """A copy with `sparsity` of every prunable weight tensor zeroed by magnitude."""
    pruned = copy.deepcopy(model)
    params = dict(pruned.named_parameters())
    with torch.no_grad():
        for name, keep in magnitude_masks(pruned, sparsity).items():
            params[name].mul_(keep)
    return pruned


def csr_copy(model: nn.Module) -> nn.Module:
    """A copy whose every Linear and Conv2d keeps its weight in CSR format."""
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            parent, _, leaf = name.rpartition(".")
            swap = CSRLinear(module) if isinstance(module, nn.Linear) else CSRConv2d(module)
            setattr(out.get_submodule(parent) if parent else out, leaf, swap)
    return out


def _unit_mask(model: PrunableNet, keep: float, scores: dict[str, torch.Tensor]) -> dict:
    """Keep the `keep` fraction (at least one) of every group's units, highest L1 first."""
    out = {}
    for g in model.unit_groups():
        n = max(1, round(keep * g.size))
        mask = torch.zeros(g.size, dtype=torch.bool)
        mask[scores[g.name].argsort(descending=True, stable=True)[:n]] = True
        out[g.name] = mask
    return out


def _weights(model: PrunableNet) -> int:
    params = dict(model.named_parameters())
    return sum(params[n].numel() for n in model.prunable())


def structured_copy(model: PrunableNet, sparsity: float) -> tuple[PrunableNet, float]:
    """The net shrunk to about (1 - sparsity) of its weights, and the sparsity reached.

    One keep fraction for every unit group, found by bisection on the weight count (a layer
    between two pruned layers loses about keep^2 of its weights, the first and last about keep).
    """
    groups = model.unit_groups()
    dense, target = _weights(model), (1.0 - sparsity) * _weights(model)

    def weights_at(keep: float) -> int:
        return _weights(model.rebuild([max(1, round(keep * g.size)) for g in groups]))

    low, high = 0.0, 1.0
    for _ in range(20):
        mid = (low + high) / 2
        low, high = (low, mid) if weights_at(mid) > target else (mid, high)
    keep = min((low, high), key=lambda k: abs(weights_at(k) - target))
    scores = l1_filter(model, torch.Generator().manual_seed(0))
    small = shrink(model, _unit_mask(model, keep, scores)).eval()
    return small, 1.0 - _weights(small) / dense
