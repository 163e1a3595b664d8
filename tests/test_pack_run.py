"""`study run --pack-size K`: each packed member is still its own trial, run and record."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from study.cli import app
from study.pack import SHORT_STEPS, next_pack, pack_key
from study.space import load_space

BODY = ("model={'name': 'mlp', 'hidden': [32, 32]}, "
        "train={'lr': 0.05, 'batch_size': 100, 'steps': 200, 'eval_every': 50}, "
        "prune={'rounds': 1, 'rate': 0.5}, arms=['reinit', 'random_prune'], "
        "seeds=[0, 1, 2], grid={'train.lr': [0.05, 0.1]}")


def _space(folder: Path) -> Path:
    path = folder / "packs.py"
    path.write_text(f"from study.space import Space\nspace = Space(name='packs', {BODY})\n")
    return path


def _runs(uri: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("packs")
    return client.search_runs([exp.experiment_id], "tags.`study.stage` != 'launch'",
                              max_results=1000)


def _run(space: Path, uri: str, *args: str):
    return CliRunner().invoke(app, ["run", str(space), "--tracking-uri", uri, *args])


@pytest.mark.timeout(60)
def test_pack_keys_group_seeds_lrs_and_arms_of_one_shape(tmp_path):
    space, _ = load_space(str(_space(tmp_path)))
    trials = space.expand()
    dense = [t for t in trials if t.stage == "dense"]
    assert len({pack_key(t) for t in dense}) == 1  # 3 seeds x 2 lrs: one shape
    done = {t.id for t in trials if t.stage in ("dense", "imp")}
    pending = [t for t in trials if t.id not in done]
    pack = next_pack(pending, done, 64)
    # reinit and random_prune of every seed and lr: the same net, mask and budget
    assert Counter(t.arm for t in pack) == {"reinit": 6, "random_prune": 6}
    assert len(next_pack(pending, done, 5)) == 5
    assert next_pack(pending, set(), 64) == []  # nothing ready before the dense nets


@pytest.mark.timeout(60)
def test_a_pack_fills_with_whole_groups_of_other_shapes(tmp_path):
    path = tmp_path / "widths.py"
    path.write_text("from study.space import Space\nspace = Space(name='widths', "
                    "model={'name': 'mlp', 'hidden': [32, 32]}, train={'steps': 10}, "
                    "arms=[], seeds=[0, 1, 2], grid={'model.width': [0.5, 1.0]})\n")
    space, _ = load_space(str(path))
    dense = [t for t in space.expand() if t.stage == "dense"]
    keys = [pack_key(t) for t in dense]
    assert len(set(keys)) == 2  # two widths: two stacked loops
    both = next_pack(dense, set(), 16)
    assert sorted(pack_key(t) for t in both) == sorted(keys)  # both groups, whole
    first = next_pack(dense, set(), 4)  # the second group of 3 does not fit: never split
    assert len(first) == 3 and len({pack_key(t) for t in first}) == 1
    assert len(next_pack(dense, set(), 2)) == 2  # the first group cut to the pack size
    long = [t.model_copy(update={"dense": t.dense.model_copy(update={
        "train": t.dense.train.model_copy(update={"steps": SHORT_STEPS * 6})})}) for t in dense]
    alone = next_pack([*long[3:], *dense[:3]], set(), 16)  # 3 x 3,600 steps: not short
    assert [t.id for t in alone] == [t.id for t in long[3:]]


@pytest.mark.timeout(600)
def test_packed_trials_are_the_same_trials_with_the_same_results(tmp_path):
    space = _space(tmp_path)
    solo, packed = f"sqlite:///{tmp_path / 'solo.db'}", f"sqlite:///{tmp_path / 'packed.db'}"
    assert _run(space, solo, "--pack-size", "1").exit_code == 0
    result = _run(space, packed, "--pack-size", "8")
    assert result.exit_code == 0, result.output
    alone = {r.data.tags["study.id"]: r for r in _runs(solo)}
    together = {r.data.tags["study.id"]: r for r in _runs(packed)}
    assert sorted(alone) == sorted(together)  # same specs, same ids, one run each
    assert len(together) == len(_runs(packed)) == 6 * 4
    sizes = Counter(r.data.tags["study.pack_size"] for r in together.values())
    assert sizes == {"6": 12, "8": 8, "4": 4}  # 6 dense, 6 imp, 12 arms in packs of 8 + 4
    assert {r.data.tags["study.pack_size"] for r in alone.values()} == {"1"}
    packs = Counter(r.data.tags["study.pack"] for r in together.values())
    assert sorted(packs.values()) == [4, 6, 6, 8]
    client = MlflowClient(packed)
    diffs = []
    for trial_id, run in together.items():
        reference = alone[trial_id].data.metrics
        for key in ("nonzero_params", "total_params", "train_steps", "flops"):
            assert run.data.metrics[key] == reference[key], key
        diffs.append(abs(run.data.metrics["final_test_acc"] - reference["final_test_acc"]))
        curve = client.get_metric_history(run.info.run_id, "val_acc")
        assert [m.step for m in curve] == [50, 100, 150, 200]  # its own curves
    assert sum(diffs) / len(diffs) <= 0.005  # mean |packed - solo| final test accuracy


@pytest.mark.timeout(600)
def test_relaunch_packs_only_the_missing_trials_and_a_bad_artifact_fails_one_member(tmp_path):
    space = _space(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _run(space, uri, "--select", "stage=imp", "--pack-size", "1")
    assert first.exit_code == 0, first.output
    first = _run(space, uri, "--select", "seed=0", "--select", "arm=reinit", "--pack-size", "1")
    assert first.exit_code == 0, first.output
    imp = next(r for r in _runs(uri) if r.data.tags["study.stage"] == "imp"
               and r.data.tags["study.seed"] == "1" and r.data.tags["study.lr"] == "0.05")
    mask = next((tmp_path / "artifacts").glob(f"**/{imp.info.run_id}/artifacts/mask.pt"))
    mask.write_bytes(mask.read_bytes()[:100])  # truncated
    again = _run(space, uri, "--pack-size", "16")
    assert again.exit_code == 1  # the seed-1 lr-0.05 arms failed, named with their parent
    assert "mask.pt" in again.output and imp.info.run_id in again.output
    assert "24 trials, 14 already done, 10 to run" in again.output
    runs = _runs(uri)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    ids = [r.data.tags["study.id"] for r in finished]
    assert len(ids) == len(set(ids))  # no duplicate runs
    new = [r for r in finished if r.data.tags["study.pack_size"] != "1"]
    # the 10 missing arm trials packed together, less the 2 whose parent's mask is broken
    assert len(new) == 8 and {r.data.tags["study.pack_size"] for r in new} == {"8"}
    assert not [r for r in new if r.data.tags["study.seed"] == "1"
                and r.data.tags["study.lr"] == "0.05"]
    fixed = _run(space, uri)  # the broken imp run is recomputed, then its arms
    assert fixed.exit_code == 0, fixed.output
    ids = [r.data.tags["study.id"] for r in _runs(uri) if r.info.status == "FINISHED"]
    assert len(ids) == len(set(ids)) == 24
