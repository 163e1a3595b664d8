"""Training small without the big net: masks at initialisation and sparse training from scratch,
pinned by reference values computed here (not by the code under test)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from study.data import load_data
from study.models import build_model
from study.pruning import draw_batches, random_like
from study.pruning.at_init import (
    AT_INIT,
    erk_densities,
    exact_counts,
    grasp_scores,
    random_erk,
    snip_scores,
    synflow_mask,
    synflow_scores,
    top_global,
)
from study.pruning.dynamic import MaskUpdate
from study.specs import SPARSE_ARMS, TRAIN_SMALL_ARMS, TrainSpec
from study.train import Checkpointer, Member, train_members


@pytest.fixture(scope="module")
def data():
    return load_data("mnist1d")


def _tiny(seed=0, hidden=(3, 3)):
    return build_model("mlp", (40,), 10, hidden=hidden, seed=seed)


def _batches(data, count=1, size=50, seed=0):
    return draw_batches(data.x_train, data.y_train, count, size,
                        torch.Generator().manual_seed(seed))


# -- at-init scores against their definitions -------------------------------------------------
def test_snip_is_the_magnitude_of_gradient_times_weight(data):
    model = _tiny()
    ((x, y),) = batches = _batches(data)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    params = dict(model.named_parameters())
    scores = snip_scores(model, batches)
    assert list(scores) == list(model.prunable())
    for name, s in scores.items():
        torch.testing.assert_close(s, (params[name].grad * params[name]).abs().detach())


def test_grasp_is_minus_weight_times_hessian_gradient(data):
    """The reference: the full Hessian of the loss in the prunable weights (159 of them), by
    torch.func.hessian, times the gradient."""
    model = _tiny()
    ((x, y),) = batches = _batches(data)
    params = {n: p.detach() for n, p in model.named_parameters()}
    names = list(model.prunable())
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]

    def loss(flat):
        parts = dict(zip(names, (t.view(s) for t, s in zip(flat.split(sizes), shapes))))
        return nn.functional.cross_entropy(functional_call(model, {**params, **parts}, (x,)), y)

    flat = torch.cat([params[n].flatten() for n in names])
    g = torch.func.grad(loss)(flat)
    hg = hessian(loss)(flat) @ g
    expected = dict(zip(names, (-(flat * hg)).split(sizes)))
    for name, s in grasp_scores(model, batches).items():
        torch.testing.assert_close(s.flatten(), expected[name], rtol=1e-4, atol=1e-9)


def test_synflow_is_the_path_flow_through_each_weight():
    """For a ReLU MLP with |θ| and an all-ones input every unit is active, so R = Σ paths and
    the flow through W1[i, j] is |W1[i, j]|·Σ_k |W2[k, i]|·(downstream), computed by hand."""
    model = build_model("mlp", (4,), 3, hidden=(5,), seed=1)
    w1, b1 = model.layers[0].weight.detach().abs(), model.layers[0].bias.detach().abs()
    w2 = model.layers[1].weight.detach().abs()
    mask = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()
            if n in model.prunable()}
    scores = synflow_scores(model, mask)
    into = w1.sum(1) + b1  # each hidden unit's input: Σ_j |W1[i, j]|·1 + |b1[i]|
    torch.testing.assert_close(scores["layers.0.weight"].float(), w1 * w2.sum(0)[:, None])
    torch.testing.assert_close(scores["layers.1.weight"].float(), w2 * into[None, :])
    assert not AT_INIT["synflow"].data  # it is never handed any batch


def _connected(model, mask) -> bool:
    """Whether any input reaches any output through the surviving weights."""
    net = build_model("mlp", model.input_shape, model.num_classes, hidden=model.widths, seed=0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            source = dict(model.named_parameters())[name].abs()
            p.copy_(source * mask[name] if name in mask else torch.zeros_like(p))
    return bool((net(torch.ones(1, *model.input_shape)) > 0).any())


@pytest.mark.timeout(300)
def test_synflow_avoids_the_layer_collapse_of_magnitude_and_snip(data):
    """Tanaka et al.'s claim at 20 of 50,000 weights (0.04%): global magnitude and SNIP leave a
    layer with too few weights to connect input and output, SynFlow keeps a path."""
    model = _tiny(hidden=(200, 200))
    params = dict(model.named_parameters())
    keep = 20
    magnitude = top_global({n: params[n].detach().abs() for n in model.prunable()}, keep)
    snip = top_global(snip_scores(model, _batches(data, size=100)), keep)
    flow = synflow_mask(model, keep)
    assert sum(int(m.sum()) for m in flow.values()) == keep
    assert not _connected(model, magnitude) and not _connected(model, snip)
    assert min(int(m.sum()) for m in snip.values()) == 0  # SNIP empties the 200 x 200 layer
    assert all(m.any() for m in flow.values()) and _connected(model, flow)


# -- ERK ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [300, 5_000, 20_000, 49_000])
def test_erk_hits_the_count_and_follows_the_formula(keep):
    shapes = {"a": torch.Size((200, 40)), "b": torch.Size((200, 200)),
              "c": torch.Size((10, 200)), "conv": torch.Size((16, 3, 3, 3))}
    densities = erk_densities(shapes, keep)
    counts = exact_counts(shapes, densities, keep)
    assert sum(counts.values()) == keep
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}  # (n_in + n_out (+ kh + kw)) / Π
    sparse = [n for n in shapes if densities[n] < 1.0]
    eps = {densities[n] / raw[n] for n in sparse}
    assert max(eps) - min(eps) < 1e-9 * max(eps)  # one ε for every layer below 1
    capped = [n for n in shapes if n not in sparse]
    assert all(raw[n] * min(eps) >= 1.0 - 1e-12 for n in capped)  # capped because ε·raw ≥ 1
    assert all(abs(counts[n] - densities[n] * sizes[n]) < 1.0 for n in shapes)
    mask = random_erk(shapes, keep, torch.Generator().manual_seed(0))
    assert {n: int(m.sum()) for n, m in mask.items()} == counts


# -- sparse training: the hook in the one loop -------------------------------------------------
SPEC = TrainSpec(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=100, steps=400,
                 eval_every=100)


class Watched(MaskUpdate):
    """MaskUpdate that checks, at every update, what the issue pins: grown weights (and their
    momentum) are zero when grown, and no layer's count moves."""

    def __call__(self, step, weights, grads, masks, states):
        before = {n: m.clone() != 0 for n, m in masks.items()}
        super().__call__(step, weights, grads, masks, states)
        for name, mask in masks.items():
            grown = (mask != 0) & ~before[name]
            assert int((mask != 0).sum()) == int(before[name].sum())
            assert bool((weights[name][grown] == 0).all())
            assert all(bool((s[name][grown] == 0).all()) for s in states)
            assert bool((weights[name][mask == 0] == 0).all())


def _sparse_run(data, growth, seed=0, stacked=False, checkpointer=None, count=1):
    members = []
    for k in range(count):
        model = _tiny(seed=seed + k, hidden=(32, 32))
        params = dict(model.named_parameters())
        shapes = {n: params[n].shape for n in model.prunable()}
        masks = random_erk(shapes, 600, torch.Generator().manual_seed(seed + k))
        hook = Watched(growth, SPEC.steps, interval=50, seed=seed + k, round=1)
        members.append(Member(model, SPEC, seed + k, masks, mask_update=hook))
    results = train_members(members, data, total_steps=SPEC.steps, checkpointer=checkpointer,
                            stacked=stacked)
    return members, results


@pytest.mark.timeout(300)
@pytest.mark.parametrize("growth", ["random", "gradient"])
@pytest.mark.parametrize("stacked", [False, True])
def test_sparse_training_keeps_the_count_and_follows_the_cosine(data, growth, stacked):
    members, results = _sparse_run(data, growth, stacked=stacked, count=2 if stacked else 1)
    for member, result in zip(members, results):
        hook = member.mask_update
        assert result.outcome == "finished"
        steps = [int(r[0]) for r in hook.log]
        assert steps == [50, 100, 150, 200, 250]  # every ΔT, strictly before 75% of 400
        for step, fraction, moved, nonzero in hook.log:
            assert fraction == pytest.approx(0.15 * (1 + math.cos(math.pi * step / 300)))
            assert nonzero == 600 and moved > 0
        assert hook.fraction(300) == 0.0 and not hook.due(300) and not hook.due(350)
        assert sum(int(m.sum()) for m in member.masks.values()) == 600  # written back
        params = dict(member.model.named_parameters())
        assert all(bool((params[n][~m] == 0).all()) for n, m in member.masks.items())


@pytest.mark.timeout(300)
def test_same_seed_same_mask_other_seed_other_mask(data):
    (a,), _ = _sparse_run(data, "random", seed=0)
    (b,), _ = _sparse_run(data, "random", seed=0)
    (c,), _ = _sparse_run(data, "random", seed=5)
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    assert any(not torch.equal(a.masks[n], c.masks[n]) for n in a.masks)


class MemoryCheckpointer(Checkpointer):
    def __init__(self, every, stop_after=None):
        super().__init__(every)
        self.saved, self.stop_after = None, stop_after

    def load(self):
        return self.saved

    def save(self, state):
        self.saved = _clone(state)
        if self.stop_after is not None and state["state"]["step"] >= self.stop_after:
            raise KeyboardInterrupt


def _clone(tree):
    if torch.is_tensor(tree):
        return tree.clone()
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_clone(v) for v in tree]
    return tree


@pytest.mark.timeout(300)
@pytest.mark.parametrize("stacked", [False, True])
def test_resuming_gives_the_same_mask_and_weights(data, stacked):
    """Killed after step 120 (two updates done), resumed from a fresh init: the mask, the
    weights and the update log end as an uninterrupted run's."""
    count = 2 if stacked else 1
    expected, _ = _sparse_run(data, "gradient", stacked=stacked, count=count)
    killed = MemoryCheckpointer(every=60, stop_after=120)
    with pytest.raises(KeyboardInterrupt):
        _sparse_run(data, "gradient", stacked=stacked, count=count, checkpointer=killed)
    resume = MemoryCheckpointer(every=60)
    resume.saved = killed.saved
    resumed, _ = _sparse_run(data, "gradient", stacked=stacked, count=count,
                             checkpointer=resume)
    for a, b in zip(expected, resumed):
        assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
        assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(),
                                                     b.model.state_dict().values()))
        assert a.mask_update.log == b.mask_update.log


# -- the arms ----------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_every_train_small_arm_trains_at_the_rounds_count(data):
    """Each arm at round 2 keeps exactly the IMP round's survivors; the shuffle ablation keeps
    each layer's count, the reinit ablation the mask; set and rigl start from random_erk's
    mask and end with the same count."""
    from study.specs import ArmOptions, DenseSpec, ModelSpec, PruneSpec, TrialSpec
    from study.trial import run_trial

    dense = DenseSpec(model=ModelSpec(hidden=(32, 32)),
                      train=TrainSpec(steps=200, batch_size=100, eval_every=100), seed=0)
    plan = PruneSpec(rate=0.5, output_rate=0.25, rounds=2)
    store = {}

    def run(spec):
        record = run_trial(spec, lambda s, name: store[(s.id, name)])
        store.update({(spec.id, k): v for k, v in record.artifacts.items()})
        return record

    run(TrialSpec(stage="dense", arm="dense", dense=dense))
    imp = [run(TrialSpec(stage="imp", arm="lottery", round=r, dense=dense, prune=plan))
           for r in (1, 2)][-1]
    records = {a: run(TrialSpec(stage="arm", arm=a, round=2, dense=dense, prune=plan))
               for a in TRAIN_SMALL_ARMS}
    for arm, record in records.items():
        assert record.outcome == "finished"
        assert record.metrics["nonzero_weights"] == imp.metrics["nonzero_weights"], arm
        assert record.params["trained.mask_criterion"].startswith(
            "random" if arm == "set" or arm == "set_b" else
            "gradient" if arm in SPARSE_ARMS else arm)
        densities = [v for k, v in record.metrics.items() if k.startswith("layer_density.")]
        assert len(densities) == 3 and all(0 < d <= 1 for d in densities)
    from study.words import describe

    for arm in SPARSE_ARMS:
        log = records[arm].artifacts["mask_updates.pt"]
        assert (log["nonzero"] == imp.metrics["nonzero_weights"]).all()
        words = describe(TrialSpec(stage="arm", arm=arm, round=2, dense=dense, prune=plan),
                         records[arm])
        assert (f"{len(log['step'])} mask updates moved {int(log['moved'].sum())} weights, the "
                f"nonzero count {int(imp.metrics['nonzero_weights'])} at each.") in words
    assert records["set_b"].metrics["train_steps"] > records["set"].metrics["train_steps"]
    snip = records["snip"]
    ablated = run(TrialSpec(stage="arm", arm="snip", round=2, dense=dense, prune=plan,
                            options=ArmOptions(mask_shuffle=True)))
    same = {k: v for k, v in snip.metrics.items() if k.startswith("layer_density.")}
    assert same == {k: v for k, v in ablated.metrics.items() if k.startswith("layer_density.")}
    assert ablated.metrics["final_test_acc"] != snip.metrics["final_test_acc"]


def test_shuffle_keeps_counts_and_moves_weights():
    mask = {"w": torch.rand(30, 30, generator=torch.Generator().manual_seed(0)) < 0.2}
    shuffled = random_like(mask, torch.Generator().manual_seed(1))
    assert int(shuffled["w"].sum()) == int(mask["w"].sum())
    assert not torch.equal(shuffled["w"], mask["w"])


def test_bad_train_small_input_is_refused_naming_the_field():
    from pydantic import ValidationError

    from study.specs import ArmOptions, DenseSpec, PruneSpec, TrialSpec

    dense = DenseSpec(train=TrainSpec(steps=10))
    with pytest.raises(ValidationError, match="options.mask_shuffle: only the snip, grasp, "
                                              "synflow, random_erk arm"):
        TrialSpec(stage="arm", arm="reinit", round=1, dense=dense, prune=PruneSpec(rounds=1),
                  options=ArmOptions(mask_shuffle=True))
    with pytest.raises(ValidationError, match="'rigl' masks single weights"):
        TrialSpec(stage="arm", arm="rigl", round=1, dense=dense,
                  prune=PruneSpec(granularity="structured", criterion="l1_filter", rounds=1))
    with pytest.raises(ValueError, match="growth: 'sideways'"):
        MaskUpdate("sideways", 100)
