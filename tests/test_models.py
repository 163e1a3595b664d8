"""Models: the parameter counts the papers quote, widths, seeded θ0, FLOPs with masks."""

import pytest
import torch

from study.models import MODELS, build_model, count

CIFAR = (3, 32, 32)


def test_lenet_300_100_has_the_papers_weight_count():
    counts = count(build_model("mlp", (1, 28, 28), 10))
    assert counts.total_weights == 266_200
    assert counts.total_params == 266_200 + 410  # biases 300 + 100 + 10 (docs/science.md)


@pytest.mark.parametrize("name,weights", [("conv2", 4_300_992), ("conv4", 2_425_024),
                                          ("conv6", 2_261_184)])
def test_lth_conv_nets_match_the_paper(name, weights):
    """LTH Fig. 2: Conv-2 4.3M, Conv-4 2.4M; its Conv-6 "1.7M" does not follow from the stated
    layers (64,64,P,128,128,P,256,256,P, FC 256,256,10 on 32x32 gives 2.26M), pinned here."""
    assert count(build_model(name, CIFAR, 10)).total_weights == weights


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_runs_and_width_scales_it(name):
    shape = (40,) if name == "mlp" else CIFAR
    small = build_model(name, shape, 10, width=0.25)
    assert small(torch.randn(2, *shape)).shape == (2, 10)
    if not name.startswith("resnet1"):
        half = count(build_model(name, shape, 10, width=0.5)).total_weights
        assert count(small).total_weights < half


def test_theta0_is_a_function_of_the_seed_alone():
    a, b, c = (build_model("mlp", (40,), 10, seed=s) for s in (3, 3, 4))
    for (n, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), n
        if pa.dim() > 1:
            assert not torch.equal(pa, pc)


def test_flops_count_only_unmasked_weights():
    model = build_model("mlp", (40,), 10, hidden=(20,))
    masks = {n: torch.rand(p.shape) < 0.25 for n, p in model.named_parameters()
             if n in model.prunable()}
    dense, pruned = count(model), count(model, masks)
    assert dense.flops == 40 * 20 + 20 * 10
    kept = sum(int(m.sum()) for m in masks.values())
    assert pruned.nonzero_weights == kept
    assert pruned.nonzero_flops == pytest.approx(kept, abs=2)
    assert pruned.total_params == dense.total_params


def _std_close(tensor, expected, name):
    """Sample std within 4 standard errors (rel. SE of a std: 1/sqrt(2n)), at least 5%."""
    tolerance = max(0.05, 4 / (2 * tensor.numel()) ** 0.5)
    assert tensor.float().std().item() == pytest.approx(expected, rel=tolerance), name


@pytest.mark.parametrize("name,shape", [("mlp", (40,)), ("conv2", CIFAR), ("conv4", CIFAR)])
def test_lth_nets_use_gaussian_glorot(name, shape):
    """Frankle & Carbin (2019), LeNet and Conv-2/4/6: "Gaussian Glorot" init, i.e. every
    weight N(0, 2/(fan_in + fan_out)), biases zero."""
    model = build_model(name, shape, 10, width=0.5, seed=1)
    for layer in model.modules():
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
            field = layer.weight[0, 0].numel()
            fan_in, fan_out = layer.weight.shape[1] * field, layer.weight.shape[0] * field
            _std_close(layer.weight, (2 / (fan_in + fan_out)) ** 0.5, layer)
            assert (layer.bias == 0).all()


def test_vgg_uses_the_rethinking_codes_init():
    """The Rethinking code's CIFAR VGG (cifar/network-slimming/models/vgg.py, the same net as
    ours): conv N(0, 2/(3·3·out_channels)), BN γ = 0.5, β = 0, and the Linear N(0, 0.01²) with
    zero bias (not a fan_out Kaiming std of 0.447 on a 10-way layer)."""
    model = build_model("vgg11", CIFAR, 10, width=0.5, seed=1)
    for conv in model.convs:
        _std_close(conv.weight, (2 / (9 * conv.out_channels)) ** 0.5, conv)
    for bn in model.bns:
        assert (bn.weight == 0.5).all() and (bn.bias == 0).all()
    (fc,) = model.fcs
    _std_close(fc.weight, 0.01, fc)
    assert (fc.bias == 0).all()


def test_resnet_uses_open_lths_init():
    """open_lth's CIFAR ResNet (models/cifar_resnet.py defaults: kaiming_normal, batchnorm
    uniform; the same net with 1x1 projection shortcuts): every conv and linear weight
    N(0, 2/fan_in), BN γ ~ U[0, 1), β = 0, and the fc bias at PyTorch's U(±1/√fan_in)."""
    model = build_model("resnet20", CIFAR, 10, seed=1)
    for name, layer in model.named_modules():
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
            _std_close(layer.weight, (2 / layer.weight[0].numel()) ** 0.5, name)
        if isinstance(layer, torch.nn.BatchNorm2d):
            assert layer.weight.min() >= 0 and layer.weight.max() < 1 and (layer.bias == 0).all()
    gammas = torch.cat([m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert gammas.mean().item() == pytest.approx(0.5, abs=0.05)
    assert 0 < model.fc.bias.abs().max() <= 64 ** -0.5
