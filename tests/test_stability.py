"""Stability to SGD noise: the noise seed, the two copies, the line between them (real nets).

The noise seed must move the batches and nothing else; two copies under one noise seed must
end bit for bit equal (barrier exactly 0); a linear model on separable data has no barrier; a
BatchNorm net's statistics are recomputed at every point of the line.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from fakedata import write_cifar
from torch import nn

from study import interpolate
from study.context import TrialContext
from study.data import Splits
from study.data.registry import DatasetInfo
from study.models import build_model
from study.plan import budget
from study.seeds import copy_noise
from study.space import Space, SpaceError, load_space
from study.specs import DenseSpec, ModelSpec, PruneSpec, TrainSpec, TrialSpec
from study.train import train
from study.trial import run_trial

DENSE = DenseSpec(model=ModelSpec(name="mlp", hidden=(32, 32)),
                  train=TrainSpec(lr=0.05, batch_size=100, steps=60, eval_every=30), seed=4)
PLAN = PruneSpec(rate=0.5, output_rate=0.25, rounds=1, rewind_step=10)


class MemoryStore:
    """Upstream artifacts by trial id: the tracking store's role, in memory."""

    def __init__(self):
        self.artifacts, self.metrics = {}, {}

    def fetch(self, spec, name):
        return self.artifacts[spec.id][name]

    def run(self, spec, as_spec=None):
        record = run_trial(spec, self.fetch)
        assert record.outcome == "finished", spec
        key = (as_spec or spec).id
        self.artifacts[key], self.metrics[key] = record.artifacts, record.metrics
        return record


@pytest.fixture(scope="module")
def chain():
    store = MemoryStore()
    store.run(TrialSpec(stage="dense", arm="dense", dense=DENSE))
    store.run(TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE, prune=PLAN))
    return store


def _line(round_: int) -> TrialSpec:
    plan = PLAN if round_ else PruneSpec(rewind_step=PLAN.rewind_step)
    return TrialSpec(stage="arm", arm="interpolation", round=round_, dense=DENSE, prune=plan)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(120)
def test_noise_seed_changes_the_batches_and_nothing_else(chain):
    base = TrialSpec(stage="dense", arm="dense", dense=DENSE)
    noisy = TrialSpec(stage="dense", arm="dense", dense=DENSE, noise_seed=7)
    assert base.data_seed == 4 and noisy.data_seed == 7 and noisy.id != base.id
    record = run_trial(noisy, chain.fetch)
    assert _same(record.artifacts["init.pt"], chain.fetch(base, "init.pt"))  # same θ0
    assert not _same(record.artifacts["final.pt"], chain.fetch(base, "final.pt"))
    # exactly the init seed's θ0 trained on noise seed 7's batches: nothing else moved
    model = TrialContext(base, chain.fetch).init_big(base.dense.seed)
    train(model, TrialContext(base, chain.fetch).data, DENSE.train, seed=7, total_steps=60)
    assert _same(model.state_dict(), record.artifacts["final.pt"])
    # an IMP round under another noise seed prunes to the same mask, from the same θk
    imp = TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE, prune=PLAN, noise_seed=7)
    other = run_trial(imp, chain.fetch).artifacts
    default = chain.artifacts[TrialSpec(stage="imp", arm="lottery", round=1, dense=DENSE,
                                        prune=PLAN).id]
    assert _same(other["mask.pt"], default["mask.pt"])
    assert _same(other["init.pt"], default["init.pt"])
    assert not _same(other["final.pt"], default["final.pt"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("round_", [0, 1])
def test_one_noise_seed_gives_bit_for_bit_endpoints_and_zero_barrier(chain, round_):
    line = _line(round_)
    copy_a, copy_b = line.parents()
    store = MemoryStore()
    store.artifacts = dict(chain.artifacts)
    first = store.run(copy_a)
    second = store.run(copy_a, as_spec=copy_b)  # a second training under copy A's noise seed
    assert _same(first.artifacts["final.pt"], second.artifacts["final.pt"])
    metrics = store.run(line).metrics
    assert metrics["barrier_test"] == 0.0 and metrics["barrier_val"] == 0.0
    assert len({metrics[f"path_test_error_{i:02d}"] for i in range(21)}) == 1


@pytest.mark.timeout(180)
@pytest.mark.parametrize("round_", [0, 1])
def test_two_noise_seeds_give_two_endpoints_and_a_recorded_path(chain, round_):
    line = _line(round_)
    copies = line.parents()
    assert [c.noise_seed for c in copies] == list(copy_noise(DENSE.seed))
    store = MemoryStore()
    store.artifacts = dict(chain.artifacts)
    ends = [store.run(c) for c in copies]
    assert all(r.metrics["train_steps"] == 60 - PLAN.rewind_step == budget(c)
               for r, c in zip(ends, copies))  # the plan's budget rule counts them right
    assert not _same(ends[0].artifacts["final.pt"], ends[1].artifacts["final.pt"])
    m = store.run(line).metrics
    assert m["train_steps"] == budget(line) == 0
    for split in ("test", "val"):
        errors = [m[f"path_{split}_error_{i:02d}"] for i in range(21)]
        assert m[f"barrier_{split}"] == pytest.approx(max(errors) - (errors[0] + errors[-1]) / 2)
    # the path's endpoints are the copies themselves (no BatchNorm: evaluated as trained)
    assert m["path_test_error_00"] == pytest.approx(1 - ends[0].metrics["final_test_acc"])
    assert m["path_test_error_20"] == pytest.approx(1 - ends[1].metrics["final_test_acc"])
    # pruned weights are zero in both copies, so on the whole line
    assert m["sparsity"] == pytest.approx(ends[0].metrics["sparsity"])
    assert (m["sparsity"] > 0) == (round_ > 0)


def _splits(x: torch.Tensor, y: torch.Tensor, name: str = "planted") -> Splits:
    n = len(y) // 3
    info = DatasetInfo(name, tuple(x.shape[1:]), int(y.max()) + 1, 2 * n, len(y) - 2 * n)
    return Splits(x[:n], y[:n], x[n : 2 * n], y[n : 2 * n], x[2 * n :], y[2 * n :], info)


@pytest.mark.timeout(60)
def test_planted_convex_case_a_linear_model_has_no_barrier():
    """Two separators of linearly separable data: every point between them separates too, and
    cross-entropy is convex in a linear model's weights (the loss stays below the chord)."""
    gen = torch.Generator().manual_seed(0)
    w_true = torch.randn(10, generator=gen)
    x = torch.randn(4000, 10, generator=gen)
    margin = x @ w_true / w_true.norm()
    x = x[margin.abs() > 0.5][:1500]
    y = (x @ w_true > 0).long()
    data = _splits(x, y)
    spec = TrainSpec(lr=0.5, momentum=0.0, batch_size=20, steps=400, eval_every=400)
    states = []
    for seed in (1, 2):  # one init, two noise seeds
        torch.manual_seed(0)
        model = nn.Linear(10, 2)
        train(model, data, spec, seed=seed, total_steps=400)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert not _same(*states)
    m, _ = interpolate.path(nn.Linear(10, 2), *states, data, batch_size=20)
    assert m["barrier_test"] <= 0 and m["barrier_val"] <= 0
    assert m["path_test_error_00"] == 0.0  # both copies separate the planted data
    losses = np.array([m[f"path_test_loss_{i:02d}"] for i in range(21)])
    chord = np.linspace(losses[0], losses[-1], 21)
    assert (losses <= chord + 1e-6).all()


@pytest.fixture
def one_thread():
    """Tiny conv nets on 2 threads can stall for minutes in oneDNN on a loaded CPU (see
    test_small_convnets); one thread is fast and the numbers do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _bn_net(seed: int) -> nn.Module:
    return build_model("resnet20", (3, 8, 8), 10, width=0.25, seed=seed)


@pytest.mark.timeout(120)
def test_batchnorm_statistics_are_recomputed_on_training_batches(one_thread):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 3, 8, 8, generator=gen) * 2 + 1, torch.randint(0, 10, (300,))
    model = _bn_net(0)
    batches = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 100, 50)]
    seen = []
    first = interpolate.batchnorms(model)[0]
    hook = first.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    model.eval()
    interpolate.recompute_bn(model, batches)
    hook.remove()
    assert not model.training  # the mode is restored
    means = torch.stack([s.mean((0, 2, 3)) for s in seen]).mean(0)
    variances = torch.stack([s.var((0, 2, 3), unbiased=True) for s in seen]).mean(0)
    assert torch.allclose(first.running_mean, means, atol=1e-5)
    assert torch.allclose(first.running_var, variances, atol=1e-4)

    # along the path: the statistics a state carries leave no trace, every point gets its own
    data = _splits(x, y, "noise")
    a, b = _bn_net(1).state_dict(), _bn_net(2).state_dict()
    spoiled = {k: v * 100 + 7 if "running" in k else v for k, v in a.items()}
    clean, mid_clean = interpolate.path(_bn_net(0), a, b, data, batch_size=50, points=5)
    dirty, mid_dirty = interpolate.path(_bn_net(0), spoiled, b, data, batch_size=50, points=5)
    assert clean == dirty
    key = next(k for k in a if k.endswith("running_mean"))
    assert torch.equal(mid_clean[key], mid_dirty[key])
    assert not torch.allclose(mid_clean[key], (a[key] + b[key]) / 2)


@pytest.mark.timeout(300)
def test_stability_cifar_runs_its_resnet_copies_and_line_on_tiny_cifar(tmp_path, monkeypatch,
                                                                     one_thread):
    """The shipped space's round-0 measurement, shrunk to 2 steps at width 0.125 on tiny
    CIFAR-10 files: dense -> two copies from θ1 -> the line, BatchNorm recomputed."""
    write_cifar(tmp_path, np.random.default_rng(0), per_batch=16, test=20)
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path))
    space, _ = load_space("stability_cifar")
    line = next(t for t in space.expand() if t.arm == "interpolation" and t.round == 0)
    d = line.dense
    small = d.model_copy(update={
        "train": d.train.model_copy(update={"steps": 2, "eval_every": 1, "batch_size": 16}),
        "model": d.model.model_copy(update={"width": 0.125})})
    line = TrialSpec(stage="arm", arm="interpolation", round=0, dense=small,
                     prune=PruneSpec(rewind_step=1))
    store = MemoryStore()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*standard is")  # tiny files
        store.run(TrialSpec(stage="dense", arm="dense", dense=small))
        for copy in line.parents():
            store.run(copy)
        m = store.run(line).metrics
    assert m["path_points"] == 21 and 0.0 <= m["barrier_test"] <= 1.0


@pytest.mark.parametrize("build,needles", [
    (lambda: TrialSpec(stage="arm", arm="stability", round=1, dense=DENSE, prune=PLAN),
     ["noise_seed", "stability copy"]),
    (lambda: TrialSpec(stage="dense", arm="dense", dense=DENSE, noise_seed=4),
     ["noise_seed", "init seed", "unset"]),
    (lambda: TrialSpec(stage="arm", arm="interpolation", round=1, dense=DENSE, prune=PLAN,
                       noise_seed=3), ["noise_seed", "trains nothing"]),
    (lambda: TrialSpec(stage="arm", arm="interpolation", round=0, dense=DENSE, prune=PLAN),
     ["round 0", "prune.rewind_step"]),
    (lambda: TrialSpec(stage="arm", arm="interpolation", round=0, dense=DENSE,
                       prune=PruneSpec(rewind_step=60)), ["past the end of training"]),
    (lambda: TrialSpec(stage="imp", arm="stability", round=1, dense=DENSE, prune=PLAN,
                       noise_seed=3), ["stage 'arm'"]),
    (lambda: Space(name="x", train={"steps": 10}, arms=["stability"]),
     ["not a control arm", "`stability`"]),
    (lambda: Space(name="x", train={"steps": 10}, stability=[-1]), ["stability", ">= 0"]),
])
def test_bad_stability_input_gets_its_message(build, needles):
    with pytest.raises(ValueError) as err:
        build()
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def test_a_stability_round_beyond_the_plan_is_refused_at_load(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("from study.space import Space\n"
                    "space = Space(name='bad', train={'steps': 10}, prune={'rounds': 2},"
                    " stability=[3])\n")
    with pytest.raises(SpaceError, match=r"round: 3 outside 1..2"):
        load_space(str(path))


def test_space_orders_copies_after_their_round_and_lines_after_their_copies():
    space = Space(name="s", train={"steps": 100}, prune={"rounds": 2, "rewind_step": 5},
                  grid={"prune.granularity": ["unstructured"]}, arms=["reinit"],
                  stability=[0, 2], seeds=[0, 1])
    trials = space.expand()
    lines = [t for t in trials if t.arm == "interpolation"]
    assert sorted((t.round, t.dense.seed) for t in lines) == [(0, 0), (0, 1), (2, 0), (2, 1)]
    assert {t.prune for t in lines if t.round == 0} == {PruneSpec(rewind_step=5)}
    seen = set()
    for t in trials:
        assert all(p.id in seen for p in t.parents()), t
        seen.add(t.id)
