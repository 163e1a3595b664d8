"""What a trial can know and fetch: its data, the big net's template, θ0, θk, its round's mask.

Everything upstream comes through `fetch(parent spec, artifact name)`, which reads the tracking
store (checksum verified), so a trial runs the same in `study run`, on a Ray worker, or on
another node. Properties are computed on first use: an arm pays only for what it reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property

import torch

from study import seeds
from study.data import Splits, load_data
from study.models import MODELS, PrunableNet, build_model, count
from study.models.base import seeded
from study.pruning import Masks, draw_batches, initial_mask, mask_step
from study.pruning.at_init import AT_INIT, InitScoring
from study.pruning.registry import CRITERIA
from study.specs import TrainSpec, TrialSpec
from study.train import train

Fetch = Callable[[TrialSpec, str], dict[str, torch.Tensor]]


class TrialContext:
    def __init__(self, spec: TrialSpec, fetch: Fetch, device: str | torch.device = "cpu") -> None:
        self.spec, self.fetch, self.device = spec, fetch, torch.device(device)
        self.structured = spec.prune is not None and spec.prune.granularity == "structured"

    @cached_property
    def data(self) -> Splits:
        d = self.spec.dense.data
        return load_data(d.name, device=self.device, val_fraction=d.val_fraction,
                         split_seed=d.split_seed, n_samples=d.n_samples, augment=d.augment,
                         data_dir=os.environ.get("STUDY_DATA_DIR"))

    @cached_property
    def total_steps(self) -> int:
        return self.spec.dense.total_steps()

    @cached_property
    def train(self) -> TrainSpec:
        """The dense TrainSpec as this trial trains with it: Network Slimming's bn_l1 only where
        the protocol applies it (`TrialSpec.trains_with_bn_l1`)."""
        train = self.spec.dense.train
        return train if self.spec.trains_with_bn_l1 else train.model_copy(update={"bn_l1": 0.0})

    def _build(self, seed: int, width_factor: float = 1.0) -> PrunableNet:
        m, info = self.spec.dense.model, self.spec.dense.data.info()
        return build_model(m.name, info.input_shape, info.num_classes,
                           width=m.width * width_factor, hidden=m.hidden, seed=seed)

    @cached_property
    def big_template(self) -> PrunableNet:
        return self._build(self.spec.dense.seed)

    @cached_property
    def dense_counts(self):
        return count(self.big_template)

    def init_big(self, seed: int) -> PrunableNet:
        """The big net as `seed` initialises it (θ0 for the trial's own seed)."""
        return self._build(seed).to(self.device)

    def big(self, state: dict[str, torch.Tensor]) -> PrunableNet:
        model = self.big_template.rebuild(self.big_template.widths)
        model.load_state_dict(state)
        return model.to(self.device)

    def small(self, mask: Masks, state: dict[str, torch.Tensor]) -> PrunableNet:
        """A structured round's trained net, rebuilt from its unit mask and weights."""
        model = self.big_template.rebuild([int(mask[g.name].sum())
                                           for g in self.big_template.unit_groups()])
        model.load_state_dict(state)
        return model.to(self.device)

    def rebuild_small(self, mask: Masks, seed: int) -> PrunableNet:
        widths = [int(mask[g.name].sum()) for g in self.big_template.unit_groups()]
        return seeded(lambda: self.big_template.rebuild(widths), seed).to(self.device)

    # -- upstream artifacts ------------------------------------------------------------------
    def _parent(self, stage: str) -> TrialSpec:
        return next(p for p in self.spec.parents() if p.stage == stage)

    def _imp(self, round_: int) -> TrialSpec:
        return TrialSpec(stage="imp", arm=self.spec.prune.chain_arm, round=round_,
                         dense=self.spec.dense, prune=self.spec.prune)

    def fetch_dense(self, name: str) -> dict[str, torch.Tensor]:
        return self.fetch(self._parent("dense"), name)

    def fetch_imp(self, name: str) -> dict[str, torch.Tensor]:
        return self.fetch(self._parent("imp"), name)

    @cached_property
    def mask(self) -> Masks:
        return self.fetch_imp("mask.pt")

    @cached_property
    def rewind(self) -> dict[str, torch.Tensor]:
        """θk: the big net's weights at the rewind step (θ0 when it is 0)."""
        if any(p.stage == "imp" for p in self.spec.parents()):  # a round's ticket keeps θk
            return self.fetch_imp("init.pt")
        theta0, k = self.fetch_dense("init.pt"), self.spec.prune.rewind_step
        if k == 0:
            return theta0
        # Replay the dense run to step k: batches and lr are functions of the step, so this is
        # exactly the dense run's θk (no need to keep every dense step's weights).
        model = self.big(theta0)
        train(model, self.data, self.spec.dense.train, seed=self.spec.dense.seed,
              total_steps=self.total_steps, stop_step=k)
        return {n: t.detach().clone() for n, t in model.state_dict().items()}

    def source(self) -> tuple[Masks, PrunableNet]:
        """The trained net the round's mask is computed from, and the mask it already has:
        round r-1's trained net in an iterative chain (IMP's retrained ticket, or a fine-tune
        chain's fine-tuned net; a shrunk net if structured), the trained dense net (nothing
        pruned yet) at round 1 and in a one-shot chain."""
        if self.spec.source_round:
            imp = self._imp(self.spec.source_round)
            previous, final = self.fetch(imp, "mask.pt"), self.fetch(imp, "final.pt")
            return previous, self.small(previous, final) if self.structured else self.big(final)
        previous = initial_mask(self.spec.prune, self.big_template)
        return previous, self.big(self.fetch_dense("final.pt"))

    def prune_round(self) -> tuple[Masks, dict[str, Masks]]:
        """Chain round r's mask (and, unstructured, Zhou's supermask from the same source): the
        round's inputs fetched and built here, the step itself `study.pruning.mask_step`.

        Data-dependent criteria (obd, fisher, taylor, apoz) score the source net on
        `prune.saliency_batches` training batches of the dense batch size, unaugmented, drawn
        from `seeds.saliency` (seed, the source net's round): every one-shot round scores the
        dense net on the same batches, so its masks nest as magnitude's do. Other criteria draw
        from `seeds.mask_scores` (seed, round).
        """
        plan, seed = self.spec.prune, self.spec.dense.seed
        gen = torch.Generator().manual_seed(seeds.mask_scores(seed, self.spec.round))
        previous, source = self.source()
        batches = None
        if CRITERIA[plan.criterion].data:  # hutchinson's probes also come from this generator
            gen = torch.Generator().manual_seed(seeds.saliency(seed, self.spec.source_round))
            batches = draw_batches(self.data.x_train, self.data.y_train, plan.saliency_batches,
                                   self.spec.dense.train.batch_size, gen)
        theta0 = rewound = None
        if not self.structured:
            theta0, rewound = self.big(self.fetch_dense("init.pt")), self.big(self.rewind)
        mask, supermask = mask_step(plan, self.spec.round, source, previous, theta0, rewound,
                                    batches, gen)
        return mask, {} if supermask is None else {"supermask.pt": supermask}

    def init_mask(self, criterion: str, model: PrunableNet, keep: int) -> Masks:
        """The mask of `keep` weights an at-init criterion (`study.pruning.at_init.AT_INIT`)
        chooses for `model` (θ0): snip and grasp score it on `options.init_batches` training
        batches of the dense batch size, unaugmented, drawn from `seeds.init_scores` (one draw
        per seed: every round and criterion scores the same batches); random draws come from
        `seeds.erk_mask` (seed, round)."""
        rule, seed = AT_INIT[criterion], self.spec.dense.seed
        gen = torch.Generator().manual_seed(seeds.erk_mask(seed, self.spec.round))
        batches = None
        if rule.data:
            draw = torch.Generator().manual_seed(seeds.init_scores(seed))
            batches = draw_batches(self.data.x_train, self.data.y_train,
                                   self.spec.options.init_batches,
                                   self.spec.dense.train.batch_size, draw)
        return rule.mask(InitScoring(model, keep, gen, batches))

    def narrow_dense(self, target: int, seed: int) -> tuple[PrunableNet, float]:
        """The family at the width whose prunable weights best match `target`; relative error."""
        m, info = self.spec.dense.model, self.spec.dense.data.info()

        def weights(factor: float) -> int:
            with torch.device("meta"):
                net = MODELS[m.name](info.input_shape, info.num_classes, m.width * factor,
                                     m.hidden)
            params = dict(net.named_parameters())
            return sum(params[n].numel() for n in net.prunable())

        lo, hi = 1e-4, 1.0
        for _ in range(20):  # weight count grows with width: bisect on the factor (to 1e-5,
            # far inside one width step of 1/hidden)
            mid = (lo * hi) ** 0.5
            lo, hi = (mid, hi) if weights(mid) < target else (lo, mid)
        factor = min((lo, hi), key=lambda f: abs(weights(f) - target))
        return self._build(seed, factor).to(self.device), (weights(factor) - target) / target
