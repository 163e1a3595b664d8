"""Second-order information per weight: the Hessian diagonal three ways, and the empirical Fisher.

Optimal Brain Damage (LeCun et al. 1990) ranks a weight by ½·h_ii·w_i², so it needs h_ii, the
diagonal of the Hessian of the training loss. Three estimators, chosen by `prune.hessian`:

- `gauss_newton`: diag(Jᵀ H_ℓ J), the generalised Gauss-Newton matrix, computed *exactly over the
  classes*: for cross-entropy H_ℓ = Σ_c p_c (e_c - p)(e_c - p)ᵀ, so the diagonal is
  Σ_n Σ_c p_nc (∂ℓ(x_n, c)/∂w)², from per-sample, per-class gradients (torch.func.vmap). Positive
  (OBD's Levenberg-Marquardt assumption) and free of sampling noise. For a ReLU net without
  BatchNorm the output is piecewise linear in any *single* weight, so ∂²z/∂w_i² = 0 and this *is*
  the exact Hessian diagonal (`tests/test_criteria.py` checks it against autograd's Hessian).
  Cost: C per-sample gradient passes per batch (C = 10 classes here; with many classes one
  would sample ŷ ~ p instead).
- `hutchinson`: E[z ⊙ Hz] over Rademacher probes z (Bekas et al. 2007), by double backward; the
  true Hessian (BatchNorm curvature and negative entries included) but noisy.
- `exact`: one Hessian-vector product per weight; a reference for tiny nets only.

Every estimate is of the Hessian of the *mean* cross-entropy over a batch, averaged over batches,
with the net in eval mode (BatchNorm uses its running statistics, so samples are independent and
the loss is the one the pruned net is evaluated with).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

Batches = list[tuple[torch.Tensor, torch.Tensor]]
CHUNK_FLOATS = 2**25  # per-sample gradients held at once (128 MiB of float32)
EXACT_LIMIT = 5_000  # weights: one HVP each per batch; 43k took 9 CPU-minutes per batch
HUTCHINSON_PROBES = 4  # probes per batch: variance falls as 1/(batches x probes)


def _weighted_square_grads(model: nn.Module, names: list[str], x: torch.Tensor,
                           y: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Σ_n weight_n · (∂ℓ(x_n, y_n)/∂θ)² for the tensors `names`, vectorised, in chunks."""
    params = dict(model.named_parameters())
    fixed = {n: p.detach() for n, p in params.items() if n not in names}
    fixed.update(dict(model.named_buffers()))
    target = {n: params[n].detach() for n in names}

    def loss_one(theta: dict[str, torch.Tensor], x1: torch.Tensor, y1: torch.Tensor):
        logits = functional_call(model, {**fixed, **theta}, (x1.unsqueeze(0),))
        return nn.functional.cross_entropy(logits, y1.unsqueeze(0))

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(t) for n, t in target.items()}
    chunk = max(1, CHUNK_FLOATS // sum(t.numel() for t in target.values()))
    for i in range(0, len(y), chunk):
        grads, w = per_sample(target, x[i : i + chunk], y[i : i + chunk]), weight[i : i + chunk]
        for n in names:
            total[n] += torch.einsum("b,b...->...", w.to(grads[n].dtype), grads[n].square())
    return total


def fisher_diagonal(model: nn.Module, names: list[str],
                    batches: Batches) -> dict[str, torch.Tensor]:
    """The empirical Fisher diagonal: mean over samples of the squared gradient at the true label
    (EWC's parameter importance, Kirkpatrick et al. 2017)."""
    out = {n: 0.0 for n in names}
    for x, y in batches:
        weight = torch.full((len(y),), 1.0 / (len(y) * len(batches)), device=y.device)
        for n, t in _weighted_square_grads(model, names, x, y, weight).items():
            out[n] = out[n] + t
    return out


def hessian_diagonal(model: nn.Module, names: list[str], batches: Batches, method: str,
                     gen: torch.Generator) -> dict[str, torch.Tensor]:
    """diag ∇²(mean cross-entropy) for the tensors `names`, averaged over `batches`."""
    estimate = {"gauss_newton": _gauss_newton, "hutchinson": _hutchinson, "exact": _exact}
    if method not in estimate:
        raise ValueError(f"prune.hessian: unknown {method!r}; known: {', '.join(estimate)}")
    out = {n: 0.0 for n in names}
    for x, y in batches:
        for n, t in estimate[method](model, names, x, y, gen).items():
            out[n] = out[n] + t / len(batches)
    return out


def _gauss_newton(model, names, x, y, gen) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)  # (B, C)
    n, classes = probs.shape
    rows = torch.arange(n, device=x.device).repeat_interleave(classes)
    labels = torch.arange(classes, device=x.device).repeat(n)
    return _weighted_square_grads(model, names, x[rows], labels, probs.flatten() / n)


def _hutchinson(model, names, x, y, gen) -> dict[str, torch.Tensor]:
    params = [dict(model.named_parameters())[n] for n in names]
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    out = [torch.zeros_like(p) for p in params]
    for k in range(HUTCHINSON_PROBES):
        probes = [(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p) for p in params]
        hz = torch.autograd.grad(grads, params, grad_outputs=probes, allow_unused=True,
                                 retain_graph=k < HUTCHINSON_PROBES - 1)
        for acc, z, h in zip(out, probes, hz):
            if h is not None:
                acc += z * h / HUTCHINSON_PROBES
    return dict(zip(names, out))


def _exact(model, names, x, y, gen) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    size = sum(params[n].numel() for n in names)
    if size > EXACT_LIMIT:
        raise ValueError(f"prune.hessian: 'exact' takes one Hessian-vector product per weight; "
                         f"{size:,} weights is over {EXACT_LIMIT:,}: use gauss_newton or "
                         "hutchinson")
    loss = nn.functional.cross_entropy(model(x), y)
    out = {}
    for n in names:
        g = torch.autograd.grad(loss, params[n], create_graph=True)[0].flatten()
        diag = torch.zeros_like(g)
        for i in range(g.numel()):
            (row,) = torch.autograd.grad(g[i], params[n], retain_graph=True, allow_unused=True)
            if row is not None:
                diag[i] = row.flatten()[i]
        out[n] = diag.view_as(params[n])
    return out
