"""Arms on real MNIST-1D: where each one's weights start, on which mask, with which budget."""

from __future__ import annotations

import pytest
import torch

from study.arms import ARM_SETUPS
from study.context import TrialContext
from study.models import count
from study.specs import DenseSpec, ModelSpec, PruneSpec, TrainSpec, TrialSpec
from study.trial import run_trial

DENSE = DenseSpec(model=ModelSpec(name="mlp", hidden=(32, 32)),
                  train=TrainSpec(lr=0.05, batch_size=100, steps=60, eval_every=30), seed=4)
PLANS = {
    "unstructured": PruneSpec(rate=0.5, output_rate=0.25, rounds=2),
    "structured": PruneSpec(granularity="structured", criterion="l1_filter", rate=0.5, rounds=2),
    "rewound": PruneSpec(rate=0.5, rounds=2, rewind_step=20),
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


def test_finetune_starts_from_trained_dense_weights_pruned(chains):
    setup, ctx = setup_of(chains, "unstructured", "finetune")
    final = ctx.fetch_dense("final.pt")
    assert torch.equal(setup.model.state_dict()["layers.1.weight"], final["layers.1.weight"])
    assert setup.lr == pytest.approx(DENSE.train.lr * 0.01)
    assert setup.total_steps == round(DENSE.total_steps() * 0.25)


def test_small_dense_matches_the_tickets_weight_count(chains):
    setup, ctx = setup_of(chains, "unstructured", "small_dense")
    lottery, _ = setup_of(chains, "unstructured", "lottery")
    target = count(lottery.model, lottery.masks).nonzero_weights
    assert setup.masks is None
    assert abs(count(setup.model).total_weights - target) / target < 0.05
    assert setup.metrics["match_error"] == pytest.approx(
        (count(setup.model).total_weights - target) / target)


def test_structured_arms_train_a_physically_smaller_net(chains):
    for arm in ("lottery", "reinit", "scratch_b", "finetune", "random_prune", "supermask"):
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
