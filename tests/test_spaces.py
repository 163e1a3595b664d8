"""Every search space loads, expands to the planned trials, carries its paper's settings, and runs.

The smoke part writes tiny MNIST / CIFAR-10 files in their real formats, shrinks each space's
chains to 2 steps at a small width, and runs dense -> IMP round 1 -> one arm through
`run_trial`, so each space's model, data and pruning plan is proven to work before a cluster
spends hours on it. The cluster recipe's files are checked for syntax and shape.
"""

from __future__ import annotations

import subprocess
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from fakedata import write_cifar

from study.models import build_model
from study.space import SpaceError, load_space, space_files
from study.specs import TrialSpec
from study.trial import run_trial

ROOT = Path(__file__).resolve().parents[1]

# name: (trials, {(stage, arm): count}, rounds per plan, seeds)
EXPECTED = {
    "smoke": (29, {("dense", "dense"): 1, ("imp", "lottery"): 4}, {2}, [0]),
    "quickstart": (1890, {("dense", "dense"): 40, ("imp", "lottery"): 280}, {4, 3},
                   [0, 1, 2, 3, 4]),
    "scaling": (9075, {("dense", "dense"): 75, ("imp", "lottery"): 825,
                       ("arm", "sign_constant"): 825, ("arm", "random_prune"): 825,
                       ("arm", "rigl"): 450, ("arm", "synflow"): 450}, {6, 5},
                [0, 1, 2, 3, 4]),
    "train_small": (1920, {("dense", "dense"): 40, ("imp", "lottery"): 160,
                           ("arm", "random_prune"): 120, ("arm", "snip"): 240,
                           ("arm", "random_erk"): 240, ("arm", "rigl_b"): 120}, {4},
                    [0, 1, 2, 3, 4]),
    "digits_scaling": (336, {("dense", "dense"): 12, ("imp", "lottery"): 72,
                             ("arm", "finetune"): 72, ("arm", "small_dense"): 36},
                       {3}, [0, 1, 2]),
    "lth_lenet_mnist": (380, {("dense", "dense"): 5, ("imp", "lottery"): 75,
                              ("arm", "supermask"): 75, ("arm", "sign_constant"): 75},
                        {15}, [0, 1, 2, 3, 4]),
    "lth_conv_cifar": (1140, {("dense", "dense"): 15, ("imp", "lottery"): 225,
                              ("arm", "random_prune"): 225}, {15}, [0, 1, 2, 3, 4]),
    "rethinking_cifar": (220, {("dense", "dense"): 20, ("imp", "lottery"): 50,
                               ("arm", "scratch_b"): 50, ("arm", "finetune"): 50},
                         {3, 2}, [0, 1, 2, 3, 4]),
    "criteria": (1086, {("dense", "dense"): 6, ("imp", "lottery"): 360,
                         ("arm", "reinit"): 360, ("arm", "weight_agnostic"): 360},
                 {3}, [0, 1, 2]),
    "lr_regimes": (2760, {("dense", "dense"): 40, ("imp", "lottery"): 1360,
                          ("arm", "reinit"): 1360}, {12, 5}, [0, 1, 2, 3, 4]),
    "stability": (720, {("dense", "dense"): 18, ("imp", "lottery"): 108, ("arm", "reinit"): 108,
                        ("arm", "stability"): 324, ("arm", "interpolation"): 162}, {1}, [0, 1, 2]),
    "lecture": (1165, {("dense", "dense"): 5, ("imp", "finetune"): 280, ("imp", "lottery"): 40,
                       ("arm", "reinit"): 320, ("arm", "small_dense"): 200}, {8, 6},
                [0, 1, 2, 3, 4]),
    "stability_cifar": (534, {("dense", "dense"): 6, ("imp", "lottery"): 192,
                              ("arm", "stability"): 96, ("arm", "interpolation"): 48},
                        {8}, [0, 1, 2]),
}
FILE_SPACES = ("lth_lenet_mnist", "lth_conv_cifar", "rethinking_cifar", "lr_regimes")


@pytest.fixture(scope="module")
def spaces():
    return {name: load_space(name)[0] for name in space_files()}


def test_every_space_file_is_covered_here():
    assert set(space_files()) >= set(EXPECTED)
    assert set(space_files()) - set(EXPECTED) == set(), "add the new space to EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_space_expands_to_the_planned_trials(spaces, name):
    space = spaces[name]
    trials = space.expand()
    count, stage_arms, rounds, seeds = EXPECTED[name]
    by_arm = Counter((t.stage, t.arm) for t in trials)
    assert len(trials) == count
    assert {k: by_arm[k] for k in stage_arms} == stage_arms
    measured = {"stability", "interpolation"} if space.stability else set()
    assert {arm for stage, arm in by_arm if stage == "arm"} == set(space.arms) | measured
    assert {t.prune.rounds for t in trials if t.prune and t.round > 0} == rounds
    assert sorted({t.dense.seed for t in trials}) == seeds
    # upstream first: every trial's parents come before it (the sweep's dependency order)
    seen = set()
    for t in trials:
        assert all(p.id in seen for p in t.parents()), t
        seen.add(t.id)


def test_every_space_has_a_docstring_naming_its_protocol():
    for name in space_files():
        source = (ROOT / "search_spaces" / f"{name}.py").read_text()
        assert source.lstrip().startswith('"""'), name


# --- the papers' hyper-parameters -----------------------------------------------------------

def test_lth_lenet_is_frankle_and_carbins_protocol(spaces):
    trials = spaces["lth_lenet_mnist"].expand()
    d = trials[0].dense
    assert (d.data.name, d.model.name, d.model.hidden, d.model.width) == ("mnist", "mlp", None, 1)
    assert (d.train.optimizer, d.train.lr, d.train.batch_size) == ("adam", 1.2e-3, 60)
    assert d.total_steps() == 50_000 and d.train.schedule == "constant"
    assert d.data.train_size() == 55_000  # 5K of MNIST's 60K held out for validation
    plan = trials[-1].prune
    assert (plan.scope, plan.criterion, plan.rate, plan.output_rate) == (
        "layerwise", "magnitude", 0.2, 0.1)
    hidden, output = 784 * 300 + 300 * 100, 100 * 10
    remaining = (hidden * 0.8 ** plan.rounds + output * 0.9 ** plan.rounds) / (hidden + output)
    assert round(remaining * 100, 1) == 3.6


def test_lth_conv_links_each_net_to_its_own_settings(spaces):
    settings = {(t.dense.model.name, t.dense.train.lr, t.dense.total_steps(), t.prune.conv_rate,
                 t.prune.rate, t.prune.output_rate, t.dense.train.batch_size)
                for t in spaces["lth_conv_cifar"].expand() if t.prune}
    assert settings == {("conv2", 2e-4, 20_000, 0.10, 0.2, 0.1, 60),
                        ("conv4", 3e-4, 25_000, 0.10, 0.2, 0.1, 60),
                        ("conv6", 3e-4, 30_000, 0.15, 0.2, 0.1, 60)}


def test_rethinking_is_liu_et_als_protocol(spaces):
    trials = spaces["rethinking_cifar"].expand()
    for t in trials:
        tr = t.dense.train
        assert (tr.optimizer, tr.lr, tr.momentum, tr.weight_decay, tr.batch_size) == (
            "sgd", 0.1, 0.9, 1e-4, 64)
        assert (tr.schedule, tr.milestones, tr.gamma, tr.epochs) == ("step", (0.5, 0.75), 0.1,
                                                                     160)
        assert t.dense.data.augment
        if t.stage == "arm":  # options reach the arms only (dense and IMP ignore them)
            assert t.options.finetune_lr == 1e-3 and t.options.finetune_fraction * tr.epochs == 40
    methods = {(t.dense.model.name, t.prune.criterion, t.dense.train.bn_l1)
               for t in trials if t.prune}
    assert methods == {(m, "l1_filter", 0.0) for m in ("vgg16", "resnet56")} | {
        (m, "bn_scale", 1e-4) for m in ("vgg16", "resnet56")}  # slimming always has its penalty


def test_lecture_runs_the_fine_tune_loop_in_small_steps_and_in_one_cut(spaces):
    """Weight and neuron pruning, each by magnitude and by a data-driven score, as fine-tune
    chains at 10-20% a round, iterative beside one-shot on the same dense nets, offline."""
    trials = spaces["lecture"].expand()
    chains = {(t.prune.granularity, t.prune.criterion, t.prune.schedule) for t in trials
              if t.stage == "imp" and t.prune.retrain == "finetune"}
    assert chains == {(g, c, s) for g, cs in (("unstructured", ("magnitude", "fisher")),
                                              ("structured", ("l1_filter", "apoz")))
                      for c in cs for s in ("iterative", "oneshot")}
    assert all(0.1 <= t.prune.rate <= 0.2 for t in trials if t.prune)
    assert {t.dense.data.name for t in trials} == {"mnist1d"} and len({t.dense.seed
                                                                       for t in trials}) >= 5
    assert {(t.prune.granularity, t.prune.criterion) for t in trials
            if t.stage == "imp" and t.arm == "lottery"} == {("unstructured", "magnitude")}
    assert not any(t.arm == "finetune" and t.stage == "arm" for t in trials)


def test_lr_regimes_crosses_lr_warmup_rewind_and_granularity(spaces):
    trials = spaces["lr_regimes"].expand()
    cells = {(t.dense.model.name, t.dense.train.lr, t.dense.train.warmup_steps,
              t.prune.rewind_step, t.prune.granularity) for t in trials if t.prune}
    assert len(cells) == 2 * 2 * 2 * 2 * 2
    assert {(t.dense.model.name, t.dense.train.batch_size) for t in trials} == {
        ("resnet20", 128), ("vgg16", 64)}
    unstructured = next(t.prune for t in trials if t.prune and
                        t.prune.granularity == "unstructured")
    assert (unstructured.scope, unstructured.rate) == ("global", 0.2)
    assert round(unstructured.output_rate * 10_000) == 0  # the output layer keeps every weight


def _remaining(spec: TrialSpec) -> float:
    """Fraction of prunable weights left after the plan's last round, on a fresh net (the
    magnitude and L1 rankings do not change how many weights each round keeps)."""
    import torch

    from study.pruning.rounds import initial_mask, prune_units, prune_weights
    from study.pruning.structured import shrink

    plan, m = spec.prune, spec.dense.model
    net = build_model(m.name, (40,), 10, width=m.width, hidden=m.hidden)
    mask, gen = initial_mask(plan, net), torch.Generator().manual_seed(0)
    total = sum(p.numel() for n, p in net.named_parameters() if n in net.prunable())
    for r in range(1, plan.rounds + 1):
        if plan.granularity == "unstructured":
            mask = prune_weights(plan, r, net, net, mask, gen)
        else:
            mask = prune_units(plan, r, shrink(net, mask) if r > 1 else net, mask, gen)
    if plan.granularity == "unstructured":
        return sum(int(mask[n].sum()) for n in net.prunable()) / total
    small = shrink(net, mask)
    return sum(p.numel() for n, p in small.named_parameters() if n in small.prunable()) / total


@pytest.mark.parametrize(("name", "n_widths", "span", "lr_span"),
                         [("quickstart", 3, 4, 5 / 3), ("scaling", 4, 8, 3)])
def test_the_main_spaces_are_scaling_studies(spaces, name, n_widths, span, lr_span):
    """Widths over a span (the quickstart: 3 over 4x, width 2 left to `scaling`, as the budget
    at which its gaps hold when the budget doubles would not fit 10 minutes with it), 2+ lrs
    apart (the quickstart's 0.3 and 0.5: both converge and keep their gaps at twice the steps,
    where 0.1 and 0.2 did not), both granularities pruned below 10% / 25% of the weights at
    every width (structured: global neuron ranking keeps most of the narrowest net's input
    layer), 5+ seeds, the arms the scaling analysis compares."""
    trials = spaces[name].expand()
    widths = sorted({t.dense.model.width for t in trials})
    lrs = sorted({t.dense.train.lr for t in trials})
    assert len(widths) >= n_widths and widths[-1] / widths[0] >= span
    assert len(lrs) >= 2 and lrs[-1] / lrs[0] >= lr_span - 1e-9
    assert len({t.dense.seed for t in trials}) >= 5
    assert {"reinit", "scratch_b", "finetune", "small_dense"} <= set(spaces[name].arms)
    deepest = {}
    for t in trials:
        if t.stage == "imp" and t.round == t.prune.rounds:
            deepest.setdefault((t.dense.model.width, t.prune.granularity), t)
    assert len(deepest) == 2 * len(widths)
    for (width, granularity), spec in deepest.items():
        limit = 0.10 if granularity == "unstructured" else 0.25
        assert _remaining(spec) < limit, (width, granularity)


def test_train_small_runs_every_train_small_arm_on_the_quickstarts_grid(spaces):
    """The quickstart's widths, lrs, seeds, budget and unstructured plan, read from its file;
    every at-init arm with and without its shuffled mask, the others once."""
    from study.specs import AT_INIT_ARMS, TRAIN_SMALL_ARMS

    quick, small = spaces["quickstart"], spaces["train_small"]
    assert small.train == quick.train and small.seeds == quick.seeds
    assert small.grid["model.width"] == quick.grid["model.width"]
    assert small.grid["train.lr"] == quick.grid["train.lr"]
    assert small.grid["prune"] == [p for p in quick.grid["prune"]
                                   if p["granularity"] == "unstructured"]
    trials = small.expand()
    assert set(TRAIN_SMALL_ARMS) <= {t.arm for t in trials}
    shuffled = {t.arm for t in trials if t.options.mask_shuffle}
    assert shuffled == set(AT_INIT_ARMS)
    assert {t.prune.granularity for t in trials if t.prune} == {"unstructured"}


def test_linked_points_may_not_fight_the_grid(tmp_path):
    with pytest.raises(SpaceError, match="train.lr is also varied by the grid"):
        load_space(_write_space(tmp_path, "grid={'train.lr': [0.1, 0.01]}, "
                                          "linked=[{'train': {'lr': 0.1}}]"))
    with pytest.raises(SpaceError, match="section 'optim' must be one of"):
        load_space(_write_space(tmp_path, "linked=[{'optim': {'lr': 0.1}}]"))


def _write_space(folder: Path, body: str) -> str:
    path = folder / "bad.py"
    path.write_text("from study.space import Space\n"
                    f"space = Space(name='bad', train={{'steps': 10}}, {body})\n")
    return str(path)


# --- a few steps of every file-backed space, on tiny real-format data ----------------------------

def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def _write_mnist(root: Path, rng: np.random.Generator) -> None:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for prefix, n in (("train", 60), ("t10k", 20)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    _write_mnist(root, rng)
    write_cifar(root, rng, per_batch=16, test=20)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDY_DATA_DIR", str(root))
        yield root


def shrink(spec: TrialSpec) -> TrialSpec:
    """The same trial at 2 steps, a small width and a rewind point inside those steps."""
    d = spec.dense
    train = d.train.model_copy(update={"steps": 2, "epochs": None, "eval_every": 1,
                                       "batch_size": min(d.train.batch_size, 16)})
    model = d.model.model_copy(update={"width": 0.05 if d.model.name == "mlp" else 0.125})
    update = {"dense": d.model_copy(update={"train": train, "model": model})}
    if spec.prune is not None:
        update["prune"] = spec.prune.model_copy(
            update={"rewind_step": min(spec.prune.rewind_step, 1)})
    return spec.model_copy(update=update)


def _chains(trials: list[TrialSpec]) -> list[tuple[TrialSpec, TrialSpec, TrialSpec]]:
    """One (dense, IMP round 1, first arm of round 1) per model x pruning plan, seed 0."""
    seen, out = set(), []
    for arm in trials:
        key = (arm.dense.model.name, arm.prune.model_dump_json() if arm.prune else None)
        if arm.stage != "arm" or arm.round != 1 or arm.dense.seed != 0 or key in seen:
            continue
        seen.add(key)
        imp = next(p for p in arm.parents() if p.stage == "imp")
        out.append((TrialSpec(stage="dense", arm="dense", dense=arm.dense), imp, arm))
    return out


@pytest.mark.parametrize("name", FILE_SPACES)
def test_space_runs_a_few_steps_on_its_model_and_data(spaces, data_dir, name):
    artifacts = {}

    def fetch(spec, artifact):
        return artifacts[spec.id][artifact]

    chains = _chains(spaces[name].expand())
    assert chains
    for chain in chains:
        for spec in map(shrink, chain):
            if spec.id in artifacts:
                continue  # a dense net shared by several plans runs once
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*standard is")  # tiny files
                record = run_trial(spec, fetch)
            assert record.outcome == "finished", (name, spec.arm)
            assert 0.0 <= record.metrics["final_test_acc"] <= 1.0
            artifacts[spec.id] = record.artifacts
            if spec.stage == "imp" and (spec.prune.output_rate or 1.0) < 1e-6:
                _assert_output_unpruned(spec, record.artifacts["mask.pt"])
        assert record.metrics["sparsity"] > 0.0  # the arm trained a pruned or smaller net


def _assert_output_unpruned(spec: TrialSpec, mask: dict) -> None:
    """A vanishing output rate (lr_regimes: LTH's "FC 0%") leaves the output layer whole."""
    info, m = spec.dense.data.info(), spec.dense.model
    net = build_model(m.name, info.input_shape, info.num_classes, width=m.width)
    output = [name for name, kind in net.prunable().items() if kind == "output"]
    assert output and all(bool(mask[name].all()) for name in output)
    assert not all(bool(t.all()) for t in mask.values())  # the conv layers were pruned


# --- the cluster recipe -------------------------------------------------------------------------

def test_tracking_server_script_is_valid_bash():
    script = ROOT / "scripts" / "tracking_server.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    for flag in ("--backend-store-uri", "--artifacts-destination", "--serve-artifacts",
                 "--host"):
        assert flag in text


def test_ray_cluster_yaml_names_head_and_workers():
    config = yaml.safe_load((ROOT / "scripts" / "ray-cluster.yaml").read_text())
    types = config["available_node_types"]
    head = config["head_node_type"]
    assert head in types and any(name != head for name in types)
    workers = [t for name, t in types.items() if name != head]
    assert all(t["resources"].get("GPU", 0) > 0 for t in workers)
    head_start = " ".join(config["head_start_ray_commands"])
    worker_start = " ".join(config["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=" in head_start and "RAY_AUTH_MODE=" in worker_start
    assert "--dashboard-host=127.0.0.1" in head_start


def test_the_budget_check_trains_chosen_cells_again_at_a_multiple_of_the_budget(spaces):
    quick = spaces["quickstart"]
    trials = quick.expand()
    longer = [t for t in trials if t.dense.train.steps == 4000]
    assert {t.dense.model.width for t in longer} == {1.0}
    assert {t.arm for t in longer} == {"dense", "lottery", "reinit"}
    assert {t.dense.train.eval_every for t in longer} == {400}
    base = {(t.arm, t.round, t.dense.seed, t.dense.train.lr, t.prune and t.prune.granularity)
            for t in trials if t.dense.model.width == 1.0 and t.dense.train.steps == 2000
            and t.arm in ("dense", "lottery", "reinit")}
    assert {(t.arm, t.round, t.dense.seed, t.dense.train.lr, t.prune and t.prune.granularity)
            for t in longer} == base  # the same cells and seeds, nothing else


@pytest.mark.parametrize(("check", "words"), [
    ({"where": {"width": [1.0]}}, "budget_check.where: key 'width' must be a dotted field"),
    ({"where": {"model.width": [3.0]}}, "selects no grid point"),
    ({"arms": ["supermask"]}, "budget_check.arms: supermask not in the space's arms"),
    ({"factor": 1.0}, "budget_check.factor"),
])
def test_a_bad_budget_check_is_refused_before_any_work(check, words):
    from study.space import Space, SpaceError

    with pytest.raises((ValueError, SpaceError), match=words):
        Space(name="s", train={"steps": 100}, grid={"model.width": [1.0, 2.0]},
              arms=["reinit"], budget_check=check)
