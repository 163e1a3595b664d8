"""Arms on real MNIST-1D: where each one's weights start, on which mask, with which budget."""

from __future__ import annotations

import math

import pytest
import torch

from study.arms import ARM_SETUPS
from study.context import TrialContext
from study.models import count
from study.plan import budget
from study.pruning import prune_weights
from study.specs import (
    ARMS,
    STABILITY_ARMS,
    TRAIN_SMALL_ARMS,
    ArmOptions,
    DataSpec,
    DenseSpec,
    ModelSpec,
    PruneSpec,
    TrainSpec,
    TrialSpec,
    same_as_another,
)
from study.trial import run_trial

DENSE = DenseSpec(model=ModelSpec(name="mlp", hidden=(32, 32)),
                  train=TrainSpec(lr=0.05, batch_size=100, steps=60, eval_every=30), seed=4)
PLANS = {
    "unstructured": PruneSpec(rate=0.5, output_rate=0.25, rounds=2),
    "structured": PruneSpec(granularity="structured", criterion="l1_filter", rate=0.5, rounds=2),
    "rewound": PruneSpec(rate=0.5, rounds=2, rewind_step=20),
    "oneshot": PruneSpec(rate=0.5, output_rate=0.25, rounds=2, schedule="oneshot"),
}


class MemoryStore:
    """Upstream artifacts by trial id: the tracking store's role, in memory."""

    def __init__(self):
        self.artifacts = {}

    def fetch(self, spec, name):
        return self.artifacts[spec.id][name]

    def run(self, spec):
        record = run_trial(spec, self.fetch)
        self.artifacts[spec.id] = record.artifacts
        return record


@pytest.fixture(scope="module")
def chains():
    """For each plan: a store holding the dense run and IMP rounds 1 and 2."""
    out = {}
    for key, plan in PLANS.items():
        store = MemoryStore()
        store.run(TrialSpec(stage="dense", arm="dense", dense=DENSE))
        for r in (1, 2):
            store.run(TrialSpec(stage="imp", arm="lottery", round=r, dense=DENSE, prune=plan))
        out[key] = store
    return out


def setup_of(chains, key, arm, round_=2):
    spec = TrialSpec(stage="arm" if arm != "lottery" else "imp", arm=arm, round=round_,
                     dense=DENSE, prune=PLANS[key])
    ctx = TrialContext(spec, chains[key].fetch)
    return ARM_SETUPS[arm](ctx), ctx


def _imp(round_, key="unstructured"):
    return TrialSpec(stage="imp", arm="lottery", round=round_, dense=DENSE, prune=PLANS[key])


def test_lottery_starts_from_exactly_theta0_on_its_mask(chains):
    setup, ctx = setup_of(chains, "unstructured", "lottery")
    theta0 = ctx.fetch_dense("init.pt")
    mask = setup.masks
    assert torch.equal(mask["layers.0.weight"], chains["unstructured"].fetch(_imp(2), "mask.pt")
                       ["layers.0.weight"])
    model_state = setup.model.state_dict()
    for name, value in theta0.items():
        assert torch.equal(model_state[name], value), name  # masked when training starts
    assert setup.start_step == 0


def test_lottery_rewinds_to_theta_k_and_continues_from_k(chains):
    setup, ctx = setup_of(chains, "rewound", "lottery", round_=1)
    theta0 = ctx.fetch_dense("init.pt")
    assert setup.start_step == 20
    assert not torch.equal(setup.model.state_dict()["layers.0.weight"], theta0["layers.0.weight"])


def test_reinit_starts_elsewhere_on_the_same_mask(chains):
    lottery, ctx = setup_of(chains, "unstructured", "lottery")
    reinit, _ = setup_of(chains, "unstructured", "reinit")
    for name in lottery.masks:
        assert torch.equal(reinit.masks[name], lottery.masks[name])
        assert not torch.equal(reinit.model.state_dict()[name], lottery.model.state_dict()[name])


def test_imp_masks_are_nested_and_follow_the_rates(chains):
    store = chains["unstructured"]
    m1, m2 = store.fetch(_imp(1), "mask.pt"), store.fetch(_imp(2), "mask.pt")
    for name in m1:
        assert not (m2[name] & ~m1[name]).any()
    out = "layers.2.weight"
    assert m2[out].float().mean() == pytest.approx(0.75**2, abs=0.02)
    assert m2["layers.0.weight"].float().mean() == pytest.approx(0.25, abs=0.02)


def test_sign_constant_keeps_signs_at_one_magnitude_per_layer(chains):
    setup, ctx = setup_of(chains, "unstructured", "sign_constant")
    theta0 = ctx.fetch_dense("init.pt")
    w = setup.model.state_dict()["layers.0.weight"]
    alpha = theta0["layers.0.weight"].std()
    assert torch.allclose(w.abs(), alpha.expand_as(w))
    assert torch.equal(torch.sign(w), torch.sign(theta0["layers.0.weight"]))


def test_random_prune_keeps_per_layer_counts_not_positions(chains):
    lottery, _ = setup_of(chains, "unstructured", "lottery")
    random, _ = setup_of(chains, "unstructured", "random_prune")
    for name, mask in lottery.masks.items():
        assert int(random.masks[name].sum()) == int(mask.sum())
    assert not torch.equal(random.masks["layers.0.weight"], lottery.masks["layers.0.weight"])


def test_scratch_b_budget_uses_the_pruned_flops_and_its_cap(chains):
    setup, ctx = setup_of(chains, "unstructured", "scratch_b")
    pruned = count(setup.model, setup.masks).nonzero_flops
    expected = min(2.0, ctx.dense_counts.flops / pruned)
    assert expected > 1.0  # the Rethinking bug would give exactly 1 (Scratch-B = Scratch-E)
    assert setup.total_steps == round(DENSE.total_steps() * expected)


def test_finetune_fine_tunes_the_trained_net_its_mask_was_computed_from(chains):
    """Rethinking (Liu et al. 2019): fine-tuning trains "the pruned model", i.e. the trained
    net that was pruned, so at IMP round r it is round r-1's trained net (the dense θT at
    round 1 and in a one-shot chain) on round r's mask; finetune, reinit and scratch_b then
    share that mask, and the mask really was computed from those weights."""
    store = chains["unstructured"]
    setup, ctx = setup_of(chains, "unstructured", "finetune", round_=2)
    source = store.fetch(_imp(1), "final.pt")  # round 1's trained ticket, not the dense θT
    mask = store.fetch(_imp(2), "mask.pt")
    state = setup.model.state_dict()
    for name in mask:
        assert torch.equal(setup.masks[name], mask[name])
        assert torch.equal(state[name][mask[name]], source[name][mask[name]]), name
    assert not torch.equal(state["layers.1.weight"], ctx.fetch_dense("final.pt")["layers.1.weight"])
    plan = PLANS["unstructured"]
    recomputed = prune_weights(plan, 2, ctx.big(source), ctx.big(ctx.fetch_dense("init.pt")),
                               store.fetch(_imp(1), "mask.pt"), torch.Generator())
    assert all(torch.equal(recomputed[n], mask[n]) for n in mask)  # magnitude: gen unused
    for arm in ("reinit", "scratch_b"):
        other, _ = setup_of(chains, "unstructured", arm, round_=2)
        assert all(torch.equal(other.masks[n], mask[n]) for n in mask), arm
    spec = TrialSpec(stage="arm", arm="finetune", round=2, dense=DENSE, prune=plan)
    assert [(p.stage, p.round) for p in spec.parents()] == [("dense", 0), ("imp", 2), ("imp", 1)]
    for key, round_ in (("unstructured", 1), ("oneshot", 2)):  # the dense θT is the source
        setup, ctx = setup_of(chains, key, "finetune", round_=round_)
        final = ctx.fetch_dense("final.pt")
        keep = setup.masks["layers.1.weight"]
        assert torch.equal(setup.model.state_dict()["layers.1.weight"][keep],
                           final["layers.1.weight"][keep]), key


def test_structured_finetune_shrinks_the_previous_rounds_trained_net(chains):
    """The same rule for whole units: round 2 fine-tunes round 1's trained small net with the
    units round 2 removed cut out (no weight comes from the dense θT)."""
    store = chains["structured"]
    setup, _ = setup_of(chains, "structured", "finetune", round_=2)
    m1, m2 = store.fetch(_imp(1, "structured"), "mask.pt"), store.fetch(_imp(2, "structured"),
                                                                         "mask.pt")
    source = store.fetch(_imp(1, "structured"), "final.pt")
    keep = m2["layers.0"][m1["layers.0"]]  # round 2's units in round 1's small net
    assert setup.masks is None and setup.model.widths == [8, 8]
    torch.testing.assert_close(setup.model.state_dict()["layers.0.weight"],
                               source["layers.0.weight"][keep], rtol=0, atol=0)


@pytest.mark.parametrize("update,expected", [
    ({}, 0.05),  # a constant lr ends where it started: the starved 5e-4 is gone
    ({"schedule": "step"}, 0.05 * 0.1**2),  # Rethinking's 0.1 -> 1e-3
    ({"schedule": "step", "milestones": (0.5,), "gamma": 0.2}, 0.05 * 0.2),
    ({"schedule": "step", "milestones": (0.5, 0.8)}, 0.05 * 0.1),  # 0.8: after the tail starts
    ({"schedule": "cosine"}, 0.05 * (1 + math.cos(math.pi * 0.75)) / 2),  # not 0.05 x 0.01
    ({"schedule": "cosine", "warmup_steps": 10}, 0.05 * (1 + math.cos(math.pi * 0.75)) / 2),
])
def test_finetune_lr_is_the_schedules_lr_when_the_finetuning_share_is_left(update, expected):
    """Liu et al. fine-tune at the last lr of the dense schedule (CIFAR: 160 epochs at 0.1, x0.1
    at epochs 80 and 120, then 40 epochs at 1e-3), for 40/160 of the budget, at a constant lr:
    the lr the schedule runs at when a quarter of it is left. Cosine has no last lr (it ends
    at 0; 1% of the peak starved every fine-tuning), so it takes that same point of the curve:
    0.146 x lr; warmup, long over by then, plays no part."""
    dense = DENSE.model_copy(update={"train": DENSE.train.model_copy(update=update)})
    spec = TrialSpec(stage="arm", arm="finetune", round=1, dense=dense,
                     prune=PLANS["unstructured"])
    untrained = TrialContext(spec, lambda *_: None).big_template

    def fetch(parent, name):  # a round-1 finetune reads the dense θT and its round's mask
        if name == "mask.pt":
            return {n: torch.ones_like(p, dtype=torch.bool)
                    for n, p in untrained.named_parameters() if n in untrained.prunable()}
        return untrained.state_dict()

    setup = ARM_SETUPS["finetune"](TrialContext(spec, fetch))
    assert setup.train.lr == pytest.approx(expected)
    assert (setup.train.schedule, setup.train.warmup_steps) == ("constant", 0)
    assert setup.total_steps == round(DENSE.total_steps() * 0.25)
    own = spec.model_copy(update={"options": ArmOptions(finetune_lr=3e-3)})
    assert ARM_SETUPS["finetune"](TrialContext(own, fetch)).train.lr == 3e-3


def test_small_dense_matches_the_tickets_weight_count(chains):
    setup, ctx = setup_of(chains, "unstructured", "small_dense")
    lottery, _ = setup_of(chains, "unstructured", "lottery")
    target = count(lottery.model, lottery.masks).nonzero_weights
    assert setup.masks is None
    assert abs(count(setup.model).total_weights - target) / target < 0.05
    assert setup.metrics["match_error"] == pytest.approx(
        (count(setup.model).total_weights - target) / target)


def test_structured_arms_train_a_physically_smaller_net(chains):
    for arm in ("lottery", "reinit", "scratch_b", "finetune", "random_prune"):
        setup, ctx = setup_of(chains, "structured", arm)
        assert setup.masks is None, arm
        assert count(setup.model).total_params < ctx.dense_counts.total_params, arm
    lottery, ctx = setup_of(chains, "structured", "lottery")
    assert lottery.model.widths == [8, 8]  # 32 -> 16 -> 8 units per hidden layer


def test_supermask_is_not_trained_and_is_evaluated_on_its_mask(chains):
    spec = TrialSpec(stage="arm", arm="supermask", round=2, dense=DENSE,
                     prune=PLANS["unstructured"])
    record = run_trial(spec, chains["unstructured"].fetch)
    assert record.metrics["train_steps"] == 0 and len(record.curves) == 1
    supermask = chains["unstructured"].fetch(_imp(2), "supermask.pt")
    kept = sum(int(m.sum()) for m in supermask.values())
    assert record.metrics["nonzero_weights"] == kept < record.metrics["total_weights"]
    setup, _ = setup_of(chains, "unstructured", "supermask")
    from study.train import evaluate_only

    evaluate_only(setup.model, TrialContext(spec, chains["unstructured"].fetch).data,
                  setup.masks)
    weights = setup.model.state_dict()["layers.0.weight"]
    assert (weights[~supermask["layers.0.weight"]] == 0).all()


def test_same_spec_and_seed_reproduce_the_same_metrics(chains):
    spec = TrialSpec(stage="arm", arm="reinit", round=1, dense=DENSE, prune=PLANS["unstructured"])
    a, b = (run_trial(spec, chains["unstructured"].fetch) for _ in range(2))
    assert a.curves == b.curves
    assert a.metrics["final_test_acc"] == b.metrics["final_test_acc"]


def test_small_dense_b_is_small_dense_with_scratch_b_budget(chains):
    """Rethinking's Scratch-B for the "train small" arm: the same narrow dense net as
    small_dense, trained for the dense steps x FLOPs(dense)/FLOPs(small net), at most
    `scratch_b_cap` (2x) longer."""
    e, ctx = setup_of(chains, "unstructured", "small_dense")
    b, _ = setup_of(chains, "unstructured", "small_dense_b")
    assert all(torch.equal(x, y) for x, y in zip(e.model.state_dict().values(),
                                                 b.model.state_dict().values()))
    ratio = min(2.0, ctx.dense_counts.flops / count(b.model).flops)
    assert ratio > 1.0 and b.metrics["budget_ratio"] == ratio
    assert b.total_steps == round(DENSE.total_steps() * ratio) > e.total_steps


def test_every_arm_a_spec_can_name_has_its_setup():
    """`specs.ARMS` (the names a spec validates against: the registry's, torch-free) and
    `ARM_SETUPS` (what each arm builds, `@arm`) list the same arms."""
    assert set(ARMS) == set(ARM_SETUPS)


def test_every_registered_arm_has_a_description_a_colour_and_a_comparison_rule():
    """One registry (`study.arm_registry`): the library's arms (specs, functions), the
    analysis's (colours, labels, stability) and the paired tests all name the same set, and
    every entry says what the arm is, how it is drawn and how it is judged."""
    from analysis import stability, stats, style
    from study.arm_registry import REGISTRY, arms_where

    assert set(REGISTRY) == set(ARMS) == set(ARM_SETUPS) == set(style.ARMS)
    assert set(style.COLORS) == set(style.LABELS) == set(REGISTRY)
    assert set(stability.ARMS) == set(STABILITY_ARMS) == set(arms_where(family="stability"))
    for name, entry in REGISTRY.items():
        assert len(entry.description) > 40 and entry.label and len(entry.judged) > 20, name
        palette, index = entry.colour
        assert palette in ("colorblind", "dark") and 0 <= index < 10, name
        assert style.color(name) == style.COLORS[name], name
        named = [*entry.baseline_for, *(b for b in entry.tested_against if b[0] != "+"),
                 *([entry.twin] if entry.twin else [])]
        assert set(named) <= set(REGISTRY), name
        assert (entry.pack == "alone") == (entry.budget == "none"), name  # never trained
    assert len(set(style.COLORS.values())) == len(REGISTRY)  # no two arms share a colour
    assert {arm.partition("+")[0] for pair in stats.COMPARISONS for arm in pair} <= set(REGISTRY)
    at_init = [(c, r) for c in ("snip", "grasp", "synflow")
               for r in ("random_erk", "random_prune", f"{c}+shuffled")]
    order = [("lottery", "reinit"), ("lottery", "scratch_b"), ("finetune", "scratch_b"),
             ("lottery", "small_dense"), ("finetune", "small_dense"),
             *(("lottery", arm) for arm in TRAIN_SMALL_ARMS), *at_init]
    assert order == stats.COMPARISONS  # the verdict table's row order


def test_analysis_reads_the_arms_through_the_contract_only():
    """Analysis imports nothing of the library but `study.contract` (which passes on the arm
    registry), so it reads a store without torch or the specs."""
    import re
    from pathlib import Path

    for path in (Path(__file__).parents[1] / "analysis").glob("*.py"):
        imported = re.findall(r"^\s*(?:from|import) (study[\w.]*)", path.read_text(), re.M)
        assert set(imported) <= {"study.contract"}, path.name


def test_an_arm_function_needs_its_registry_entry():
    from study.arms import arm

    def no_such_arm(ctx):
        raise AssertionError

    with pytest.raises(KeyError, match="no_such_arm"):
        arm(no_such_arm)


def test_every_arms_run_description_says_what_the_arm_is():
    """A run's description carries its arm's docstring (the one place an arm is described):
    one trial per arm, from the shipped spaces."""
    from study.space import load_space, space_files
    from study.words import describe

    first = {}
    for name in space_files():
        for spec in load_space(name)[0].expand():
            first.setdefault(spec.arm, spec)
    assert set(first) == set(ARMS)
    for arm, spec in first.items():
        words = " ".join((ARM_SETUPS[arm].__doc__ or "").split("\n\n")[0].split())
        assert len(words) > 40, f"{arm}: no docstring saying what the arm is"
        assert words in describe(spec), arm


@pytest.mark.timeout(300)
def test_planned_budget_is_what_every_arm_trains_and_each_records_its_lr(chains):
    """One budget rule (`study.arms.steps`): the sweep's plan shows the steps each arm really
    trains (Scratch-B's FLOPs ratio once its mask is counted; the rewound arms from step k),
    and every trained run records the base lr it trained at (`train_lr`)."""
    for key in ("rewound", "structured"):
        for arm in ARMS:
            if arm == "dense" or (arm in ("supermask", *TRAIN_SMALL_ARMS)
                                  and key == "structured"):  # weight-level masks only
                continue
            if arm in STABILITY_ARMS:  # need their copies: tests/test_stability.py
                continue
            if same_as_another(arm, PLANS[key], DENSE):  # refused: reinit's trials again
                continue
            setup, _ = setup_of(chains, key, arm)
            spec = TrialSpec(stage="imp" if arm == "lottery" else "arm", arm=arm, round=2,
                             dense=DENSE, prune=PLANS[key])
            planned = budget(spec, setup.metrics.get("budget_ratio"))
            assert setup.total_steps - setup.start_step == planned, (key, arm)
            if key == "structured":
                continue
            record = run_trial(spec, chains[key].fetch)  # what the loop really trained
            assert record.metrics["train_steps"] == planned, arm
            if not setup.trains:
                assert "train_lr" not in record.metrics and planned == 0
            else:
                assert record.metrics["train_lr"] == DENSE.train.lr, arm  # constant: its own
    store = chains["unstructured"]
    dense = run_trial(TrialSpec(stage="dense", arm="dense", dense=DENSE), store.fetch)
    assert dense.metrics["train_steps"] == DENSE.total_steps() and dense.metrics["train_lr"]
    tuned = TrialSpec(stage="arm", arm="finetune", round=2, dense=DENSE,
                      prune=PLANS["unstructured"], options=ArmOptions(lr=0.02))
    assert run_trial(tuned, store.fetch).metrics["train_lr"] == 0.02  # an arm's own lr wins


class Captured(Exception):
    """Raised by a spy in place of training: the trial got as far as calling the loop."""


@pytest.mark.timeout(300)
def test_bn_l1_trains_only_the_nets_whose_scales_are_ranked(monkeypatch):
    """Network Slimming in the Rethinking code: only the baseline is trained with the BN-L1
    penalty (`-sr --s 1e-4`); fine-tune, Scratch-E and Scratch-B train without it. Here the
    dense net and the IMP rounds of an iterative chain (each pruned by the next round, as
    Network Slimming's multi-pass scheme retrains each pass with it) train with it; one-shot
    rounds and every arm do not."""
    import study.trial

    dense = DenseSpec(data=DataSpec(name="digits"), model=ModelSpec(name="resnet20", width=0.125),
                      train=TrainSpec(lr=0.05, batch_size=50, steps=2, eval_every=2, bn_l1=1e-4))
    plans = {s: PruneSpec(granularity="structured", criterion="bn_scale", scope="global",
                          rate=0.3, rounds=2, schedule=s) for s in ("iterative", "oneshot")}
    penalised = {("dense", "dense", "iterative"), ("imp", "lottery", "iterative")}
    for schedule, plan in plans.items():
        for stage, arm in [("imp", "lottery"), *(("arm", a) for a in (
                "finetune", "reinit", "scratch_b", "small_dense", "small_dense_b", "lottery"))]:
            spec = TrialSpec(stage=stage, arm=arm, round=2, dense=dense, prune=plan)
            expected = 1e-4 if (stage, arm, schedule) in penalised else 0.0
            assert TrialContext(spec, None).train.bn_l1 == expected, (stage, arm, schedule)
    # what the loop really receives: dense and round 1 train, the rest stop at the call
    seen, real = [], study.trial.train_members

    def spy(members, data, **kw):
        seen.extend(m.spec.bn_l1 for m in members)
        if len(seen) > 2:
            raise Captured
        return real(members, data, **kw)

    monkeypatch.setattr(study.trial, "train_members", spy)
    store = MemoryStore()
    store.run(TrialSpec(stage="dense", arm="dense", dense=dense))
    store.run(TrialSpec(stage="imp", arm="lottery", round=1, dense=dense,
                        prune=plans["iterative"]))
    for stage, arm, round_ in (("imp", "lottery", 2), ("arm", "finetune", 1),
                               ("arm", "reinit", 1)):
        with pytest.raises(Captured):
            store.run(TrialSpec(stage=stage, arm=arm, round=round_, dense=dense,
                                prune=plans["iterative"]))
    assert seen == [1e-4, 1e-4, 1e-4, 0.0, 0.0]


def test_lr_rewind_retrains_the_pruned_trained_net_with_the_whole_dense_schedule(chains):
    """Renda et al. 2020: the net finetune starts from (round r-1's trained weights on round
    r's mask), but retrained for the dense budget T with the dense schedule from its start."""
    store = chains["unstructured"]
    setup, ctx = setup_of(chains, "unstructured", "lr_rewind", round_=2)
    source, mask = store.fetch(_imp(1), "final.pt"), store.fetch(_imp(2), "mask.pt")
    state = setup.model.state_dict()
    for name in mask:
        assert torch.equal(setup.masks[name], mask[name])
        assert torch.equal(state[name][mask[name]], source[name][mask[name]]), name
    assert (setup.total_steps, setup.start_step, setup.train) == (DENSE.total_steps(), 0, None)
    spec = TrialSpec(stage="arm", arm="lr_rewind", round=2, dense=DENSE,
                     prune=PLANS["unstructured"])
    assert [(p.stage, p.round) for p in spec.parents()] == [("dense", 0), ("imp", 2), ("imp", 1)]
    record = run_trial(spec, store.fetch)
    assert record.params["trained.lr"] == f"{DENSE.train.lr:g}"
    assert record.metrics["train_steps"] == DENSE.total_steps()
    structured, _ = setup_of(chains, "structured", "lr_rewind")
    assert structured.masks is None and structured.model.widths == [8, 8]


def test_every_run_bills_its_own_training_and_what_it_started_from(chains):
    """The compute bill (study.bill): 3 forward passes a sample; a chain round carries its
    source's whole bill, an arm its mask's, small_dense nothing."""
    from study.bill import PASSES_PER_STEP

    store = chains["unstructured"]
    dense = run_trial(TrialSpec(stage="dense", arm="dense", dense=DENSE), store.fetch).metrics
    per_step = PASSES_PER_STEP * DENSE.train.batch_size
    assert dense["train_flops"] == per_step * dense["flops"] * DENSE.total_steps()
    assert dense["upstream_train_flops"] == 0
    rounds = [run_trial(_imp(r), store.fetch).metrics for r in (1, 2)]
    assert rounds[0]["upstream_train_flops"] == dense["train_flops"]
    assert rounds[1]["upstream_train_flops"] == pytest.approx(
        dense["train_flops"] + rounds[0]["train_flops"])
    assert rounds[1]["train_flops"] < rounds[0]["train_flops"] < dense["train_flops"]
    for arm in ("reinit", "finetune", "lr_rewind", "supermask"):  # round 2's mask: round 1's
        spec = TrialSpec(stage="arm", arm=arm, round=2, dense=DENSE, prune=PLANS["unstructured"])
        metrics = run_trial(spec, store.fetch).metrics
        assert metrics["upstream_train_flops"] == rounds[1]["upstream_train_flops"], arm
        assert metrics["cumulative_train_flops"] == pytest.approx(
            metrics["upstream_train_flops"] + metrics["train_flops"]), arm
    small = run_trial(TrialSpec(stage="arm", arm="small_dense", round=2, dense=DENSE,
                                prune=PLANS["unstructured"]), store.fetch).metrics
    assert small["upstream_train_flops"] == 0 and small["cumulative_train_flops"] > 0

    def old(spec, name):  # a store written before bills: the parents have none
        if name == "bill.pt":
            raise KeyError(name)
        return store.fetch(spec, name)

    spec = TrialSpec(stage="arm", arm="reinit", round=2, dense=DENSE, prune=PLANS["unstructured"])
    assert math.isnan(run_trial(spec, old).metrics["upstream_train_flops"])


def test_a_run_records_where_its_best_validation_came_and_whether_it_converged(chains):
    """Converged: the validation loss reached its minimum (the early-stopping iteration) before
    the last 10% of the steps; where the best validation accuracy fell does not decide."""
    from study.train import TrainResult

    rows = [{"step": s, "val_loss": loss, "val_acc": a, "test_acc": a, "train_loss": 1.0}
            for s, loss, a in ((100, 1.2, 0.5), (500, 0.9, 0.7), (900, 0.95, 0.7),
                               (1000, 0.97, 0.71))]
    flat = TrainResult("finished", 1000, 1.0, rows).summary()
    assert (flat["early_stop_step"], flat["best_val_step"]) == (500, 1000)
    assert flat["converged"] == 1.0  # a late, slightly higher accuracy: not still learning
    rows[-1]["val_loss"] = 0.85
    falling = TrainResult("finished", 1000, 1.0, rows).summary()
    assert (falling["early_stop_step"], falling["converged"]) == (1000, 0.0)
    rows[-1]["val_loss"], rows[-2]["val_loss"] = 0.97, 0.8
    assert TrainResult("finished", 1000, 1.0, rows).summary()["converged"] == 1.0  # 900: in
    late = [{**rows[0], "step": s, "val_loss": loss} for s, loss in ((300, 1.0), (910, 0.8),
                                                                      (1000, 0.9))]
    assert TrainResult("finished", 1000, 1.0, late).summary()["converged"] == 0.0
    # a ticket rewound to step 100 trains steps 100-1000: 910 is within their first 90%
    assert TrainResult("finished", 1000, 1.0, late).summary(start_step=100)["converged"] == 1.0
    record = run_trial(_imp(1), chains["unstructured"].fetch)
    assert record.metrics["converged"] in (0.0, 1.0)
    assert record.metrics["best_val_step"] in [r["step"] for r in record.curves]
    assert record.metrics["early_stop_step"] in [r["step"] for r in record.curves]


def test_an_arm_that_would_repeat_another_is_refused_and_left_out():
    """Layerwise neuron pruning of an MLP removes the same share of every hidden layer: its
    pruned net is the uniformly narrower net small_dense trains, from reinit's fresh init."""
    from study.space import Space

    with pytest.raises(ValueError, match="would be identical; use prune.scope 'global'"):
        TrialSpec(stage="arm", arm="small_dense", round=1, dense=DENSE,
                  prune=PLANS["structured"])
    glob = PLANS["structured"].model_copy(update={"scope": "global"})
    TrialSpec(stage="arm", arm="small_dense_b", round=1, dense=DENSE, prune=glob)
    space = Space(name="s", model={"name": "mlp", "hidden": [32, 32]},
                  train={"steps": 60, "batch_size": 100},
                  grid={"prune": [PLANS["structured"].model_dump(), glob.model_dump()]},
                  arms=["reinit", "small_dense"])
    small = [t for t in space.expand() if t.arm == "small_dense"]
    assert small and {t.prune.scope for t in small} == {"global"}


@pytest.mark.timeout(300)
def test_structured_small_dense_on_a_global_plan_is_not_reinit(chains):
    """Global neuron ranking gives the layers other widths than a uniform narrowing: the
    train-small net is then its own arm."""
    glob = PLANS["structured"].model_copy(update={"scope": "global", "rate": 0.6})
    store = MemoryStore()
    store.run(TrialSpec(stage="dense", arm="dense", dense=DENSE))
    store.run(TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE, prune=glob))
    ctx = lambda arm: TrialContext(TrialSpec(stage="arm", arm=arm, round=1,  # noqa: E731
                                             dense=DENSE, prune=glob), store.fetch)
    reinit, small = (ARM_SETUPS[a](ctx(a)) for a in ("reinit", "small_dense"))
    assert reinit.model.widths != small.model.widths
    assert len(set(small.model.widths)) == 1  # one width multiplier for every hidden layer
