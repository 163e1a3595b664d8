"""Pruning: exact expectations on masks, criteria and structured surgery."""

import pytest
import torch

from study.models import build_model, count
from study.pruning import (
    initial_mask,
    mask_step,
    prune_lowest,
    prune_units,
    prune_weights,
    random_like,
    restrict,
    shrink,
    zero_units,
)
from study.pruning.criteria import large_final_same_sign, magnitude_increase
from study.pruning.registry import SUPERMASK
from study.specs import PruneSpec

GEN = torch.Generator().manual_seed(0)


def test_layerwise_prunes_the_smallest_of_each_layer():
    scores = {"a": torch.tensor([5.0, 1.0, 3.0, 2.0]), "b": torch.tensor([0.1, 0.2])}
    mask = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    new = prune_lowest(scores, mask, {"a": 0.5, "b": 0.5})
    assert new["a"].tolist() == [True, False, True, False]
    assert new["b"].tolist() == [False, True]
    again = prune_lowest(scores, new, {"a": 0.5, "b": 0.5})  # a fraction of the *survivors*
    assert again["a"].tolist() == [True, False, False, False]


def test_global_scope_uses_one_threshold_per_pool():
    scores = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([10.0, 20.0, 30.0, 40.0]),
              "out": torch.tensor([1.0, 2.0])}
    mask = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    pooled = {"a": "rate", "b": "rate", "out": "rate"}
    new = prune_lowest(scores, mask, {"a": 0.5, "b": 0.5, "out": 0.5}, pooled)
    # the 5 lowest of the pooled 10 are a's 1, 2, 3 and out's 1, 2: one threshold for all
    assert new["a"].tolist() == [False, False, False, True]
    assert new["b"].all() and not new["out"].any()
    own = {**pooled, "out": "output_rate"}  # the output override is a pool of its own
    mask2 = prune_lowest(scores, mask, {"a": 0.5, "b": 0.5, "out": 0.5}, own)
    assert mask2["out"].tolist() == [False, True]
    with pytest.raises(ValueError, match="different fractions"):
        prune_lowest(scores, mask, {"a": 0.5, "b": 0.2, "out": 0.5}, pooled)


@pytest.mark.parametrize("name", ["conv2", "conv4"])
def test_global_scope_pools_by_rate_field_with_lths_conv_rates(name):
    """LTH's Conv-2/4 rates (conv 10%, fc 20%, output 10% per round) under global scope: the
    conv layers share one threshold at 10%, the fc layers one at 20%, and the output layer
    keeps its own 10% although it equals the conv rate. Pooling by equal rate instead would
    put it in the conv pool, where its small weights would all go at once."""
    model = build_model(name, (3, 32, 32), 10, width=0.25, seed=2)
    with torch.no_grad():
        model.fcs[-1].weight.mul_(1e-3)  # tiny output weights: the trap
        model.fcs[1].weight.mul_(3.0)  # the fc layers differ in scale: one pool shows it
        model.convs[0].weight.mul_(3.0)
    plan = PruneSpec(scope="global", rate=0.2, conv_rate=0.1, output_rate=0.1)
    mask = prune_weights(plan, 1, model, model, initial_mask(plan, model), GEN)
    params = dict(model.named_parameters())
    pools = {"conv": [f"convs.{i}.weight" for i in range(len(model.convs))],
             "fc": ["fcs.0.weight", "fcs.1.weight"], "output": ["fcs.2.weight"]}
    for pool, rate in (("conv", 0.1), ("fc", 0.2), ("output", 0.1)):
        kept = torch.cat([params[n].detach().abs()[mask[n]] for n in pools[pool]])
        cut = torch.cat([params[n].detach().abs()[~mask[n]] for n in pools[pool]])
        assert cut.numel() == pytest.approx(rate * (kept.numel() + cut.numel()), abs=1), pool
        assert cut.max() <= kept.min(), pool  # one threshold across the pool's layers
    assert mask["fcs.0.weight"].float().mean() < 0.8 < mask["fcs.1.weight"].float().mean()
    assert mask["convs.0.weight"].float().mean() > 0.9


def test_magnitude_increase_is_hand_checkable():
    w_final, w_init = torch.tensor([1.0, -3.0, 0.5]), torch.tensor([2.0, 1.0, -0.1])
    increase = magnitude_increase(w_final, w_init, GEN)
    torch.testing.assert_close(increase, torch.tensor([-1.0, 2.0, 0.4]))
    same = large_final_same_sign(w_final, w_init, GEN)
    assert same.tolist() == [1.0, -1.0, -1.0]


def test_iterative_rounds_follow_the_sparsity_formula():
    model = build_model("mlp", (40,), 10, hidden=(100, 100))
    plan = PruneSpec(rate=0.2, rounds=3)
    mask = initial_mask(plan, model)
    for r in range(1, 4):
        mask = prune_weights(plan, r, model, model, mask, GEN)
        kept = sum(int(m.sum()) for m in mask.values()) / count(model).total_weights
        assert kept == pytest.approx(0.8**r, abs=0.01)


def test_oneshot_round_prunes_straight_to_the_target():
    model = build_model("mlp", (40,), 10, hidden=(100, 100))
    plan = PruneSpec(rate=0.2, rounds=3, schedule="oneshot")
    mask = prune_weights(plan, 3, model, model, initial_mask(plan, model), GEN)
    kept = sum(int(m.sum()) for m in mask.values()) / count(model).total_weights
    assert kept == pytest.approx(0.8**3, abs=0.01)


def test_random_like_keeps_per_layer_counts():
    mask = {"a": torch.rand(10, 10) < 0.3, "b": torch.rand(7) < 0.5}
    other = random_like(mask, GEN)
    assert all(int(other[n].sum()) == int(mask[n].sum()) for n in mask)
    assert not torch.equal(other["a"], mask["a"])


def _trained_like(model):
    """Perturb BN statistics so the equivalence test is not trivially true."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("name,shape", [("mlp", (40,)), ("conv4", (3, 32, 32)),
                                        ("vgg11", (3, 32, 32)), ("resnet20", (3, 32, 32))])
@pytest.mark.parametrize("criterion", ["l1_filter", "random"])
def test_structured_net_is_smaller_and_output_equivalent(name, shape, criterion):
    model = _trained_like(build_model(name, shape, 10, width=0.25, seed=1))
    plan = PruneSpec(granularity="structured", criterion=criterion, rate=0.4)
    mask = prune_units(plan, 1, model, initial_mask(plan, model), GEN)
    small = shrink(model, mask)
    assert count(small).total_params < count(model).total_params
    x = torch.randn(8, *shape)
    expected = zero_units(model, mask)(x)
    torch.testing.assert_close(small(x), expected, rtol=1e-4, atol=1e-5)


def test_bn_scale_ranks_batchnorm_gammas():
    model = build_model("vgg11", (3, 32, 32), 10, width=0.125)
    first = model.bns[0]
    first.weight.data = torch.arange(first.num_features, dtype=torch.float)
    plan = PruneSpec(granularity="structured", criterion="bn_scale", rate=0.5)
    mask = prune_units(plan, 1, model, initial_mask(plan, model), GEN)
    assert mask["convs.0"].tolist() == [i >= first.num_features // 2
                                        for i in range(first.num_features)]


def test_second_structured_round_prunes_the_shrunk_net_in_big_coordinates():
    model = build_model("mlp", (40,), 10, hidden=(10,))
    plan = PruneSpec(granularity="structured", criterion="l1_filter", rate=0.5, rounds=2)
    first = prune_units(plan, 1, model, initial_mask(plan, model), GEN)
    small = shrink(model, first)
    second = prune_units(plan, 2, small, first, GEN)
    assert int(first["layers.0"].sum()) == 5 and int(second["layers.0"].sum()) == 3
    assert not (second["layers.0"] & ~first["layers.0"]).any()  # never revives a pruned unit
    assert restrict(second, first)["layers.0"].numel() == 5


def test_structured_layer_keeps_at_least_one_unit():
    model = build_model("mlp", (40,), 10, hidden=(3,))
    plan = PruneSpec(granularity="structured", criterion="l1_filter", rate=0.9, scope="global")
    mask = prune_units(plan, 1, model, initial_mask(plan, model), GEN)
    assert int(mask["layers.0"].sum()) >= 1


def test_mask_step_is_the_rounds_mask_with_the_supermask_beside_it():
    """The chain's pruning step as a pure function: the plan's mask of the source net and,
    unstructured, Zhou's large_final_same_sign mask from the same source and generator."""
    source = build_model("mlp", (6,), 4, hidden=(8, 8), seed=0)
    theta0, rewound = (build_model("mlp", (6,), 4, hidden=(8, 8), seed=s) for s in (1, 2))
    plan = PruneSpec(criterion="random", rate=0.5, rounds=2)
    previous = initial_mask(plan, source)
    mask, supermask = mask_step(plan, 1, source, previous, theta0, rewound, None,
                                torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    expected = prune_weights(plan, 1, source, theta0, previous, gen)
    same_sign = prune_weights(plan, 1, source, rewound, previous, gen, criterion=SUPERMASK)
    assert all(torch.equal(mask[n], expected[n]) for n in expected)
    assert all(torch.equal(supermask[n], same_sign[n]) for n in same_sign)
    units = PruneSpec(granularity="structured", criterion="l1_filter", rate=0.5, rounds=2)
    unit_mask, none = mask_step(units, 1, source, initial_mask(units, source), None, None, None,
                                torch.Generator().manual_seed(5))
    assert none is None and {n: m.shape for n, m in unit_mask.items()} == {
        g.name: (g.size,) for g in source.unit_groups()}
