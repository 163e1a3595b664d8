"""The training loop on real MNIST-1D: masks hold, runs reproduce, resume equals uninterrupted."""

from __future__ import annotations

import math

import pytest
import torch

from study.data import load_data
from study.models import build_model
from study.specs import TrainSpec
from study.train import Checkpointer, lr_at, train

SPEC = TrainSpec(optimizer="sgd", lr=0.05, batch_size=100, steps=120, eval_every=40)


@pytest.fixture(scope="module")
def data():
    return load_data("mnist1d")


def _model(seed=0):
    return build_model("mlp", (40,), 10, hidden=(32, 32), seed=seed)


def test_training_learns_and_keeps_curves(data):
    model = _model()
    result = train(model, data, SPEC, seed=0, total_steps=120)
    assert result.outcome == "finished" and [r["step"] for r in result.curves] == [40, 80, 120]
    summary = result.summary()
    assert summary["final_test_acc"] > 0.2  # well above chance (0.1) after 120 steps
    best = min(result.curves, key=lambda r: r["val_loss"])
    assert summary["early_stop_step"] == best["step"]
    assert summary["test_acc_at_best_val"] == best["test_acc"]


def test_masked_weights_stay_zero_through_training(data):
    model = _model()
    masks = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) < 0.3
             for n, p in model.named_parameters() if n in model.prunable()}
    train(model, data, SPEC.model_copy(update={"optimizer": "adam", "lr": 1e-2,
                                               "weight_decay": 1e-3}),
          seed=0, total_steps=60, masks=masks)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert (params[name][~mask] == 0).all(), name
        assert (params[name][mask] != 0).float().mean() > 0.99


def test_same_seed_same_numbers_other_seed_other_order(data):
    runs = [train(_model(), data, SPEC, seed=s, total_steps=120).curves for s in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


class MemoryCheckpointer(Checkpointer):
    def __init__(self, every=None, stop_after=None, seconds=None):
        super().__init__(every, seconds)
        self.saved, self.stop_after, self.steps = None, stop_after, []

    def load(self):
        return self.saved

    def save(self, state):
        self.steps.append(state["state"]["step"])
        self.saved = {"model": {k: v.clone() for k, v in state["model"].items()},
                      "optimizer": state["optimizer"], "state": dict(state["state"])}
        if self.stop_after is not None and state["state"]["step"] >= self.stop_after:
            raise KeyboardInterrupt  # the process dies right after a checkpoint


def test_resumed_run_ends_with_the_same_numbers(data):
    spec = SPEC.model_copy(update={"schedule": "cosine", "warmup_steps": 10})
    expected = train(_model(), data, spec, seed=3, total_steps=120)
    killed = MemoryCheckpointer(every=50, stop_after=50)
    with pytest.raises(KeyboardInterrupt):
        train(_model(), data, spec, seed=3, total_steps=120, checkpointer=killed)
    resume = MemoryCheckpointer(every=50)
    resume.saved = killed.saved
    model = _model(seed=99)  # the weights must come from the checkpoint, not from this init
    resumed = train(model, data, spec, seed=3, total_steps=120, checkpointer=resume)
    assert [r["step"] for r in resumed.curves] == [40, 80, 120]
    assert resumed.curves == expected.curves


def test_checkpoints_follow_the_clock_unless_steps_are_given(data):
    every_step = MemoryCheckpointer(seconds=1e-9)  # due whenever any time has passed
    train(_model(), data, SPEC, seed=0, total_steps=120, checkpointer=every_step)
    assert every_step.steps == list(range(1, 120))  # none at the end: the trial is done
    hourly = MemoryCheckpointer(seconds=3600.0)
    train(_model(), data, SPEC, seed=0, total_steps=120, checkpointer=hourly)
    assert hourly.steps == []
    by_steps = MemoryCheckpointer(every=50, seconds=1e-9)  # steps win over the clock
    train(_model(), data, SPEC, seed=0, total_steps=120, checkpointer=by_steps)
    assert by_steps.steps == [50, 100]


def test_replaying_k_steps_gives_the_dense_runs_theta_k(data):
    """What lets a lottery ticket rewind to θk without storing every dense step."""
    seen = MemoryCheckpointer(every=50)
    train(_model(), data, SPEC, seed=0, total_steps=120, checkpointer=seen)  # keeps step 100
    replay = _model()
    train(replay, data, SPEC, seed=0, total_steps=120, stop_step=100)
    for name, value in replay.state_dict().items():
        assert torch.equal(value, seen.saved["model"][name]), name


def test_schedules():
    step = TrainSpec(lr=1.0, steps=100, schedule="step", milestones=(0.5, 0.75), gamma=0.1)
    assert [lr_at(step, s, 100, 1.0) for s in (0, 49, 50, 75)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.01])
    warm = TrainSpec(lr=1.0, steps=100, warmup_steps=10, schedule="cosine")
    assert lr_at(warm, 0, 100, 1.0) == pytest.approx(0.1)
    assert lr_at(warm, 99, 100, 1.0) < 0.01
    assert lr_at(warm, 50, 100, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_divergence_is_an_outcome_not_a_crash(data):
    spec = SPEC.model_copy(update={"lr": 10.0, "momentum": 0.99, "nesterov": True})
    result = train(_model(), data, spec, seed=0, total_steps=400)
    assert result.outcome == "diverged"
    assert 0 < result.diverged_step <= 400
