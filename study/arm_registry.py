"""The arms, one entry each: every fact the library, the packing and the analysis key by arm.

Plain data (no torch, no pydantic), so that `study.specs` validates against it, `study.arms`
finds each arm's function by it, `study.pack` predicts packs from it and `analysis` (through
`study.contract`) colours, labels and compares by it. What an arm *does* is its function in
`study/arms.py` (decorated `@arm`); what it *is* is its entry here. Adding an arm: its function,
its entry, its test (`tests/test_arms.py` checks that the two lists agree and that every entry
has a description, a colour, a label and a comparison rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["reference", "prune_big", "control", "untrained", "stability", "small_dense",
                 "at_init", "sparse"]
"""Which question an arm answers. reference: the dense net. prune_big: trains the big net first
and keeps what pruning it found (mask and weights). control: the ticket's mask or
architecture without the ticket's weights (Rethinking's and LTH's controls). untrained: the
ticket evaluated without training (Zhou et al., Gaier & Ha). stability: Frankle et al. 2020's
instability analysis. small_dense, at_init, sparse: train small, needing nothing from the big
net (a narrower dense net, a mask chosen at θ0, sparse training whose mask moves)."""
Budget = Literal["dense", "rewound", "flops_matched", "finetune", "none"]
"""How long an arm trains (`study.arms.steps`). dense: the dense budget T from step 0.
rewound: from the rewind step k to T (θk's lineage). flops_matched: Scratch-B's, T x
FLOPs(dense)/FLOPs(this net), capped (`options.scratch_b_cap`). finetune: Rethinking's short
fine-tuning (`arms.finetune_steps`). none: evaluated, never trained."""
Pack = Literal["shape", "mask_widths", "mask_budget", "alone"]
"""What `study.pack.pack_key` predicts a pack from, before any artifact exists. shape: the
dense net's shape, budget and loop settings (structured plans add the plan and round, whose
mask sets the widths). mask_widths: also the plan and round, the net's widths follow from the
round's mask. mask_budget: also the arm, plan and round, its budget follows from its mask's
FLOPs. alone: a pack of its own (evaluated, never trained). A wrong prediction costs speed,
never correctness: `study.pack.run_pack` regroups by the set-up nets' exact shapes."""
SHADE = 0.6
"""The darker shade of a colour: an arm's Scratch-B budget, or its other retraining."""


@dataclass(frozen=True)
class Arm:
    name: str
    description: str
    """What the arm is, in the papers' words: the first paragraph of its function's docstring
    (`study.arms.arm` puts it there) and of its runs' descriptions."""
    label: str
    """Its name in figures (docs/science.md's words)."""
    colour: tuple[str, int]
    """(seaborn palette, index): its colour in every figure (`analysis.style.COLORS`)."""
    judged: str
    """The comparison rule in words: how the analysis judges the arm, and where."""
    family: Family
    budget: Budget = "dense"
    pack: Pack = "shape"
    shade: float = 1.0
    """Multiplies `colour`'s RGB (SHADE: a Scratch-B budget's darker shade of its arm)."""
    baseline_for: tuple[str, ...] = ()
    """The arms tested against this one: A − this arm per cell, paired by seed, Holm
    (`analysis.stats.COMPARISONS`, the verdict table)."""
    tested_against: tuple[str, ...] = ()
    """The arms this one is tested against (this arm − B), after every `baseline_for` pair;
    "+variant" names this arm's own ablation (`study.contract.VARIANT`)."""
    reads_source: bool = False
    """Retrains the trained net the round's mask was computed from (`TrialContext.source`),
    so it also reads that round (r-1 in an iterative chain)."""
    options: tuple[str, ...] = ()
    """`ArmOptions` fields only some arms read, that this one reads (a space's options reach
    only their readers; another arm's trial refuses them)."""
    twin: str | None = None
    """The arm whose trials this one's would repeat on a layerwise structured plan of an MLP
    (`study.specs.same_as_another`): there it is left out, and refused."""


_AT_INIT_OPTIONS = ("mask_shuffle", "mask_reinit")
_SPARSE_OPTIONS = ("update_interval", "drop_fraction", "update_end")
_TRAIN_SMALL_JUDGED = ("lottery − this arm per cell (verdicts; the Answer says where it reaches "
                       "IMP's accuracy: analysis.train_small); at equal compute against "
                       "prune-big (equal_compute); its joint scaling law (scaling_laws)")
_RANDOM_MASKS = ("random_erk", "random_prune", "+shuffled")

_ENTRIES = (
    Arm("dense",
        "The big net trained from its seeded θ0 for the dense budget T: the reference every arm "
        "is compared to, and the source of round 1's mask.",
        "dense (unpruned)", ("colorblind", 7), family="reference",
        judged="no paired test: the reference line of every panel, Rethinking's unpruned "
               "column and the dense scaling law"),
    Arm("lottery",
        "IMP round r: prune the source net, rewind survivors to θk and train (LTH). As an arm "
        '(stage "arm", e.g. when tuning its lr) it retrains the round\'s existing ticket.',
        "lottery (rewind to θ0/θk)", ("colorblind", 1), family="prune_big", budget="rewound",
        judged="the arm under test: A of every `lottery vs X` in the verdict table (its "
               "baselines' `baseline_for`), the effect map, the width trend and the Answer"),
    Arm("reinit",
        "Scratch-E (Liu et al. 2019; LTH's random-reinitialization control): the round's pruned "
        "architecture from a fresh random init, trained for the dense budget T.",
        "reinit (Scratch-E)", ("colorblind", 0), family="control", baseline_for=("lottery",),
        judged="lottery − reinit, the lottery effect: verdicts, pooled, width_trend, best_lr, "
               "budget_check, the effect map; Rethinking's Scratch-E column"),
    Arm("scratch_b",
        "Scratch-B (Liu et al. 2019): the pruned architecture from a fresh init, trained for the "
        "dense budget x FLOPs(dense)/FLOPs(pruned), capped.",
        "Scratch-B", ("colorblind", 2), family="control", budget="flops_matched",
        pack="mask_budget", baseline_for=("lottery", "finetune"),
        judged="lottery − scratch_b and finetune − scratch_b (verdicts); Rethinking's Scratch-B "
               "column"),
    Arm("finetune",
        "Rethinking's fine-tuning: a trained net, pruned, trained briefly at the schedule's end "
        "lr.",
        "fine-tuned", ("colorblind", 3), family="prune_big", budget="finetune",
        reads_source=True,
        judged="A of finetune − scratch_b and finetune − small_dense (verdicts); Rethinking's "
               "fine-tuned column; prune-big at equal compute (equal_compute)"),
    Arm("lr_rewind",
        "Learning-rate rewinding (Renda, Frankle & Carbin 2020): the trained net the mask was "
        "computed from, pruned, retrained with the dense schedule from its start for the dense "
        "budget T: the weights keep their trained values, only the lr schedule is rewound.",
        "lr rewinding", ("colorblind", 3), shade=SHADE, family="prune_big", reads_source=True,
        judged="no paired test: prune-big at equal compute (equal_compute, the compute figure) "
               "and drawn beside finetune"),
    Arm("sign_constant",
        "Zhou et al.: survivors set to ±α with θk's signs, α = the std of that layer's θ0.",
        "sign constant", ("colorblind", 6), family="control", budget="rewound",
        judged="no paired test: drawn beside the ticket (accuracy vs remaining)"),
    Arm("random_prune",
        "θk on a random mask with the same number of survivors per layer (LTH's control).",
        "random prune", ("colorblind", 9), family="control", budget="rewound",
        judged="B of each at-init criterion − random_prune (IMP's layer densities; verdicts); "
               "drawn beside the ticket"),
    Arm("small_dense",
        "Train small: a narrower dense net of the family with as many weights as the ticket, "
        "trained for the dense budget (Scratch-E's).",
        "small dense", ("colorblind", 4), family="small_dense", pack="mask_widths",
        baseline_for=("lottery", "finetune"), twin="reinit",
        judged="lottery − small_dense and finetune − small_dense at equal nonzero weights "
               "(verdicts, crossing, the dense law); train-small at equal compute"),
    Arm("small_dense_b",
        "small_dense with Scratch-B's budget: the dense steps x FLOPs(dense)/FLOPs(small net), "
        'same cap, so "train small" gets both of Rethinking\'s budgets.',
        "small dense (Scratch-B budget)", ("colorblind", 4), shade=SHADE, family="small_dense",
        budget="flops_matched", twin="scratch_b",
        # pack "shape" (as before the registry): its narrow widths and its budget are found
        # only when it is set up, and `run_pack` regroups it then
        judged="no paired test: train-small at equal compute (equal_compute, the compute "
               "figure)"),
    Arm("supermask",
        "θk on the large_final_same_sign mask, evaluated without any training (Zhou et al.). "
        "Weight-level only: `TrialSpec` refuses it with structured granularity.",
        "supermask (untrained)", ("colorblind", 5), family="untrained", budget="none",
        pack="alone", judged="no paired test: drawn beside the trained arms"),
    Arm("weight_agnostic",
        "Gaier & Ha on a ticket: every survivor one shared value ±w·α per layer, no training.",
        "weight agnostic", ("colorblind", 8), family="untrained", budget="none", pack="alone",
        judged="no paired test: drawn beside the trained arms"),
    Arm("stability",
        "One copy of Frankle et al.'s instability analysis: θk (the dense net's at round 0, else "
        "the round's subnetwork on its mask) trained from step k to the dense budget under the "
        "trial's own noise seed; its final weights are kept for the interpolation.",
        "stability", ("dark", 6), family="stability", budget="rewound",
        judged="through its interpolation: the error barrier (analysis.stability)"),
    Arm("interpolation",
        "The error on the line between the two copies' final weights (`study.interpolate`), as "
        "flat metrics; the net left for the run's own evaluation is the midpoint.",
        "interpolation", ("dark", 7), family="stability", budget="none", pack="alone",
        judged="its error barrier against k and beside the lottery − reinit gap of its round "
               "(stability_barriers, stability_vs_lottery)"),
    # -- train small without the big net (issue 25): masks at initialisation, sparse training
    Arm("snip",
        "SNIP (Lee et al. 2019): θ0 on the weights of highest |∂L/∂w ⊙ w| at θ0 (one shot, all "
        "layers ranked together), as many as the round's ticket keeps, trained from step 0.",
        "SNIP (at init)", ("dark", 0), family="at_init", baseline_for=("lottery",),
        tested_against=_RANDOM_MASKS, options=(*_AT_INIT_OPTIONS, "init_batches"),
        judged=_TRAIN_SMALL_JUDGED + "; snip − each random mask (Frankle et al. 2021)"),
    Arm("grasp",
        "GraSP (Wang et al. 2020): θ0 on the weights of lowest -w ⊙ Hg at θ0 (the paper prunes "
        "the highest), as many as the round's ticket keeps, trained from step 0.",
        "GraSP (at init)", ("dark", 1), family="at_init", baseline_for=("lottery",),
        tested_against=_RANDOM_MASKS, options=(*_AT_INIT_OPTIONS, "init_batches"),
        judged=_TRAIN_SMALL_JUDGED + "; grasp − each random mask (Frankle et al. 2021)"),
    Arm("synflow",
        "SynFlow (Tanaka et al. 2020): θ0 on the mask 100 data-free iterations of synaptic-flow "
        "pruning choose, as many weights as the round's ticket keeps, trained from step 0.",
        "SynFlow (at init)", ("dark", 2), family="at_init", baseline_for=("lottery",),
        tested_against=_RANDOM_MASKS, options=_AT_INIT_OPTIONS,
        judged=_TRAIN_SMALL_JUDGED + "; synflow − each random mask (Frankle et al. 2021)"),
    Arm("random_erk",
        "θ0 on a random mask with Erdős–Rényi-Kernel layer densities (Evci et al. 2020), as many "
        "weights as the round's ticket keeps, trained from step 0 (set and rigl start from it).",
        "random ERK (at init)", ("dark", 3), family="at_init", baseline_for=("lottery",),
        options=_AT_INIT_OPTIONS,
        judged=_TRAIN_SMALL_JUDGED + "; B of each at-init criterion − random_erk"),
    Arm("set",
        "SET (Mocanu et al. 2018): sparse from scratch at the ticket's weight count (ERK layer "
        "densities), dropping the smallest weights and regrowing as many at random every ΔT "
        "steps.",
        "SET (sparse from scratch)", ("dark", 4), family="sparse", baseline_for=("lottery",),
        options=_SPARSE_OPTIONS, judged=_TRAIN_SMALL_JUDGED),
    Arm("rigl",
        "RigL (Evci et al. 2020): sparse from scratch at the ticket's weight count (ERK layer "
        "densities), dropping the smallest weights and growing those of largest gradient every "
        "ΔT steps.",
        "RigL (sparse from scratch)", ("dark", 5), family="sparse", baseline_for=("lottery",),
        options=_SPARSE_OPTIONS, judged=_TRAIN_SMALL_JUDGED),
    Arm("set_b",
        "SET with Scratch-B's budget: dense steps x FLOPs(dense)/FLOPs(sparse net), capped.",
        "SET (Scratch-B budget)", ("dark", 4), shade=SHADE, family="sparse",
        budget="flops_matched", pack="mask_budget", baseline_for=("lottery",),
        options=_SPARSE_OPTIONS, judged=_TRAIN_SMALL_JUDGED),
    Arm("rigl_b",
        "RigL with Scratch-B's budget: dense steps x FLOPs(dense)/FLOPs(sparse net), capped "
        "(RigL's own best results train 5x longer).",
        "RigL (Scratch-B budget)", ("dark", 5), shade=SHADE, family="sparse",
        budget="flops_matched", pack="mask_budget", baseline_for=("lottery",),
        options=_SPARSE_OPTIONS, judged=_TRAIN_SMALL_JUDGED),
)

REGISTRY: dict[str, Arm] = {a.name: a for a in _ENTRIES}
"""Every arm by name, in the order tables, figures and errors list them."""


def arms_where(**facts) -> tuple[str, ...]:
    """The arms whose entries have these values, in registry order: `arms_where(budget="none")`;
    a tuple of values matches any of them: `arms_where(family=("at_init", "sparse"))`."""
    def fits(entry: Arm) -> bool:
        return all(getattr(entry, k) in (v if isinstance(v, tuple) else (v,))
                   for k, v in facts.items())
    return tuple(name for name, entry in REGISTRY.items() if fits(entry))


def comparisons() -> list[tuple[str, str]]:
    """The paired tests (A, B), A − B per cell: every arm's `baseline_for` pairs in registry
    order, then every arm's `tested_against` pairs (the verdict table's row order)."""
    pairs = [(a, name) for name, entry in REGISTRY.items() for a in entry.baseline_for]
    return pairs + [(name, name + b if b.startswith("+") else b)
                    for name, entry in REGISTRY.items() for b in entry.tested_against]


def option_readers() -> dict[str, tuple[str, ...]]:
    """{`ArmOptions` field: the arms that read it} for the options only some arms read."""
    readers: dict[str, tuple[str, ...]] = {}
    for name, entry in REGISTRY.items():
        for option in entry.options:
            readers[option] = (*readers.get(option, ()), name)
    return readers


ARMS = tuple(REGISTRY)
AT_INIT_ARMS = arms_where(family="at_init")
"""Masks chosen at θ0 (`study.pruning.at_init`), trained from θ0 at each IMP round's count."""
SPARSE_ARMS = arms_where(family="sparse")
"""Sparse training from scratch (`study.pruning.dynamic`): an ERK mask that moves in training;
`_b`: Scratch-B's budget."""
TRAIN_SMALL_ARMS = (*AT_INIT_ARMS, *SPARSE_ARMS)
"""The nets trained sparse from the start: at-init masks and sparse training."""
TRAIN_SMALL = arms_where(family=("small_dense", "at_init", "sparse"))
"""Arms that need nothing from the big net: their size follows from the plan, not a trained net
(the at-init and sparse-training arms read only the round's survivor count)."""
PRUNE_BIG = arms_where(family="prune_big")
"""Arms that train the big net first and keep what pruning it found (mask and weights)."""
STABILITY_ARMS = arms_where(family="stability")
UNTRAINED = arms_where(budget="none")
"""Arms evaluated on their mask without any training."""
SOURCE_ARMS = arms_where(reads_source=True)
