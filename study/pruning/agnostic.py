"""Weight-agnostic evaluation of a mask (after Gaier & Ha 2019): does the wiring alone classify?

Every surviving weight of layer l is set to one shared value s·w·α_l and the net is evaluated
without training, for a sweep of w:

- α_l is the std of layer l's θ0 (Zhou et al.'s α, so w = 1 with θ0 signs is exactly the
  `sign_constant` arm's starting point). A *relative* w keeps one sweep meaningful across
  layers of different fan-in, where one absolute value would blow up or vanish with depth.
- s is the sign of the survivor's θk (`signed`, Zhou et al.: the sign is what matters) or +1
  (`positive`, Gaier & Ha's single shared weight); negative w flips every layer.
- Biases and BatchNorm keep their θk values (at θ0: zero biases and β, except the ResNet fc
  bias, which open_lth leaves at PyTorch's default).

Note for reading results: for a ReLU net whose biases are zero (θ0 with rewind step 0, every
family but the ResNet) the logits are positively homogeneous in w (scaling every layer by w>0
scales them by w^depth), so the accuracy is the same for every positive w and only the sign of
w can change it; the sweep matters where biases or BatchNorm shifts are non-zero (late
rewinding).

The shared value is chosen on the validation split; test accuracy is reported at that value.
"""

from __future__ import annotations

import math

import torch

from study.data import Splits
from study.loop import evaluate
from study.models import PrunableNet
from study.pruning.masks import Masks

SHARED_WEIGHTS = (-2.0, -1.0, -0.5, -0.1, -0.01, 0.01, 0.1, 0.5, 1.0, 2.0)
"""w, relative to each layer's θ0 std."""
SIGNS = ("signed", "positive")


@torch.no_grad()
def set_shared(model: PrunableNet, signs: dict[str, torch.Tensor], alphas: dict[str, float],
               w: float, masks: Masks | None = None, positive: bool = False) -> PrunableNet:
    """Set, in place, every prunable weight to s·w·α_l (0 where `masks` prunes it)."""
    params = dict(model.named_parameters())
    for name in model.prunable():
        sign = torch.ones_like(signs[name]) if positive else signs[name]
        value = sign * (w * alphas[name])
        if masks is not None:
            value = value * masks[name].to(value.device, value.dtype)
        params[name].copy_(value)
    return model


def key(signs: str, split: str, w: float) -> str:
    """The flat metric name of one point of the sweep, e.g. `wa_signed_val_acc_w0.5`."""
    return f"wa_{signs}_{split}_acc_w{w:g}"


def sweep(model: PrunableNet, alphas: dict[str, float], data: Splits,
          masks: Masks | None = None, precision: str = "fp32") -> dict[str, float]:
    """Evaluate every (sign mode, w); leave `model` at the signed mode's best w on validation.

    Returns flat metrics: per point `wa_{signs}_{val,test}_acc_w{w}`, per sign mode the chosen
    `wa_{signs}_best_w` and its `wa_{signs}_val_acc` / `wa_{signs}_test_acc`, and
    `final_test_acc` = the signed mode's test accuracy at its chosen w.
    """
    signs = {n: torch.sign(p.detach()) for n, p in model.named_parameters()
             if n in model.prunable()}
    metrics: dict[str, float] = {}
    best: dict[str, float] = {}
    for mode in SIGNS:
        for w in SHARED_WEIGHTS:
            set_shared(model, signs, alphas, w, masks, positive=mode == "positive")
            metrics[key(mode, "val", w)] = evaluate(model, data.x_val, data.y_val, precision)[1]
            metrics[key(mode, "test", w)] = evaluate(model, data.x_test, data.y_test,
                                                     precision)[1]
        best[mode] = _choose(metrics, mode)
        metrics[f"wa_{mode}_best_w"] = best[mode]
        metrics[f"wa_{mode}_val_acc"] = metrics[key(mode, "val", best[mode])]
        metrics[f"wa_{mode}_test_acc"] = metrics[key(mode, "test", best[mode])]
    set_shared(model, signs, alphas, best["signed"], masks)
    metrics["final_test_acc"] = metrics["wa_signed_test_acc"]
    return metrics


def _choose(metrics: dict[str, float], mode: str) -> float:
    """The w of best validation accuracy; ties go to |w| nearest 1, then to positive w. Without a
    validation split, w = 1 (never chosen on test)."""
    vals = {w: metrics[key(mode, "val", w)] for w in SHARED_WEIGHTS}
    if any(math.isnan(v) for v in vals.values()):
        return 1.0
    return max(SHARED_WEIGHTS, key=lambda w: (vals[w], -abs(math.log(abs(w))), w > 0))
