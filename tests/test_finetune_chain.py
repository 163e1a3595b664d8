"""The fine-tune chain (prune.retrain 'finetune', Han et al.'s loop) on real MNIST-1D: where each
round's weights come from, what its before-fine-tuning accuracy measures, the one-shot budget,
and the arms on its masks."""

from __future__ import annotations

import pytest
import torch

from study import seeds
from study.arms import ARM_SETUPS, finetune_steps
from study.context import TrialContext
from study.models import count
from study.plan import budget
from study.pruning import draw_batches, prune_units, prune_weights
from study.space import Space
from study.specs import DenseSpec, ModelSpec, PruneSpec, TrainSpec, TrialSpec, same_as_another
from study.train import evaluate
from study.trial import run_trial

DENSE = DenseSpec(model=ModelSpec(name="mlp", hidden=(32, 32)),
                  train=TrainSpec(lr=0.05, batch_size=100, steps=80, eval_every=40), seed=3)
ROUNDS = 3
PLANS = {
    "unstructured": PruneSpec(rate=0.3, rounds=ROUNDS, retrain="finetune",
                              finetune_fraction=0.2),
    "structured": PruneSpec(granularity="structured", criterion="l1_filter", rate=0.3,
                            rounds=ROUNDS, retrain="finetune", finetune_fraction=0.2),
    "fisher": PruneSpec(criterion="fisher", rate=0.3, rounds=ROUNDS, retrain="finetune",
                        finetune_fraction=0.2, saliency_batches=2),
    "oneshot": PruneSpec(rate=0.3, rounds=ROUNDS, retrain="finetune", finetune_fraction=0.2,
                         schedule="oneshot"),
}


class MemoryStore:
    """Upstream artifacts by trial id (the tracking store's role), and every record."""

    def __init__(self):
        self.artifacts, self.records = {}, {}

    def fetch(self, spec, name):
        return self.artifacts[spec.id][name]

    def run(self, spec):
        record = run_trial(spec, self.fetch)
        self.artifacts[spec.id], self.records[spec.id] = record.artifacts, record
        return record


def _round(key: str, round_: int) -> TrialSpec:
    return TrialSpec(stage="imp", arm="finetune", round=round_, dense=DENSE, prune=PLANS[key])


@pytest.fixture(scope="module")
def chains():
    """One store: the dense run and every plan's rounds 1..ROUNDS."""
    store = MemoryStore()
    store.run(TrialSpec(stage="dense", arm="dense", dense=DENSE))
    for key in PLANS:
        for r in range(1, ROUNDS + 1):
            store.run(_round(key, r))
    return store


def _setup(store: MemoryStore, spec: TrialSpec):
    ctx = TrialContext(spec, store.fetch)
    return ARM_SETUPS[spec.arm](ctx), ctx


@pytest.mark.timeout(120)
@pytest.mark.parametrize("key", ["unstructured", "fisher"])
def test_a_round_fine_tunes_the_previous_rounds_fine_tuned_net_on_its_own_mask(chains, key):
    """Round 2 starts from round 1's fine-tuned weights (not θ0, not the dense θT), on round
    2's mask, which was computed from those very weights and nests in round 1's."""
    setup, ctx = _setup(chains, _round(key, 2))
    tuned = chains.fetch(_round(key, 1), "final.pt")
    theta0, dense = ctx.fetch_dense("init.pt"), ctx.fetch_dense("final.pt")
    mask, previous = chains.fetch(_round(key, 2), "mask.pt"), chains.fetch(_round(key, 1),
                                                                           "mask.pt")
    state = setup.model.state_dict()
    for name in mask:
        assert torch.equal(setup.masks[name], mask[name]), name
        assert not (mask[name] & ~previous[name]).any(), name  # nested
        assert (mask[name].sum() < previous[name].sum()), name  # and smaller
        kept = mask[name]
        assert torch.equal(state[name][kept], tuned[name][kept]), name
        assert not torch.equal(state[name][kept], theta0[name][kept]), name
        assert not torch.equal(state[name][kept], dense[name][kept]), name
    plan, r = PLANS[key], 2
    batches = None
    if plan.criterion == "fisher":  # the same batches the round drew (seeded by its source)
        gen = torch.Generator().manual_seed(seeds.saliency(DENSE.seed, 1))
        batches = draw_batches(ctx.data.x_train, ctx.data.y_train, plan.saliency_batches,
                               DENSE.train.batch_size, gen)
    else:
        gen = torch.Generator().manual_seed(seeds.mask_scores(DENSE.seed, r))
    recomputed = prune_weights(plan, r, ctx.big(tuned), ctx.big(theta0), previous, gen,
                               batches=batches)
    assert all(torch.equal(recomputed[n], mask[n]) for n in mask)
    assert torch.equal(chains.fetch(_round(key, 2), "init.pt")["layers.0.weight"],
                       theta0["layers.0.weight"])  # θk kept for the rewound arms, as IMP does
    assert [(p.stage, p.arm, p.round) for p in _round(key, 2).parents()] == [
        ("dense", "dense", 0), ("imp", "finetune", 1)]


@pytest.mark.timeout(120)
def test_a_structured_round_shrinks_the_previous_rounds_fine_tuned_small_net(chains):
    setup, ctx = _setup(chains, _round("structured", 2))
    m1, m2 = (chains.fetch(_round("structured", r), "mask.pt") for r in (1, 2))
    tuned = chains.fetch(_round("structured", 1), "final.pt")
    keep = m2["layers.0"][m1["layers.0"]]  # round 2's units in round 1's small net
    assert setup.masks is None
    assert setup.model.widths == [int(m2[g].sum()) for g in ("layers.0", "layers.1")]
    assert setup.model.widths[0] < int(m1["layers.0"].sum())
    torch.testing.assert_close(setup.model.state_dict()["layers.0.weight"],
                               tuned["layers.0.weight"][keep], rtol=0, atol=0)
    gen = torch.Generator().manual_seed(seeds.mask_scores(DENSE.seed, 2))
    recomputed = prune_units(PLANS["structured"], 2, ctx.small(m1, tuned), m1, gen)
    assert all(torch.equal(recomputed[n], m2[n]) for n in m2)


@pytest.mark.timeout(120)
def test_before_fine_tuning_accuracy_is_the_pruned_untouched_net(chains):
    """`pruned_test_acc` is round 1's fine-tuned net with round 2's mask applied and nothing
    else done to it; `final_test_acc` is after fine-tuning, so the two differ."""
    record = chains.records[_round("unstructured", 2).id]
    tuned = chains.fetch(_round("unstructured", 1), "final.pt")
    mask = chains.fetch(_round("unstructured", 2), "mask.pt")
    ctx = TrialContext(_round("unstructured", 2), chains.fetch)
    pruned = {n: v * mask[n] if n in mask else v for n, v in tuned.items()}
    data = ctx.data
    _, test_acc = evaluate(ctx.big(pruned), data.x_test, data.y_test)
    val_loss, val_acc = evaluate(ctx.big(pruned), data.x_val, data.y_val)
    assert record.metrics["pruned_test_acc"] == test_acc
    assert record.metrics["pruned_val_acc"] == val_acc
    assert record.metrics["pruned_val_loss"] == pytest.approx(val_loss)
    _, unpruned = evaluate(ctx.big(tuned), data.x_test, data.y_test)
    assert unpruned != test_acc  # the cut changed the net
    assert record.metrics["final_test_acc"] != record.metrics["pruned_test_acc"]
    assert record.metrics["train_steps"] == round(80 * 0.2) > 0


@pytest.mark.timeout(60)
def test_one_shot_fine_tunes_as_long_as_the_iterative_rounds_together(chains):
    """One big cut vs small steps is budget-matched: one-shot round r trains as many fine-tuning
    steps as iterative rounds 1..r did, at the same lr, to the same sparsity."""
    for r in range(1, ROUNDS + 1):
        iterative = sum(chains.records[_round("unstructured", k).id].metrics["train_steps"]
                        for k in range(1, r + 1))
        oneshot = chains.records[_round("oneshot", r).id]
        assert oneshot.metrics["train_steps"] == iterative == r * 16
        assert budget(_round("oneshot", r)) == finetune_steps(_round("oneshot", r)) == iterative
        lr = DENSE.train.finetune_lr(PLANS["unstructured"].finetune_fraction)
        assert oneshot.params["trained.lr"] == chains.records[
            _round("unstructured", r).id].params["trained.lr"] == f"{lr:g}"
        assert oneshot.metrics["remaining"] == pytest.approx(
            chains.records[_round("unstructured", r).id].metrics["remaining"], abs=1e-3)
    assert [p.stage for p in _round("oneshot", 3).parents()] == ["dense"]
    setup, ctx = _setup(chains, _round("oneshot", 3))  # pruned straight from the dense θT
    dense, keep = ctx.fetch_dense("final.pt"), setup.masks["layers.1.weight"]
    assert torch.equal(setup.model.state_dict()["layers.1.weight"][keep],
                       dense["layers.1.weight"][keep])


@pytest.mark.timeout(180)
@pytest.mark.parametrize("key", ["unstructured", "structured"])
def test_arms_train_on_the_chains_masks(chains, key):
    """Scratch-E, Scratch-B and small_dense on a fine-tune chain's round, as on IMP's: its mask
    (or its small architecture), read from the chain's own round."""
    chain_setup, _ = _setup(chains, _round(key, 2))
    mask = chains.fetch(_round(key, 2), "mask.pt")
    for arm in ("reinit", "scratch_b", "small_dense"):
        if same_as_another(arm, PLANS[key], DENSE):  # the neuron chain's nets are reinit's
            continue
        spec = TrialSpec(stage="arm", arm=arm, round=2, dense=DENSE, prune=PLANS[key])
        assert spec.parents()[1] == _round(key, 2)
        setup, ctx = _setup(chains, spec)
        if arm == "small_dense":
            assert abs(count(setup.model).total_weights - count(
                chain_setup.model, chain_setup.masks).nonzero_weights) / count(
                setup.model).total_weights < 0.1
        elif key == "unstructured":
            assert all(torch.equal(setup.masks[n], mask[n]) for n in mask), arm
        else:
            assert setup.model.widths == chain_setup.model.widths, arm
        record = run_trial(spec, chains.fetch)
        assert record.outcome == "finished" and record.metrics["train_steps"] >= 80, arm


def test_the_plan_option_is_validated_and_keeps_old_ids():
    plan = PruneSpec(rate=0.2, rounds=3)
    assert plan.canonical() == PruneSpec(rate=0.2, rounds=3, retrain="rewind").canonical()
    assert "retrain" not in plan.canonical() and "finetune_fraction" not in plan.canonical()
    chain = PruneSpec(rate=0.2, rounds=3, retrain="finetune")
    assert chain.canonical()["retrain"] == "finetune" and chain.chain_arm == "finetune"
    with pytest.raises(ValueError, match="prune.finetune_fraction"):
        PruneSpec(finetune_fraction=0.1)
    with pytest.raises(ValueError, match="'finetune' arm for prune.retrain 'finetune'"):
        TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE, prune=chain)
    with pytest.raises(ValueError, match="the chain's own round: use stage 'imp'"):
        TrialSpec(stage="arm", arm="finetune", round=1, dense=DENSE, prune=chain)
    with pytest.raises(ValueError, match="options"):
        TrialSpec(stage="imp", arm="finetune", round=1, dense=DENSE, prune=chain,
                  options={"finetune_fraction": 0.5})
    ids = {TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE, prune=plan).ticket,
           TrialSpec(stage="imp", arm="finetune", round=1, dense=DENSE, prune=chain).ticket}
    assert len(ids) == 2


def test_a_space_runs_the_arms_on_both_chains_and_no_finetune_arm_on_its_own_chain():
    space = Space(name="t", model={"hidden": [8]}, train={"steps": 20},
                  grid={"prune.retrain": ["rewind", "finetune"]},
                  prune={"rounds": 2}, arms=["reinit", "finetune"], seeds=[0])
    trials = space.expand()
    kinds = sorted({(t.stage, t.arm, t.prune.retrain if t.prune else "-") for t in trials})
    assert kinds == [("arm", "finetune", "rewind"), ("arm", "reinit", "finetune"),
                     ("arm", "reinit", "rewind"), ("dense", "dense", "-"),
                     ("imp", "finetune", "finetune"), ("imp", "lottery", "rewind")]
    assert len(trials) == 1 + 2 * 2 + 2 * 2 + 2  # dense, rounds, reinit on both, finetune on IMP
