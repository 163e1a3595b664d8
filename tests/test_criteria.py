"""Data-dependent criteria (obd, fisher, taylor, apoz) and the weight-agnostic arm.

Each criterion is checked against an independent reference on a tiny net: autograd's full Hessian
for OBD, per-sample autograd loops for the Fisher and Taylor scores, finite differences for a
unit's Taylor score, hand-built activations for APoZ. Then every criterion runs through
`run_trial` on a tiny MNIST-1D chain, both schedules.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from study.models import build_model
from study.pruning import draw_batches, initial_mask, prune_units, prune_weights
from study.pruning import saliency as rules
from study.pruning.hessian import hessian_diagonal
from study.pruning.registry import CRITERIA, GRANULARITIES, Scoring
from study.specs import PruneSpec

GEN = torch.Generator().manual_seed(0)


def tiny(seed: int = 0) -> tuple[nn.Module, list]:
    """A 3-3-2 ReLU MLP (15 weights) in float64 with non-zero biases, and 3 batches of 8."""
    model = build_model("mlp", (3,), 2, hidden=(3,), seed=seed).double()
    with torch.no_grad():
        for layer in model.layers:
            layer.bias.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed + 1)
    x, y = torch.randn(24, 3, generator=gen, dtype=torch.float64), torch.arange(24) % 2
    return model, draw_batches(x, y, 3, 8, torch.Generator().manual_seed(2))


def weights(model) -> list[str]:
    return list(model.prunable())


def autograd_hessian_diagonal(model, batches) -> dict[str, torch.Tensor]:
    """Brute force: the full 15x15 Hessian of the mean loss, per batch, by torch.autograd."""
    names, params = weights(model), dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    flat0 = torch.cat([params[n].detach().flatten() for n in names])

    def loss(flat, x, y):
        parts = dict(zip(names, (t.view(s) for t, s in zip(flat.split(
            [s.numel() for s in shapes]), shapes))))
        return nn.functional.cross_entropy(functional_call(model, parts, (x,)), y)

    diag = sum(torch.autograd.functional.hessian(lambda f, x=x, y=y: loss(f, x, y), flat0)
               .diagonal() for x, y in batches) / len(batches)
    return dict(zip(names, (t.view(s) for t, s in zip(diag.split(
        [s.numel() for s in shapes]), shapes))))


def test_exact_and_gauss_newton_hessian_diagonals_match_autograd():
    model, batches = tiny()
    reference = autograd_hessian_diagonal(model, batches)
    for method in ("exact", "gauss_newton"):  # equal for ReLU nets without BatchNorm
        got = hessian_diagonal(model, weights(model), batches, method, GEN)
        for n in reference:
            torch.testing.assert_close(got[n], reference[n], rtol=1e-6, atol=1e-9)


def test_hutchinson_is_an_unbiased_estimate_of_the_diagonal(monkeypatch):
    model, batches = tiny()
    reference = autograd_hessian_diagonal(model, batches)
    monkeypatch.setattr("study.pruning.hessian.HUTCHINSON_PROBES", 300)
    got = hessian_diagonal(model, weights(model), batches, "hutchinson",
                           torch.Generator().manual_seed(3))
    ref, est = (torch.cat([d[n].flatten() for n in reference]) for d in (reference, got))
    assert (est - ref).abs().max() < 0.15 * ref.abs().max()


def test_obd_prunes_the_lowest_half_h_w_squared_of_each_layer():
    model, batches = tiny()
    h, params = autograd_hessian_diagonal(model, batches), dict(model.named_parameters())
    plan = PruneSpec(criterion="obd", hessian="exact", rate=0.4)
    mask = prune_weights(plan, 1, model, model, initial_mask(plan, model), GEN, batches=batches)
    for n in h:
        saliency = (0.5 * h[n] * params[n].detach() ** 2).flatten()
        dropped = set(saliency.argsort()[: round(0.4 * saliency.numel())].tolist())
        assert {i for i, keep in enumerate(mask[n].flatten().tolist()) if not keep} == dropped


def per_sample_loop(model, batches, label_of=None):
    """Brute force: one backward pass per sample (label_of(n) overrides the true label)."""
    params = [dict(model.named_parameters())[n] for n in weights(model)]
    fisher = [torch.zeros_like(p) for p in params]
    count = sum(len(y) for _, y in batches)
    for x, y in batches:
        for i in range(len(y)):
            loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
            for acc, g in zip(fisher, torch.autograd.grad(loss, params)):
                acc += g**2 / count
    return dict(zip(weights(model), fisher))


def test_fisher_is_half_the_mean_squared_per_sample_gradient_times_w_squared():
    model, batches = tiny()
    fisher, params = per_sample_loop(model, batches), dict(model.named_parameters())
    got = rules.fisher(model, weights(model), batches)
    for n in fisher:
        torch.testing.assert_close(got[n], 0.5 * fisher[n] * params[n].detach() ** 2)


def test_taylor_weights_average_the_per_batch_first_order_term():
    model, batches = tiny()
    params = dict(model.named_parameters())
    expected = {n: 0.0 for n in weights(model)}
    for x, y in batches:
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        for n in expected:
            expected[n] = expected[n] + (params[n] * params[n].grad).abs().detach() / 3
    got = rules.taylor_weights(model, weights(model), batches)
    for n in expected:
        torch.testing.assert_close(got[n], expected[n])


def dead_and_alive(model) -> nn.Module:
    """Hidden unit 1 never fires (bias -100), unit 0 always does (bias +100), unit 2 fires for
    x_0 > 0 only: half the time on symmetric inputs."""
    with torch.no_grad():
        first = model.layers[0]
        first.weight.zero_()
        first.weight[2, 0] = 1.0
        first.bias.copy_(torch.tensor([100.0, -100.0, 0.0], dtype=first.bias.dtype))
    return model


def test_taylor_gives_a_dead_unit_and_its_outgoing_weights_zero():
    model, batches = tiny()
    dead_and_alive(model)
    scores = rules.taylor_weights(model, weights(model), batches)
    assert scores["layers.1.weight"][:, 1].abs().max() == 0  # no gradient through a dead unit
    units = rules.taylor_units(model, batches)["layers.0"]
    assert units[1] == 0 and units[0] > 0


def test_apoz_counts_zero_activations_by_hand():
    model = dead_and_alive(build_model("mlp", (3,), 2, hidden=(3,)))
    x = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [2.0, 1, 1], [-2.0, 1, 1]])
    scores = rules.apoz(model, [(x, torch.zeros(4, dtype=torch.long))])["layers.0"]
    assert scores.tolist() == [1.0, 0.0, 0.5]  # fraction of samples where the unit is non-zero
    plan = PruneSpec(granularity="structured", criterion="apoz", rate=0.6)
    mask = prune_units(plan, 1, model, initial_mask(plan, model), GEN, [(x, x[:, 0].long())])
    assert mask["layers.0"].tolist() == [True, False, False]  # never active goes first


def test_apoz_of_a_batchnorm_conv_is_measured_after_bn_and_relu():
    model = build_model("vgg11", (3, 32, 32), 10, width=0.125, seed=1).eval()
    with torch.no_grad():
        model.bns[0].bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    post = torch.relu(model.bns[0](model.convs[0](x)))  # (B, C, H, W) as the forward computes
    expected = 1.0 - (post == 0).float().mean((0, 2, 3))
    got = rules.apoz(model, [(x, torch.zeros(4, dtype=torch.long))])["convs.0"]
    torch.testing.assert_close(got, expected)


def scaled_unit_losses(model, batches, unit: int, t: float) -> list[float]:
    """Per-batch losses with hidden unit `unit`'s gate (its row and bias) scaled by t."""
    layer = model.layers[0]
    with torch.no_grad():
        saved = layer.weight[unit].clone(), layer.bias[unit].clone()
        layer.weight[unit] *= t
        layer.bias[unit] *= t
        losses = [float(nn.functional.cross_entropy(model(x), y)) for x, y in batches]
        layer.weight[unit], layer.bias[unit] = saved
    return losses


def test_unit_taylor_is_the_derivative_of_scaling_the_units_gate():
    model, batches = tiny()
    got, eps = rules.taylor_units(model, batches)["layers.0"], 1e-6
    for unit in range(3):  # d/dt L(t·gate) at t=1 is Σ w·∂L/∂w over the gate
        up, down = (scaled_unit_losses(model, batches, unit, 1 + s * eps) for s in (1, -1))
        slopes = [(a - b) / (2 * eps) for a, b in zip(up, down)]
        assert float(got[unit]) == pytest.approx(sum(map(abs, slopes)) / len(slopes), rel=1e-4)


def test_taylor_with_batchnorm_ranks_the_bn_gate_and_obd_runs_on_it():
    model = build_model("vgg11", (3, 32, 32), 10, width=0.0625, seed=1)
    gen = torch.Generator().manual_seed(0)
    batches = draw_batches(torch.randn(4, 3, 32, 32, generator=gen), torch.arange(4), 2, 2, gen)
    units = rules.taylor_units(model, batches)
    assert {g.name for g in model.unit_groups()} == set(units)
    assert all(s.shape == (g.size,) for g, s in zip(model.unit_groups(), units.values()))
    assert model.training  # scoring left the training mode as it found it
    scores = rules.obd(model, weights(model), batches, "gauss_newton", GEN)
    assert all(bool((s >= 0).all()) for s in scores.values())  # Gauss-Newton is positive


def test_exact_hessian_refuses_a_large_net():
    model = build_model("mlp", (40,), 10, hidden=(100, 100))
    batches = [(torch.randn(2, 40), torch.tensor([0, 1]))]
    with pytest.raises(ValueError, match="prune.hessian.*exact.*gauss_newton"):
        hessian_diagonal(model, weights(model), batches, "exact", GEN)


def test_data_criteria_need_batches():
    model, _ = tiny()
    plan = PruneSpec(criterion="fisher")
    with pytest.raises(ValueError, match="training batches"):
        prune_weights(plan, 1, model, model, initial_mask(plan, model), GEN)


def test_draw_batches_is_seeded_and_distinct_within_an_epoch():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    a = draw_batches(x, y, 3, 3, torch.Generator().manual_seed(5))
    b = draw_batches(x, y, 3, 3, torch.Generator().manual_seed(5))
    assert all(torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert len(set(torch.cat([yy for _, yy in a]).tolist())) == 9


@pytest.mark.parametrize("fields,needles", [
    ({"criterion": "apoz"}, ["prune.criterion", "apoz", "unstructured", "structured"]),
    ({"granularity": "structured", "criterion": "obd"}, ["prune.criterion", "obd", "unstructured"]),
    ({"granularity": "structured", "criterion": "fisher"}, ["prune.criterion", "fisher"]),
    ({"criterion": "magnitude", "hessian": "exact"}, ["prune.hessian", "obd", "magnitude"]),
    ({"criterion": "taylor", "hessian": "hutchinson"}, ["prune.hessian", "obd"]),
    ({"criterion": "random", "saliency_batches": 4}, ["prune.saliency_batches", "random"]),
    ({"criterion": "obd", "hessian": "diagonal"}, ["hessian", "gauss_newton"]),
    ({"criterion": "fisher", "saliency_batches": 0}, ["saliency_batches", "greater than"]),
])
def test_bad_combinations_are_refused_naming_the_field(fields, needles):
    with pytest.raises(ValueError) as err:
        PruneSpec(**fields)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def test_new_fields_at_their_defaults_leave_ids_alone():
    assert PruneSpec(rate=0.3, rounds=3).canonical() == {"rate": 0.3, "rounds": 3}
    assert PruneSpec(criterion="obd", hessian="gauss_newton", saliency_batches=8).canonical() == {
        "criterion": "obd"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CRITERIA))
def test_each_registry_entry_scores_what_it_says_and_plans_accept_only_that(name):
    """The registry is the one list of criteria: a plan accepts a name at exactly the
    granularities its entry scores, and the entry reads only what it declares (training batches
    only where `data`; an MLP unless it `needs_batchnorm`)."""
    rule = CRITERIA[name]
    assert rule.granularities, name
    for granularity in GRANULARITIES:
        if granularity in rule.granularities:
            PruneSpec(granularity=granularity, criterion=name)
        else:
            with pytest.raises(ValueError, match=f"{name}.*{granularity}"):
                PruneSpec(granularity=granularity, criterion=name)
    model = (build_model("vgg11", (3, 8, 8), 4, width=0.0625, seed=0) if rule.needs_batchnorm
             else build_model("mlp", (6,), 4, hidden=(5,), seed=0))
    x = torch.randn(8, *((3, 8, 8) if rule.needs_batchnorm else (6,)), generator=GEN)
    batches = [(x, torch.arange(8) % 4)] if rule.data else None
    scoring = Scoring(model, torch.Generator().manual_seed(0), init=model, batches=batches)
    params = dict(model.named_parameters())
    if rule.weights is not None:
        scores = rule.weights(scoring)
        assert {n: s.shape for n, s in scores.items()} == {n: params[n].shape
                                                          for n in model.prunable()}
    if rule.units is not None:
        scores = rule.units(scoring)
        assert {n: s.shape for n, s in scores.items()} == {g.name: (g.size,)
                                                          for g in model.unit_groups()}
