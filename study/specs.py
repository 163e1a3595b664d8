"""Frozen, validated specs for every unit of work, and their content-hash ids.

A trial is fully described by a `TrialSpec`: the dense training it descends from, the pruning
plan of its ticket (its chain: IMP, or a prune-and-fine-tune loop), its round and its arm. The
id of a spec is the hash of its canonical JSON *without fields left at their defaults*
(open_lth's trick): adding a field with a no-op default later keeps every old id valid.
`tests/test_specs.py` pins a few ids.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from study import seeds
from study.arm_registry import (  # noqa: F401 (every fact keyed by arm is its entry there)
    ARMS,
    AT_INIT_ARMS,
    REGISTRY,
    SOURCE_ARMS,
    SPARSE_ARMS,
    STABILITY_ARMS,
    TRAIN_SMALL_ARMS,
    UNTRAINED,
    option_readers,
)

ARM_OPTION_READERS = option_readers()
"""Options only some arms read: a space's options reach only these arms (`study.space`), and
a trial of another arm refuses them (the same work must not get two ids)."""
Stage = Literal["dense", "imp", "arm"]
FINETUNE_FRACTION = 0.25
"""Fine-tuning budget as a fraction of dense training (Rethinking: 40 of 160 epochs): the
default of the finetune arm (`ArmOptions`) and of a fine-tune chain's rounds (`PruneSpec`)."""
CHAIN_ARMS = {"rewind": "lottery", "finetune": "finetune"}
"""`PruneSpec.retrain` -> the arm a chain's own rounds (stage "imp") train."""


class Spec(BaseModel):
    """Base: immutable, unknown fields refused, canonical JSON and id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def canonical(self) -> dict[str, Any]:
        """The fields that differ from their defaults, as plain JSON types, and the spec's
        `revision` when it is not 0 (nested specs carry their own)."""
        out = self.model_dump(mode="json", exclude_defaults=True)
        for name in out:
            value = getattr(self, name)
            if isinstance(value, Spec):
                out[name] = value.canonical()
        if self.revision():
            out["revision"] = self.revision()
        return out

    def revision(self) -> int:
        """Bumped where a fix changed what a spec computes, so its id changes with it and a
        store never serves a result computed the old way; 0 (no key in the id) elsewhere."""
        return 0

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))

    @cached_property  # a spec is immutable; its id is read thousands of times in a sweep
    def id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False):
        """A copy with `update` applied, without what the original cached (its id, its
        parents): those follow from the fields, which the update changes. (Pydantic copies the
        instance dict, cached properties included, so a copy would keep the original's id.)"""
        copy = super().model_copy(update=update, deep=deep)
        for name in [k for k in copy.__dict__ if k not in type(copy).model_fields]:
            del copy.__dict__[name]
        return copy


def flat_fields(tree: dict, prefix: str = "") -> dict[str, Any]:
    """A nested spec dump as {"dense.train.lr": 0.1, ...}: MLflow params, `--select` keys."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_fields(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _one_of(field: str, value: object, known: tuple[str, ...] | list[str]) -> None:
    if value not in known:
        raise ValueError(f"{field}: unknown value {value!r}; allowed: {', '.join(sorted(known))}")


class DataSpec(Spec):
    """Which dataset, how it is split, and whether training batches are augmented."""

    name: str = "mnist1d"
    """Registry name: mnist1d, digits, mnist, fashion_mnist, cifar10."""
    n_samples: int | None = Field(default=None, gt=0)
    """mnist1d only: total generated samples (80% train, 20% test); None = the standard 5000."""
    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Fraction of the training set carved out (seeded) for validation."""
    split_seed: int = 0
    augment: bool = False
    """CIFAR's random crop + flip, applied on the device to whole batches."""

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        from study.data.registry import DATASETS

        _one_of("data.name", name, list(DATASETS))
        return name

    def info(self):  # -> DatasetInfo (lazy import keeps specs free of torch at import time)
        from study.data.registry import dataset_info

        return dataset_info(self.name, n_samples=self.n_samples)

    def train_size(self) -> int:
        return self.info().train_size - int(self.info().train_size * self.val_fraction)


class ModelSpec(Spec):
    """Architecture family, its width multiplier (the scaling axis) and MLP hidden sizes."""

    name: str = "mlp"
    width: float = Field(default=1.0, gt=0.0, le=64.0)
    """Multiplies every hidden width (neurons, channels) of the family's base architecture."""
    hidden: tuple[int, ...] | None = None
    """MLP only: hidden layer sizes at width 1 (default 300, 100 = LeNet-300-100)."""

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from study.models.registry import MODELS

        _one_of("model.name", name, list(MODELS))
        return name

    @model_validator(mode="after")
    def _hidden_only_for_mlp(self) -> ModelSpec:
        if self.hidden is not None:
            if self.name != "mlp":
                raise ValueError(f"model.hidden: only the mlp takes hidden sizes, "
                                 f"not {self.name!r}")
            if not self.hidden or min(self.hidden) < 1:
                raise ValueError(f"model.hidden: sizes must be positive integers, "
                                 f"got {self.hidden}")
        return self


class TrainSpec(Spec):
    """Optimiser, schedule and budget: one loop serves every arm."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(default=0.1, gt=0.0, le=10.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    """SGD only."""
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0.0)
    schedule: Literal["constant", "step", "cosine"] = "constant"
    milestones: tuple[float, ...] = (0.5, 0.75)
    """Step schedule: fractions of training at which the lr is multiplied by gamma."""
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warmup from 0 to lr over this many steps (Frankle et al.'s fix for deep nets)."""
    batch_size: int = Field(default=60, ge=1)
    steps: int | None = Field(default=None, ge=1)
    epochs: float | None = Field(default=None, gt=0)
    """Budget: exactly one of steps or epochs (an epoch = one pass over the training split)."""
    eval_every: int = Field(default=100, ge=1)
    bn_l1: float = Field(default=0.0, ge=0.0)
    """Network Slimming: L1 penalty on BatchNorm scales during training (needs a BN model)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16: forward pass and loss under bfloat16 autocast, weights and optimizer state in fp32.
    Faster on GPUs with bf16 tensor cores; it changes the numbers, so it is part of the id."""

    @model_validator(mode="after")
    def _budget_and_milestones(self) -> TrainSpec:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("train: give exactly one of steps or epochs as the budget")
        if any(not 0.0 < m < 1.0 for m in self.milestones) or list(self.milestones) != sorted(
            self.milestones
        ):
            raise ValueError(
                f"train.milestones: {list(self.milestones)} must be increasing fractions in (0, 1)"
            )
        if self.optimizer == "adam" and self.nesterov:
            raise ValueError("train.nesterov: only for optimizer 'sgd', not 'adam'")
        return self

    def total_steps(self, train_size: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(self.epochs * train_size / self.batch_size))

    def lr_factor(self, step: int, total: int, warmup: bool = True) -> float:
        """The lr at `step` of a `total`-step run as a fraction of `lr`: linear warmup (unless
        `warmup` is False), then constant / step (milestones as fractions) / cosine decay."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if warmup and self.warmup_steps else 1.0
        progress = step / max(1, total)
        if self.schedule == "step":
            return warm * self.gamma ** sum(progress >= m for m in self.milestones)
        if self.schedule == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm

    def finetune_lr(self, fraction: float) -> float:
        """The fine-tuning lr: the lr this schedule runs at when `fraction` of its training is
        left, held constant (the rule for every schedule, docs/science.md).

        step: Rethinking's rule, the last lr (Liu et al., CIFAR: 160 epochs at 0.1, x0.1 at
        epochs 80 and 120, then 40 epochs at 1e-3: a quarter of the budget is left after the
        last milestone); constant: lr; cosine, which ends at 0 and so has no last lr to keep:
        lr x (1 + cos(π(1 - fraction)))/2, 0.146 x lr for a quarter, where the decay stood
        when as many steps were left as fine-tuning takes.
        """
        total = 10_000
        return self.lr * self.lr_factor(round(total * (1.0 - fraction)), total, warmup=False)


class DenseSpec(Spec):
    """The dense net trained from θ0: shared by every ticket, granularity and arm of a seed."""

    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _bn_l1_needs_bn(self) -> DenseSpec:
        from study.models.registry import has_batchnorm

        if self.train.bn_l1 > 0 and not has_batchnorm(self.model.name):
            raise ValueError(
                f"train.bn_l1: Network Slimming's penalty needs BatchNorm; {self.model.name!r} has "
                "none (use vgg* or resnet*)"
            )
        return self

    def total_steps(self) -> int:
        return self.train.total_steps(self.data.train_size())

    def revision(self) -> int:
        """1: VGG and ResNet take their reference implementations' init (`study.models`), so
        every θ0 of theirs, and everything downstream, changed."""
        return 1 if self.model.name.startswith(("vgg", "resnet")) else 0


class PruneSpec(Spec):
    """How masks are derived round after round: granularity, scope, criterion, rates, schedule,
    and what a round trains after pruning (rewind to θk, or fine-tune the survivors)."""

    granularity: Literal["unstructured", "structured"] = "unstructured"
    scope: Literal["layerwise", "global"] = "layerwise"
    criterion: str = "magnitude"
    """How weights or units are ranked: a name in `study.pruning.registry.CRITERIA` that ranks
    at this granularity."""
    rate: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Fraction of the remaining weights (or units) pruned per round, for fully connected layers."""
    conv_rate: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Per-round rate for conv layers (LTH Conv nets: 0.1-0.15); None = rate."""
    output_rate: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Override for the output layer (LTH: half the rate); None = pruned like the others."""
    rounds: int = Field(default=5, ge=1, le=60)
    schedule: Literal["iterative", "oneshot"] = "iterative"
    """iterative: round r prunes its predecessor's trained net; oneshot: round r prunes the dense
    net directly to round r's sparsity (same sparsity levels, no retraining in between)."""
    rewind_step: int = Field(default=0, ge=0)
    """Survivors return to θk (k = this step of dense training); 0 = θ0 as in LTH. In a
    fine-tune chain, the θk the rewound arms (sign_constant, random_prune, ...) start from on
    its masks."""
    retrain: Literal["rewind", "finetune"] = "rewind"
    """What each round trains once it has pruned. rewind: IMP (LTH), the survivors return to
    θk and train the dense budget (the round is the `lottery` arm). finetune: Han et al.'s
    prune-and-fine-tune loop, the pruned net keeps its trained weights and is fine-tuned by the
    finetune arm's rule, at the dense schedule's final lr for `finetune_fraction` of the dense
    budget (the round is the `finetune` arm); iterative, round r prunes round r-1's fine-tuned
    net; one-shot, round r prunes the dense net straight to round r's sparsity and fine-tunes r
    rounds' budget at once, as long as the r iterative rounds together."""
    finetune_fraction: float = Field(default=FINETUNE_FRACTION, gt=0.0, le=1.0)
    """retrain 'finetune' only: each round's fine-tuning budget as a fraction of dense training
    (part of the plan: every later round's mask depends on it)."""
    hessian: Literal["gauss_newton", "hutchinson", "exact"] = "gauss_newton"
    """obd only: how the Hessian diagonal is estimated. gauss_newton: the diagonal of the
    generalised Gauss-Newton matrix, exact over the classes (positive, deterministic; equals the
    Hessian diagonal for ReLU nets without BatchNorm); hutchinson: E[z * Hz] with Rademacher
    probes (the full Hessian, noisy); exact: one Hessian-vector product per weight (tiny nets)."""
    saliency_batches: int = Field(default=8, ge=1, le=1000)
    """obd, fisher, taylor, apoz: training batches (of the dense batch size, drawn by a seeded
    generator) the saliency is averaged over."""

    @model_validator(mode="after")
    def _criterion_fits_granularity(self) -> PruneSpec:
        from study.pruning.registry import CRITERIA, names_for, names_where

        rule = CRITERIA.get(self.criterion)
        if rule is None or self.granularity not in rule.granularities:
            allowed = names_for(self.granularity)
            other = "structured" if self.granularity == "unstructured" else "unstructured"
            ranks = "whole units" if other == "structured" else "weights"
            hint = (f" ({self.criterion!r} ranks {ranks}: use granularity {other!r})"
                    if rule is not None else "")
            raise ValueError(
                f"prune.criterion: {self.criterion!r} does not work with {self.granularity} "
                f"granularity; allowed: {', '.join(allowed)}{hint}"
            )
        if self.granularity == "structured" and self.output_rate is not None:
            raise ValueError("prune.output_rate: structured pruning never removes output classes")
        # a field no criterion reads would split identical work into several ids: refuse it
        if self.hessian != "gauss_newton" and not rule.reads_hessian:
            raise ValueError(f"prune.hessian: only the {', '.join(names_where('reads_hessian'))} "
                             f"criterion reads it, not {self.criterion!r}; leave it at its "
                             "default")
        if self.saliency_batches != 8 and not rule.data:
            raise ValueError(f"prune.saliency_batches: {self.criterion!r} needs no data; only "
                             f"{', '.join(names_where('data'))} read it")
        if self.finetune_fraction != FINETUNE_FRACTION and self.retrain != "finetune":
            raise ValueError("prune.finetune_fraction: only a fine-tune chain (prune.retrain "
                             "'finetune') reads it; the finetune arm's budget is "
                             "options.finetune_fraction")
        return self

    @property
    def chain_arm(self) -> str:
        """The arm of the chain's own rounds: lottery (IMP) or finetune (a fine-tune chain)."""
        return CHAIN_ARMS[self.retrain]

    def rate_field(self, kind: str) -> str:
        """Which field sets the per-round rate of a layer kind ('linear', 'conv' or 'output').

        It is also the layer's pool under global scope: the layers the plan gives one rate
        field share one threshold (with LTH's Conv-2 rates conv 0.1, fc 0.2, output 0.1 that is
        the conv layers, the fc layers, and the output layer on its own), never layers whose
        rates merely happen to be equal.
        """
        if kind == "output" and self.output_rate is not None:
            return "output_rate"
        if kind == "conv" and self.conv_rate is not None:
            return "conv_rate"
        return "rate"

    def rate_for(self, kind: str) -> float:
        """The per-round rate of a layer kind: 'linear', 'conv' or 'output'."""
        return getattr(self, self.rate_field(kind))

    def revision(self) -> int:
        """1: global scope pools by rate field (it pooled the layers that shared the most
        common rate before), which can change the masks of a plan with more than one field."""
        several = self.conv_rate is not None or self.output_rate is not None
        return 1 if self.scope == "global" and several else 0


class ArmOptions(Spec):
    """Arm settings that only some arms read (defaults follow the papers)."""

    scratch_b_cap: float = Field(default=2.0, ge=1.0)
    """Scratch-B trains dense_steps x FLOPs(dense)/FLOPs(pruned), at most this many times longer."""
    finetune_fraction: float = Field(default=FINETUNE_FRACTION, gt=0.0, le=1.0)
    """Fine-tuning budget as a fraction of dense training (Rethinking: 40 of 160 epochs)."""
    finetune_lr: float | None = Field(default=None, gt=0.0)
    """None = the lr the dense schedule runs at when `finetune_fraction` of it is left
    (`TrainSpec.finetune_lr`; Rethinking: 1e-3 after a 0.1 -> 1e-3 step schedule; a constant lr
    ends where it started; cosine: 0.146 x lr for a quarter)."""
    lr: float | None = Field(default=None, gt=0.0, le=10.0)
    """This arm's own learning rate (`study tune` finds one per arm, so no baseline is starved);
    None = the dense lr (finetune: finetune_lr)."""
    weight_decay: float | None = Field(default=None, ge=0.0)
    """This arm's own weight decay (tuned where the space says so); None = the dense one."""
    # -- at-init masks and sparse training (issue 25; `ARM_OPTION_READERS` says who reads them)
    mask_shuffle: bool = False
    """At-init arms: shuffle the mask within each layer (Frankle et al. 2021's ablation: the
    layer densities kept, which weights survive forgotten)."""
    mask_reinit: bool = False
    """At-init arms: train the survivors from a fresh init instead of the θ0 they were scored
    at (Frankle et al. 2021's other ablation)."""
    init_batches: int = Field(default=1, ge=1, le=100)
    """snip, grasp: training batches (of the dense batch size) θ0 is scored on (SNIP: one)."""
    update_interval: int = Field(default=100, ge=1)
    """set, rigl: ΔT, steps between mask updates (RigL: 100)."""
    drop_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    """set, rigl: α, the share of active weights moved at the first update (RigL: 0.3)."""
    update_end: float = Field(default=0.75, gt=0.0, le=1.0)
    """set, rigl: the fraction of training after which the mask stops moving (RigL: 0.75)."""


class TrialSpec(Spec):
    """One unit of work. Its upstream specs are part of it, so its id names its whole lineage."""

    stage: Stage
    arm: str
    round: int = Field(default=0, ge=0)
    dense: DenseSpec
    prune: PruneSpec | None = None
    options: ArmOptions = ArmOptions()
    noise_seed: int | None = Field(default=None, ge=0)
    """Seed of the SGD noise (batch order, augmentation draws) when it differs from the init
    seed `dense.seed`; None = the init seed. θ0 and the masks never depend on it."""

    @property
    def data_seed(self) -> int:
        """The seed the training loop's batches and augmentation follow."""
        return self.dense.seed if self.noise_seed is None else self.noise_seed

    @model_validator(mode="after")
    def _consistent(self) -> TrialSpec:
        _one_of("arm", self.arm, ARMS)
        self._noise_fits()
        if self.round == 0 and self.arm in STABILITY_ARMS:
            return self._dense_stability()
        if self.stage == "dense":
            if self.arm != "dense" or self.round != 0 or self.prune is not None:
                raise ValueError("stage 'dense' is the dense arm at round 0 with no pruning plan")
            return self
        if self.prune is None:
            raise ValueError(f"stage {self.stage!r}: a pruning plan (prune) is required")
        if not 1 <= self.round <= self.prune.rounds:
            raise ValueError(f"round: {self.round} outside 1..{self.prune.rounds} (prune.rounds)")
        chain = self.prune.chain_arm
        if self.stage == "imp" and self.arm != chain:
            raise ValueError(f"stage 'imp' is a chain's own round: the {chain!r} arm for "
                             f"prune.retrain {self.prune.retrain!r}, not {self.arm!r}")
        if self.stage == "imp" and self.options != ArmOptions():
            raise ValueError("options: a chain's rounds train by the plan alone (its rounds are "
                             "shared by every arm); options are for stage 'arm'")
        if self.stage == "arm" and self.arm == "dense":
            raise ValueError("arm 'dense' belongs to stage 'dense', not 'arm'")
        if self.stage == "arm" and self.arm == "finetune" and chain == "finetune":
            raise ValueError("arm 'finetune' on a fine-tune chain (prune.retrain 'finetune') is "
                             "the chain's own round: use stage 'imp'")
        self._train_small_fits()
        twin = same_as_another(self.arm, self.prune, self.dense)
        if twin is not None:
            raise ValueError(
                f"arm {self.arm!r} on a layerwise structured plan of an MLP trains the pruned "
                f"net's own architecture from the same fresh init as {twin!r}: the two arms "
                f"would be identical; use prune.scope 'global' (the pruned net's widths then "
                f"differ from a uniformly narrower net's) or leave {self.arm!r} out")
        if self.arm == "supermask" and self.prune.granularity == "structured":
            raise ValueError(
                "arms: 'supermask' is Zhou et al.'s weight-level mask (large_final_same_sign), "
                "with no unit-level rule to cite for structured granularity; drop 'supermask' "
                "from arms (arms apply to every plan: give structured plans a space of their "
                "own) or use prune.granularity 'unstructured'"
            )
        from study.pruning.registry import CRITERIA

        if CRITERIA[self.prune.criterion].needs_batchnorm:
            from study.models.registry import has_batchnorm

            if not has_batchnorm(self.dense.model.name):
                raise ValueError(
                    f"prune.criterion: {self.prune.criterion} ranks BatchNorm scales; "
                    f"{self.dense.model.name!r} has no BatchNorm (use l1_filter, or vgg*/resnet*)"
                )
        return self._rewind_within_training()

    def _train_small_fits(self) -> None:
        """At-init and sparse-training arms: unstructured only, and their options only on them."""
        for option, readers in ARM_OPTION_READERS.items():
            if getattr(self.options, option) != ArmOptions.model_fields[option].default \
                    and self.arm not in readers:
                raise ValueError(f"options.{option}: only the {', '.join(readers)} arm(s) read "
                                 f"it, not {self.arm!r}; leave it at its default")
        if self.arm in TRAIN_SMALL_ARMS and self.prune.granularity == "structured":
            raise ValueError(f"arms: {self.arm!r} masks single weights (unstructured); drop it "
                             "from a structured plan's arms or use prune.granularity "
                             "'unstructured'")

    def _rewind_within_training(self) -> TrialSpec:
        total = self.dense.total_steps()
        if self.prune.rewind_step >= total:
            raise ValueError(
                f"prune.rewind_step: {self.prune.rewind_step} is past the end of training "
                f"({total} steps); use a step in 0..{total - 1}"
            )
        return self

    def _noise_fits(self) -> None:
        if self.noise_seed is not None and self.noise_seed == self.dense.seed:
            raise ValueError(f"noise_seed: {self.noise_seed} is the init seed (dense.seed); "
                             "leave it unset")
        if self.arm == "stability" and self.noise_seed is None:
            raise ValueError("noise_seed: a stability copy needs its own noise seed "
                             "(see study.seeds.copy_noise)")
        if self.arm == "interpolation" and self.noise_seed is not None:
            raise ValueError("noise_seed: the interpolation trains nothing; leave it unset "
                             "(its copies carry the noise seeds)")
        if self.arm in STABILITY_ARMS and self.stage != "arm":
            raise ValueError(f"arm {self.arm!r} belongs to stage 'arm', not {self.stage!r}")

    def _dense_stability(self) -> TrialSpec:
        """Round 0: the dense net at θk, which reads only the rewind step of a plan (one
        trial for every plan that shares k, not one per granularity)."""
        if self.prune is None or self.prune != PruneSpec(rewind_step=self.prune.rewind_step):
            raise ValueError("prune: round 0 (the dense net's stability) reads only "
                             "prune.rewind_step; give prune={'rewind_step': k} and nothing else")
        return self._rewind_within_training()

    @property
    def ticket(self) -> str:
        """The id of the chain (dense + pruning plan) this trial belongs to."""
        if self.prune is None:
            return self.id
        return TicketSpec(dense=self.dense, prune=self.prune).id

    @property
    def source_round(self) -> int:
        """The round whose trained net this round's mask was computed from: round-1 in an
        iterative chain (its retrained or fine-tuned net), 0 (the dense net) at round 1 and in
        a one-shot chain."""
        iterative = self.prune is not None and self.prune.schedule == "iterative"
        return self.round - 1 if iterative and self.round > 1 else 0

    @property
    def trains_with_bn_l1(self) -> bool:
        """Network Slimming's BN-L1 penalty (`train.bn_l1`) trains only the nets whose BN scales
        a round ranks, as in Liu et al.'s code (`-sr --s 1e-4` on the baseline; fine-tune,
        Scratch-E and Scratch-B run without it): the dense net, and the IMP rounds of an
        iterative chain, each pruned by the next (Network Slimming's multi-pass scheme retrains
        every pass with the penalty); in a fine-tune chain, each fine-tuning pass. One-shot
        rounds and every arm train without it; in an iterative chain the chain's round so
        carries a penalty its controls do not."""
        if self.stage == "imp":
            return self.prune.schedule == "iterative"
        return self.stage == "dense"

    def revision(self) -> int:
        """1 where the fair-arms fixes changed what a trial computes: an arm or one-shot round
        that trained with bn_l1 (now without); finetune from round r-1's trained net (was the
        dense θT) or at the dense schedule's final lr (was dense lr x 0.01). 2: a fine-tuning
        (arm or fine-tune chain round) at the default lr whose lr changed when the rule became
        "the lr when the fine-tuning's share of the schedule is left" (`finetune_lr`): under
        cosine it was lr x 0.01, under a step schedule the last lr."""
        if self.stage == "dense":
            return 0
        train = self.dense.train
        if self.arm == "finetune" and self._finetune_rule_changed():
            return 2
        if train.bn_l1 > 0 and not self.trains_with_bn_l1 and self.arm not in UNTRAINED:
            return 1
        if self.arm == "finetune" and self.stage == "arm":
            default_lr = self.options.lr is None and self.options.finetune_lr is None
            if self.source_round > 0 or (default_lr and _last_lr(train) != train.lr * 0.01):
                return 1
        return 0

    def _finetune_rule_changed(self) -> bool:
        """Whether the default fine-tuning lr differs from the last-lr rule it replaced."""
        if self.options.lr is not None or self.options.finetune_lr is not None:
            return False
        train = self.dense.train
        chain = self.stage == "imp"
        fraction = self.prune.finetune_fraction if chain else self.options.finetune_fraction
        return not math.isclose(train.finetune_lr(fraction), _last_lr(train))

    def parents(self) -> list[TrialSpec]:
        """The trials whose artifacts this one reads directly (dense first, then the chain's
        rounds: an arm's own round first; finetune also reads the round its mask was computed
        from)."""
        return list(self.parent_specs)

    @cached_property  # the scheduler asks every pending trial at every step of a sweep
    def parent_specs(self) -> tuple[TrialSpec, ...]:
        return tuple(self._parents())

    def _parents(self) -> list[TrialSpec]:
        if self.stage == "dense":
            return []
        if self.arm == "interpolation":  # the two copies whose final weights it joins
            return [TrialSpec(stage="arm", arm="stability", round=self.round, dense=self.dense,
                              prune=self.prune, noise_seed=s)
                    for s in seeds.copy_noise(self.dense.seed)]
        dense = TrialSpec(stage="dense", arm="dense", dense=self.dense)
        if self.round == 0:  # a stability copy of the dense net at θk
            return [dense]
        if self.stage == "imp":
            rounds = [self.source_round] if self.source_round else []
        else:
            rounds = [self.round]
            if self.arm in SOURCE_ARMS and self.source_round:
                rounds.append(self.source_round)
        return [dense, *(TrialSpec(stage="imp", arm=self.prune.chain_arm, round=r,
                                   dense=self.dense, prune=self.prune) for r in rounds)]


def _last_lr(train: TrainSpec) -> float:
    """The fine-tuning lr of revisions 0-1 (`TrialSpec.revision`), to the bit: the step
    schedule's last lr, 1% of a cosine's peak, a constant lr itself."""
    if train.schedule == "step":
        return train.lr * train.gamma ** len(train.milestones)
    return train.lr * 0.01 if train.schedule == "cosine" else train.lr


def same_as_another(arm: str, prune: PruneSpec, dense: DenseSpec) -> str | None:
    """The arm whose trials `arm`'s would repeat on this plan, if any (else None).

    small_dense is a uniformly narrower net of the family, one width multiplier for every
    hidden layer; layerwise structured pruning of an MLP removes the same share of every
    hidden layer (each ranks on `rate`), so its pruned net is that same narrower net, and
    small_dense would train reinit's net from reinit's fresh init (small_dense_b: scratch_b's).
    """
    twin = REGISTRY[arm].twin
    uniform = (prune.granularity == "structured" and prune.scope == "layerwise"
               and dense.model.name == "mlp")
    return twin if twin is not None and uniform else None


class TicketSpec(Spec):
    """Identity of a chain (IMP or fine-tune): its dense net and its pruning plan."""

    dense: DenseSpec
    prune: PruneSpec
