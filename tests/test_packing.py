"""The default pack size follows the packed gain measured here, cached per machine and net."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from study import packing
from study.packing import MIN_GAIN, Net, PackSizes, best_pack_size, gains
from study.specs import DenseSpec, ModelSpec, TrainSpec, TrialSpec


def _spec(width: float = 0.25) -> TrialSpec:
    return TrialSpec(stage="dense", arm="dense", dense=DenseSpec(
        model=ModelSpec(name="mlp", hidden=[16, 16], width=width),
        train=TrainSpec(batch_size=32, steps=10)))


@pytest.mark.timeout(120)
def test_a_net_is_calibrated_once_and_its_default_follows_its_gain(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(packing, "busy", lambda threads: False)
    net = Net.of(_spec())
    measured = gains(net)
    assert set(measured) == set(packing.CANDIDATES["cpu"]) and all(g > 0 for g in measured.values())
    cached = json.loads((tmp_path / "pack_gain.json").read_text())
    (where,) = cached
    assert where == packing.machine("cpu", 1) and "thread" in where
    if "model name" in Path("/proc/cpuinfo").read_text():
        assert "family" in where  # the CPU model, not just "x86_64"
    assert cached[where][net.key()] == {str(k): g for k, g in measured.items()}

    def never(*args):
        raise AssertionError("measured twice")

    monkeypatch.setattr(packing, "_measure", never)  # from now on, the cache answers
    assert gains(net) == measured
    best = max(measured, key=measured.get)
    assert best_pack_size(net) == (best if measured[best] >= MIN_GAIN else 1)
    assert PackSizes()(_spec()) == best_pack_size(net)
    assert PackSizes(cap=2)(_spec()) == min(2, best_pack_size(net))
    with pytest.raises(AssertionError, match="measured twice"):  # another width: its own
        PackSizes()(_spec(width=0.5))


def test_pack_size_given_overrides_every_net():
    sizes = PackSizes(3)
    assert sizes(_spec()) == sizes(_spec(width=2.0)) == 3
    assert sizes.summary([_spec()]) == "up to 3"


@pytest.mark.timeout(120)
def test_a_calibration_on_a_busy_machine_serves_this_process_and_is_not_cached(
        tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(packing, "busy", lambda threads: True)
    monkeypatch.setattr(packing, "_UNSAVED", {})
    net = Net.of(_spec(width=0.75))
    measured = gains(net)
    assert not (tmp_path / "pack_gain.json").exists()
    monkeypatch.setattr(packing, "_measure", lambda *a: pytest.fail("measured twice"))
    assert gains(net) == measured
