"""K same-shaped nets trained as one stacked model: the mechanics of a pack.

Small nets are bound by per-op overhead, not arithmetic, so one op over K members costs little
more than over one. Every parameter of every member lives in one (K, P) matrix (one row per
member, the nets' parameters flattened in `named_parameters` order): the optimizer step, the
masks and the weight decay are then a handful of ops for the whole pack, whatever the depth.
The forward pass reads (K, ...) views of that matrix: batched matmuls for the MLP family
(`torch.baddbmm`, the fastest measured on CPU), `torch.func.vmap` over `functional_call` for
every other family, with per-member BatchNorm statistics as stacked buffers.

Each member keeps what makes it its own trial: θ0, its `BatchOrder`, augmentation draws seeded
by (seed, step) exactly as `study.train.Solo` draws them, its mask, its lr schedule and weight
decay (per-member tensors in the optimizer).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.func import functional_call, vmap

from study import seeds
from study.data import Splits
from study.execution import Execution
from study.loop import EVAL_BATCH, BatchOrder, Member, autocast, lr_at, write_masks
from study.models.mlp import MLP
from study.specs import TrainSpec

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as make_optimizer uses
SHARED_FIELDS = ("optimizer", "momentum", "nesterov", "batch_size", "eval_every", "bn_l1",
                 "precision")
"""TrainSpec fields one stacked loop has once for all members (lr, weight decay and the
schedule's values are per member)."""


class StackedOptimizer:
    """torch.optim's SGD (momentum, nesterov, weight decay) and Adam, op for op, over a (K, P)
    parameter matrix whose rows have their own lr and weight decay ((K, 1) columns)."""

    def __init__(self, spec: TrainSpec, param: torch.Tensor, weight_decay: torch.Tensor) -> None:
        self.spec, self.param = spec, param
        self.weight_decay = weight_decay if bool((weight_decay != 0).any()) else None
        self.state: dict[str, torch.Tensor] = {}
        self.steps = 0

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        p, grad = self.param, self.param.grad
        if self.weight_decay is not None:
            grad = grad.addcmul(p, self.weight_decay)  # grad + wd * p, per row
        self.steps += 1
        if self.spec.optimizer == "adam":
            self._adam(p, grad, lr)
        else:
            self._sgd(p, grad, lr)

    def _sgd(self, p: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor) -> None:
        momentum = self.spec.momentum
        if momentum:
            if "momentum_buffer" not in self.state:
                buf = self.state["momentum_buffer"] = grad.clone()
            else:
                buf = self.state["momentum_buffer"].mul_(momentum).add_(grad)
            grad = grad.add(buf, alpha=momentum) if self.spec.nesterov else buf
        p.addcmul_(grad, lr, value=-1.0)

    def _adam(self, p: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor) -> None:
        (beta1, beta2), step = ADAM_BETAS, self.steps
        if "exp_avg" not in self.state:
            self.state["exp_avg"] = torch.zeros_like(p)
            self.state["exp_avg_sq"] = torch.zeros_like(p)
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(ADAM_EPS)
        p.addcmul_(exp_avg / denom, step_size, value=-1.0)

    def keep(self, rows: torch.Tensor) -> None:
        """Continue with these rows only (members that left the pack are dropped)."""
        self.state = {k: v[rows] for k, v in self.state.items()}
        if self.weight_decay is not None:
            self.weight_decay = self.weight_decay[rows]

    def state_dict(self) -> dict:
        return {"steps": self.steps, **self.state}

    def load_state_dict(self, saved: dict) -> None:
        saved = dict(saved)
        self.steps = int(saved.pop("steps"))
        self.state = {k: v.to(self.param.device) for k, v in saved.items()}


LR_WINDOW = 500
"""Steps of learning rates computed at once."""


class Stacked:
    """The engine of a pack: the `study.train.Solo` interface for K members at once."""

    def __init__(self, members: list[Member], data: Splits, total_steps: int,
                 execution: Execution) -> None:
        self.members, self.data, self.total_steps = members, data, total_steps
        self.alive = list(range(len(members)))
        device = data.x_train.device
        models = [m.model for m in members]
        self.template = copy.deepcopy(models[0]).to("meta")  # the function, not the weights
        named = list(models[0].named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        for model in models[1:]:
            shapes = [p.shape for p in model.parameters()]
            if shapes != self.shapes:
                raise ValueError(f"a pack needs one architecture; got {shapes} and {self.shapes}")
        with torch.no_grad():
            self.flat = torch.stack([torch.cat([p.detach().reshape(-1) for p in m.parameters()])
                                     for m in models]).to(device).requires_grad_()
            self.buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]).to(device)
                            for n, _ in models[0].named_buffers()}
        self.keep_mask = self._masks(members, device)
        spec = members[0].spec
        for m in members[1:]:
            differ = [f for f in SHARED_FIELDS if getattr(m.spec, f) != getattr(spec, f)]
            if differ:
                raise ValueError(f"a pack shares train.{', train.'.join(differ)}; members differ")
        column = torch.tensor  # (K, 1): one value per member, broadcast along its row
        self.opt = StackedOptimizer(spec, self.flat, column(
            [[m.spec.weight_decay] for m in members], device=device))
        self.orders = [BatchOrder(len(data.y_train), spec.batch_size, m.seed, device)
                       for m in members]
        self.cast = autocast(device, spec.precision)
        self.bn_rows = self._bn_positions(device) if spec.bn_l1 else None
        self.fast_mlp = isinstance(models[0], MLP)
        self._lr_at, self._lr = (-1, []), None  # (first step, alive members) of the table
        self._order_at, self._orders = (-1, []), None  # (epoch, alive members) of the orders

    # -- construction helpers ----------------------------------------------------------------
    def _masks(self, members: list[Member], device: torch.device) -> torch.Tensor | None:
        """(K, P) of 0/1 (1 where a member has no mask for a tensor), or None if none masks."""
        if not any(m.masks for m in members):
            return None
        rows = []
        for m in members:
            masks = m.masks or {}
            rows.append(torch.cat([masks[n].reshape(-1).float().cpu() if n in masks
                                   else torch.ones(size)
                                   for n, size in zip(self.names, self.sizes)]))
        return torch.stack(rows).to(device)

    def _bn_positions(self, device: torch.device) -> torch.Tensor:
        """(1, P) indicator of BatchNorm scales (Network Slimming's L1 acts on those)."""
        modules = dict(self.template.named_modules())
        flags = [torch.full((size,), float(isinstance(modules[n.rsplit(".", 1)[0]],
                                                      nn.BatchNorm2d) and n.endswith("weight")))
                 for n, size in zip(self.names, self.sizes)]
        return torch.cat(flags).to(device).unsqueeze(0)

    # -- the engine interface ----------------------------------------------------------------
    def start(self) -> None:
        self._apply_masks()
        self.template.train()

    def params(self) -> dict[str, torch.Tensor]:
        """{name: (K, *shape)} views of the parameter matrix (autograd flows into it)."""
        k = self.flat.shape[0]
        return {n: t.view(k, *s) for n, t, s in
                zip(self.names, self.flat.split(self.sizes, dim=1), self.shapes)}

    def forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Logits (K, B, classes) of every member: `x` is (K, B, ...) or, `shared`, (B, ...)."""
        params = self.params()
        if self.fast_mlp:
            return _mlp_forward(params, len(self.template.layers), x, shared)
        run = vmap(lambda p, b, xs: functional_call(self.template, (p, b), (xs,)),
                   in_dims=(0, 0, None if shared else 0))
        return run(params, self.buffers, x)

    def _lrs(self, step: int) -> torch.Tensor:
        """(K, 1): each alive member's lr at `step`, from a table of the next LR_WINDOW steps
        (one tensor per window, not one per step)."""
        first, alive = self._lr_at
        if not first <= step < first + LR_WINDOW or alive != self.alive:
            self._lr_at = (step, list(self.alive))
            self._lr = torch.tensor(
                [[lr_at(spec, s, self.total_steps, spec.lr)
                  for s in range(step, step + LR_WINDOW)]
                 for spec in (self.members[m].spec for m in self.alive)],
                device=self.flat.device)
            first = step
        return self._lr[:, step - first : step - first + 1]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, B, ...) inputs and (K, B) labels: each member's own batch at `step`, sliced from
        the alive members' epoch orders stacked once an epoch."""
        epoch, i = divmod(step, self.orders[0].per_epoch)
        if self._order_at != (epoch, self.alive):
            self._order_at = (epoch, list(self.alive))
            self._orders = torch.stack([self.orders[m].permutation(epoch) for m in self.alive])
        size = self.orders[0].batch
        idx = self._orders[:, i * size : (i + 1) * size].reshape(-1)
        shape = (len(self.alive), size)  # index_select: ~3x faster than x[idx] with a 2-D idx
        x = self.data.x_train.index_select(0, idx).view(*shape, *self.data.x_train.shape[1:])
        y = self.data.y_train.index_select(0, idx).view(shape)
        if self.data.augment is not None:
            draws = [seeds.augmentation(self.members[m].seed, step) for m in self.alive]
            x = torch.stack([self.data.augment(xs, torch.Generator(xs.device).manual_seed(d))
                             for d, xs in zip(draws, x)])
        return x, y

    def step(self, step: int) -> torch.Tensor:
        """One optimizer step of every alive member; their (detached) losses, shape (K,)."""
        x, y = self.batch(step)
        with self.cast:
            logits = self.forward(x)
            losses = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(),
                                                 reduction="none").view(y.shape).mean(1)
        self.flat.grad = None
        losses.sum().backward()  # member k's gradient is that of its own mean loss
        if self.bn_rows is not None:
            with torch.no_grad():
                self.flat.grad.addcmul_(self.flat.sign(), self.bn_rows,
                                        value=self.members[0].spec.bn_l1)
        self.opt.step(self._lrs(step))
        self._apply_masks()
        return losses.detach()

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
        """(mean loss, accuracy) of every alive member in eval mode, in one pass over `x`."""
        k = len(self.alive)
        if len(y) == 0:
            return [(math.nan, math.nan)] * k
        self.template.eval()
        loss = torch.zeros(k, dtype=torch.float64, device=x.device)
        correct = torch.zeros(k, dtype=torch.int64, device=x.device)
        for i in range(0, len(y), EVAL_BATCH):
            part = y[i : i + EVAL_BATCH]
            with self.cast:
                logits = self.forward(x[i : i + EVAL_BATCH], shared=True)  # (K, B, C)
            loss += nn.functional.cross_entropy(
                logits.flatten(0, 1).float(), part.repeat(k), reduction="none"
            ).view(k, -1).sum(1, dtype=torch.float64)
            correct += (logits.argmax(2) == part).sum(1)
        self.template.train()
        return [(float(a) / len(y), int(c) / len(y)) for a, c in zip(loss, correct)]

    def update_masks(self, step: int) -> None:
        """Each alive member's mask update after the optimizer step of `step`, where one is
        due: the hook edits views of the member's row of the pack's matrices."""
        for row, m in enumerate(self.alive):
            hook = self.members[m].mask_update
            if hook is not None and hook.due(step):
                masked = list(self.members[m].masks)
                states = [self._row(t, row, masked) for t in self.opt.state.values()]
                hook(step, self._row(self.flat.detach(), row, masked),
                     self._row(self.flat.grad, row, masked),
                     self._row(self.keep_mask, row, masked), states)

    def _row(self, matrix: torch.Tensor, row: int, names: list[str]) -> dict[str, torch.Tensor]:
        """{name: view} of the tensors `names` in one row of a (K, P) matrix."""
        views = dict(zip(self.names, matrix[row].split(self.sizes)))
        shapes = dict(zip(self.names, self.shapes))
        return {n: views[n].view(shapes[n]) for n in names}

    def drop(self, rows: list[int]) -> None:
        """Keep only `rows` of the alive members: their stacked state, nothing else changes."""
        self._write_back([m for r, m in enumerate(self.alive) if r not in rows])
        index = torch.tensor(rows, dtype=torch.long, device=self.flat.device)
        self.alive = [self.alive[r] for r in rows]
        if not rows:
            return
        with torch.no_grad():
            self.flat = self.flat.detach()[index].requires_grad_()
            self.buffers = {n: b[index] for n, b in self.buffers.items()}
        if self.keep_mask is not None:
            self.keep_mask = self.keep_mask[index]
        self.opt.param = self.flat
        self.opt.keep(index)
        self._lr_key = None

    def state_dict(self) -> dict:
        """The pack's checkpoint: which members are alive, and their stacked state."""
        pack = {"alive": list(self.alive), "flat": self.flat.detach().clone(),
                "buffers": {n: b.clone() for n, b in self.buffers.items()},
                "optimizer": self.opt.state_dict()}
        logs = {m: self.members[m].mask_update.state_dict() for m in self.alive
                if self.members[m].mask_update is not None}
        if logs:  # masks that move are state
            pack["keep_mask"], pack["mask_logs"] = self.keep_mask.clone(), logs
        return {"pack": pack}

    def load_state_dict(self, saved: dict) -> None:
        pack = saved["pack"]
        alive = [int(m) for m in pack["alive"]]
        self.drop([self.alive.index(m) for m in alive])
        with torch.no_grad():
            self.flat = pack["flat"].to(self.flat.device).clone().requires_grad_()
            self.buffers = {n: b.to(self.flat.device) for n, b in pack["buffers"].items()}
        self.opt.param = self.flat
        self.opt.load_state_dict(pack["optimizer"])
        if "mask_logs" in pack:
            self.keep_mask = pack["keep_mask"].to(self.flat.device).clone()
            for m, log in pack["mask_logs"].items():
                self.members[int(m)].mask_update.load_state_dict(log)

    def finish(self) -> None:
        """Copy every alive member's weights and buffers back into its own module."""
        self._write_back(self.alive)

    # -- internals ---------------------------------------------------------------------------
    @torch.no_grad()
    def _apply_masks(self) -> None:
        if self.keep_mask is not None:
            self.flat.mul_(self.keep_mask)

    @torch.no_grad()
    def _write_back(self, members: list[int]) -> None:
        params = self.params()
        for m in members:
            row = self.alive.index(m)
            model = self.members[m].model
            if self.members[m].mask_update is not None:
                write_masks(self.members[m], self._row(self.keep_mask, row,
                                                        list(self.members[m].masks)))
            for name, p in model.named_parameters():
                p.copy_(params[name][row])
            for name, b in model.named_buffers():
                b.copy_(self.buffers[name][row])


def _mlp_forward(params: dict[str, torch.Tensor], n_layers: int, x: torch.Tensor,
                 shared: bool) -> torch.Tensor:
    """`study.models.mlp.MLP.forward` for K stacked members: ReLU between batched matmuls."""
    h = x.flatten(1) if shared else x.flatten(2)  # (B, in) shared by all, or (K, B, in)
    for i in range(n_layers):
        w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]  # (K, out, in), (K, out)
        if h.dim() == 2:
            h = torch.matmul(h, w.transpose(1, 2)) + b.unsqueeze(1)
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if i < n_layers - 1:
            h = torch.relu(h)
    return h
