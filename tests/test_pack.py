"""Packed training: K members in one stacked model see and learn exactly what each sees alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from bench.timing import torch_threads
from bench.trainer import synthetic_splits
from study.data import load_data
from study.data.augment import crop_flip
from study.execution import Execution
from study.models import build_model
from study.models.base import seeded
from study.models.convnets import ConvNet
from study.specs import TrainSpec
from study.stacked import Stacked, StackedOptimizer
from study.train import BatchOrder, Checkpointer, Member, evaluate, train_members

CONTIGUOUS = Execution(channels_last=False)  # the solo reference in the pack's memory layout
STEPS = 50


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """A trial's default (1 CPU): small nets on a shared machine slow down with more threads."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def mnist1d():
    return load_data("mnist1d")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _masks(model, seed: int, density: float = 0.5):
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return {n: torch.rand(params[n].shape, generator=gen) < density for n in model.prunable()}


def _members(build, specs_and_seeds, masked=()):
    out = []
    for i, (spec, seed) in enumerate(specs_and_seeds):
        model = build(seed)
        out.append(Member(model, spec, seed, masks=_masks(model, seed) if i in masked else None))
    return out


def _train_only(data):
    """The splits without validation and test: a loss per step (eval_every=1) costs no eval."""
    return replace(data, x_val=data.x_val[:0], y_val=data.y_val[:0], x_test=data.x_test[:0],
                   y_test=data.y_test[:0])


def _solo_and_packed(build, data, specs_and_seeds, masked=(), steps=STEPS):
    data = _train_only(data)
    solo = [train_members([m], data, total_steps=steps, execution=CONTIGUOUS)[0]
            for m in _members(build, specs_and_seeds, masked)]
    packed = train_members(_members(build, specs_and_seeds, masked), data, total_steps=steps,
                           execution=CONTIGUOUS)
    return solo, packed


def _assert_same_losses(solo, packed, rel=1e-4):
    for alone, member in zip(solo, packed):
        a = [r["train_loss"] for r in alone.curves]
        b = [r["train_loss"] for r in member.curves]
        assert len(a) == len(b) == STEPS
        assert b == pytest.approx(a, rel=rel)


def _mlp(seed):
    return build_model("mlp", (40,), 10, hidden=(32, 32), seed=seed)


# -- the optimizer ---------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("spec", [
    TrainSpec(optimizer="sgd", momentum=0.9, steps=1),
    TrainSpec(optimizer="sgd", momentum=0.9, nesterov=True, steps=1),
    TrainSpec(optimizer="sgd", momentum=0.0, steps=1),
    TrainSpec(optimizer="adam", steps=1),
], ids=["sgd-momentum", "sgd-nesterov", "sgd-plain", "adam"])
def test_stacked_optimizer_follows_torch_optim_per_member(spec):
    """Each row of the (K, P) matrix moves exactly as torch.optim moves that member alone, at
    its own lr and weight decay."""
    gen = torch.Generator().manual_seed(0)
    lrs, decays = [0.1, 0.01, 0.3], [0.0, 1e-3, 5e-2]
    start = torch.randn(3, 20, generator=gen)
    grads = [torch.randn(3, 20, generator=gen) for _ in range(6)]
    stacked = start.clone().requires_grad_()
    opt = StackedOptimizer(spec, stacked, torch.tensor(decays).unsqueeze(1))
    for step, grad in enumerate(grads):
        stacked.grad = grad.clone()
        scale = 1.0 / (1 + step)  # a schedule: the lr changes every step
        opt.step(torch.tensor(lrs).unsqueeze(1) * scale)
    for k, (lr, decay) in enumerate(zip(lrs, decays)):
        p = start[k].clone().requires_grad_()
        if spec.optimizer == "adam":
            ref = torch.optim.Adam([p], lr=lr, weight_decay=decay)
        else:
            ref = torch.optim.SGD([p], lr=lr, momentum=spec.momentum, nesterov=spec.nesterov,
                                  weight_decay=decay)
        for step, grad in enumerate(grads):
            p.grad = grad[k].clone()
            ref.param_groups[0]["lr"] = lr * (1.0 / (1 + step))
            ref.step()
        torch.testing.assert_close(stacked[k].detach(), p.detach(), rtol=1e-6, atol=1e-7)


# -- what a member sees ----------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_member_sees_its_own_theta0_batches_augmentation_and_mask():
    data = synthetic_splits((3, 8, 8), 96, seed=0)
    data.augment = crop_flip((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), pad=2)
    spec = TrainSpec(batch_size=16, steps=10)
    build = lambda seed: build_model("conv2", (3, 8, 8), 10, width=0.125, seed=seed)  # noqa: E731
    members = _members(build, [(spec, 3), (spec, 7)], masked=(1,))
    engine = Stacked(members, data, 10, CONTIGUOUS)
    engine.start()
    params = engine.params()
    for row, member in enumerate(members):
        for name, p in member.model.named_parameters():
            expected = p.detach() * member.masks[name] if member.masks and name in \
                member.masks else p.detach()
            assert torch.equal(params[name][row], expected), name
    for step in (0, 5, 9):  # step 6 starts the second epoch: a new permutation
        x, y = engine.batch(step)
        for row, member in enumerate(members):
            idx = BatchOrder(96, 16, member.seed, data.x_train.device)(step)
            gen = torch.Generator().manual_seed(member.seed * 1_000_003 + step)
            assert torch.equal(x[row], data.augment(data.x_train[idx], gen))
            assert torch.equal(y[row], data.y_train[idx])
    engine.step(0)
    params = engine.params()
    for name, keep in members[1].masks.items():
        assert (params[name][1][~keep] == 0).all(), name
    assert (params["convs.0.weight"][0] != 0).all()  # the unmasked member keeps every weight


@pytest.mark.timeout(120)
def test_mlp_members_with_their_own_lr_schedule_and_mask_learn_as_alone(mnist1d):
    """Per-member lr, weight decay and schedule in one pack; losses equal the solo runs'."""
    base = TrainSpec(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=100, steps=STEPS,
                     eval_every=1)
    specs = [(base, 0),
             (base.model_copy(update={"lr": 0.2, "weight_decay": 1e-3}), 1),
             (base.model_copy(update={"lr": 0.01, "schedule": "cosine", "warmup_steps": 10}), 0)]
    solo, packed = _solo_and_packed(_mlp, mnist1d, specs, masked=(1, 2))
    _assert_same_losses(solo, packed)
    assert len({r.curves[-1]["train_loss"] for r in packed}) == 3  # three different trials


@pytest.mark.timeout(120)
def test_adam_mlp_pack_learns_as_alone(mnist1d):
    base = TrainSpec(optimizer="adam", lr=1e-3, batch_size=60, steps=STEPS, eval_every=1)
    specs = [(base, 0), (base.model_copy(update={"lr": 3e-3, "weight_decay": 1e-4}), 1)]
    solo, packed = _solo_and_packed(_mlp, mnist1d, specs, masked=(0,))
    _assert_same_losses(solo, packed)


@pytest.mark.timeout(180)
def test_conv_members_learn_as_alone(digits):
    build = lambda seed: build_model("conv2", (1, 8, 8), 10, width=0.25, seed=seed)  # noqa: E731
    base = TrainSpec(lr=0.05, batch_size=32, steps=STEPS, eval_every=1)
    specs = [(base, 0), (base.model_copy(update={"lr": 0.02}), 1)]
    solo, packed = _solo_and_packed(build, digits, specs, masked=(1,))
    _assert_same_losses(solo, packed)


def _vgg_style(seed):
    """The VGG family's net (conv + BatchNorm + global pool) at a size for 8x8 digits."""
    return seeded(lambda: ConvNet((1, 8, 8), 10, [16, "M", 32, "M"], [16, 32], batchnorm=True,
                                  global_pool=True), seed)


@pytest.mark.timeout(240)
def test_batchnorm_members_keep_their_own_statistics(digits):
    """(ResNet-20 at width 0.25 on 8x8 digits is no use here: BatchNorm channels of near-zero
    variance amplify rounding differences, so even two summation orders drift apart.)"""
    build = _vgg_style
    base = TrainSpec(lr=0.02, batch_size=32, steps=STEPS, eval_every=1, weight_decay=1e-4)
    specs = [(base, 0), (base.model_copy(update={"lr": 0.01}), 1)]
    train_data = _train_only(digits)
    solo_members = _members(build, specs)
    solo = [train_members([m], train_data, total_steps=STEPS, execution=CONTIGUOUS)[0]
            for m in solo_members]
    members = _members(build, specs)
    packed = train_members(members, train_data, total_steps=STEPS, execution=CONTIGUOUS)
    _assert_same_losses(solo, packed)
    for alone, member in zip(solo_members, members):  # statistics written back per member
        a, b = alone.model.state_dict(), member.model.state_dict()
        for name in ("bns.0.running_mean", "bns.1.running_var"):
            torch.testing.assert_close(b[name], a[name], rtol=1e-3, atol=1e-4)
        assert int(b["bns.1.num_batches_tracked"]) == STEPS
    engine = Stacked(members, digits, STEPS, CONTIGUOUS)  # packed evaluation, eval mode
    for alone, (loss, acc) in zip(solo_members, engine.evaluate(digits.x_test, digits.y_test)):
        solo_loss, solo_acc = evaluate(alone.model, digits.x_test, digits.y_test)
        assert loss == pytest.approx(solo_loss, rel=1e-4) and acc == solo_acc


# -- faults and resumes ----------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_a_diverging_member_is_dropped_and_the_others_numbers_do_not_change(mnist1d):
    base = TrainSpec(optimizer="sgd", lr=0.005, momentum=0.99, nesterov=True, batch_size=100,
                     steps=200, eval_every=20)
    wild = base.model_copy(update={"lr": 10.0})
    calm = [(base, 1), (base.model_copy(update={"lr": 0.01}), 3)]
    without = train_members(_members(_mlp, calm), mnist1d, total_steps=200, execution=CONTIGUOUS)
    with_wild = train_members(_members(_mlp, [calm[0], (wild, 0), calm[1]]), mnist1d,
                              total_steps=200, execution=CONTIGUOUS)
    diverged = with_wild[1]
    assert diverged.outcome == "diverged"
    assert diverged.diverged_step == 20  # seen at the first sync (an evaluation)
    assert diverged.curves == []  # no row once non-finite
    assert [r.outcome for r in (with_wild[0], with_wild[2])] == ["finished", "finished"]
    assert with_wild[0].curves == without[0].curves
    assert with_wild[2].curves == without[1].curves


class MemoryCheckpointer(Checkpointer):
    def __init__(self, every, stop_after=None):
        super().__init__(every)
        self.saved, self.stop_after = None, stop_after

    def load(self):
        return self.saved

    def save(self, state):
        self.saved = torch.utils._pytree.tree_map(
            lambda v: v.clone() if isinstance(v, torch.Tensor) else v, state)
        if self.stop_after is not None and state["state"]["step"] >= self.stop_after:
            raise KeyboardInterrupt  # the process dies right after a checkpoint


@pytest.mark.timeout(120)
def test_a_resumed_pack_continues_every_member_exactly_where_it_was(mnist1d):
    base = TrainSpec(optimizer="sgd", lr=0.005, momentum=0.99, nesterov=True, batch_size=100,
                     steps=150, eval_every=30, schedule="cosine")
    specs = [(base, 1), (base.model_copy(update={"lr": 10.0}), 0),
             (base.model_copy(update={"lr": 0.01, "weight_decay": 1e-3}), 2)]
    expected = train_members(_members(_mlp, specs), mnist1d, total_steps=150)
    killed = MemoryCheckpointer(every=60, stop_after=120)
    with pytest.raises(KeyboardInterrupt):
        train_members(_members(_mlp, specs), mnist1d, total_steps=150, checkpointer=killed)
    resume = MemoryCheckpointer(every=60)
    resume.saved = killed.saved
    fresh = _members(_mlp, [(s, seed + 50) for s, seed in specs])  # weights come from the file
    for m, (_, seed) in zip(fresh, specs):
        m.seed = seed
    resumed = train_members(fresh, mnist1d, total_steps=150, checkpointer=resume)
    assert [r.resumed_from for r in resumed] == [120] * 3
    assert expected[1].outcome == "diverged" and expected[1].diverged_step < 120  # before the kill
    for a, b in zip(expected, resumed):
        assert (a.outcome, a.curves, a.diverged_step) == (b.outcome, b.curves, b.diverged_step)
