"""Pack where it pays: the default pack size of each net, from the packed gain measured here.

Packing pays where a net's step is bound by per-op overhead (the quickstart's small MLPs);
where arithmetic dominates (LeNet-300-100 and Conv-4 on a CPU core), a stacked step of K
members costs more than K plain steps (`study bench --part packed`: 0.4-0.8x on a Zen 5 core).
So the default K of a net is the candidate whose measured per-member throughput beats the
plain loop's (`study.train.Solo`) by `MIN_GAIN`, else 1: each trial alone, as a plain module.
The calibration trains the real loops on random data of the net's shape for a fraction of a
second per candidate, and is cached per machine (CPU or GPU model, torch, threads) and net
shape in `$STUDY_CACHE_DIR/pack_gain.json` (default ~/.cache/study). A calibration measured
while other processes kept the cores busy is noise: it serves this process only and is not
cached. `--pack-size` overrides it for every net.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from study.data.registry import random_splits
from study.execution import Execution
from study.models import build_model
from study.specs import TrainSpec, TrialSpec
from study.train import Member, train_members

CANDIDATES = {"cpu": (4, 16), "cuda": (16, 64)}
"""Pack sizes tried per device type (the largest is also the default's cap)."""
MIN_GAIN = 1.15
"""Per-member throughput over the plain loop a pack must reach to be the default: below it the
gain is within a busy machine's noise, and a pack delays its members until all are ready."""
BLOCK_SECONDS = 0.25
"""Timed training per candidate and round (two rounds, the faster kept)."""


@dataclass(frozen=True)
class Net:
    """What a pack's speed depends on: the net, its input and the loop's shared settings."""

    model: str
    input_shape: tuple[int, ...]
    classes: int
    width: float
    hidden: tuple[int, ...] | None
    train: TrainSpec

    @classmethod
    def of(cls, spec: TrialSpec) -> Net:
        """A trial's dense net (structured rounds and small_dense are narrower: faster still
        to pack, as a narrower net is more overhead-bound)."""
        d, info = spec.dense, spec.dense.data.info()
        hidden = tuple(d.model.hidden) if d.model.hidden is not None else None
        return cls(d.model.name, tuple(info.input_shape), info.num_classes, d.model.width,
                   hidden, d.train)

    def key(self) -> str:
        t = self.train
        return json.dumps([self.model, list(self.input_shape), self.classes, self.width,
                           self.hidden and list(self.hidden), t.optimizer, t.batch_size,
                           t.precision])

    def label(self) -> str:
        return f"{self.model} {'x'.join(map(str, self.input_shape))} width {self.width:g}"


def machine(device: str, threads: int) -> str:
    """This machine as the calibration cache names it."""
    if device.startswith("cuda"):
        chip = torch.cuda.get_device_name(device)
    else:
        chip = platform.processor() or platform.machine()
        try:
            info = Path("/proc/cpuinfo").read_text()
            fields = dict(map(str.strip, line.split(":", 1))
                          for line in info.splitlines()[:30] if ":" in line)
            chip = f"{fields['model name']} family {fields['cpu family']}"
        except (OSError, KeyError):
            pass
    return f"{chip} | torch {torch.__version__} | {threads} thread(s)"


def cache_dir() -> Path:
    """Where this machine's measured figures are kept ($STUDY_CACHE_DIR, ~/.cache/study)."""
    return Path(os.environ.get("STUDY_CACHE_DIR") or Path.home() / ".cache" / "study")


def _cache() -> Path:
    return cache_dir() / "pack_gain.json"


def busy(threads: int) -> bool:
    """Whether other processes hold the cores a calibration would time (1-min load average
    above the cores it leaves free)."""
    return os.getloadavg()[0] > (os.cpu_count() or 1) - threads + 0.5


_UNSAVED: dict[tuple[str, str], dict[str, float]] = {}
"""Calibrations measured on a busy machine: used by this process, never cached."""


def gains(net: Net, device: str = "cpu", threads: int = 1) -> dict[int, float]:
    """{K: per-member throughput of a stacked pack of K over the plain loop's}, measured on
    this machine once per net shape (then read from the cache)."""
    path, where = _cache(), machine(device, threads)
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    found = cached.get(where, {}).get(net.key()) or _UNSAVED.get((where, net.key()))
    if found is None:
        loaded = device == "cpu" and busy(threads)
        found = {str(k): v for k, v in _measure(net, device, threads).items()}
        if loaded:
            _UNSAVED[where, net.key()] = found
            return {int(k): v for k, v in found.items()}
        cached.setdefault(where, {})[net.key()] = found
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cached, indent=1))
        tmp.replace(path)  # atomic: two sweeps calibrating at once never leave half a file
    return {int(k): v for k, v in found.items()}


def best_pack_size(net: Net, device: str = "cpu", threads: int = 1) -> int:
    """The default K of `net`: its best-gaining candidate if it gains `MIN_GAIN`, else 1."""
    measured = gains(net, device, threads)
    k = max(measured, key=measured.get)
    return k if measured[k] >= MIN_GAIN else 1


def _measure(net: Net, device: str, threads: int) -> dict[int, float]:
    """Members' samples/s at each candidate K over one plain member's, timed in turn."""
    data = random_splits(net.input_shape, net.classes, 4 * net.train.batch_size, device=device)
    spec = net.train.model_copy(update={"eval_every": 10**9, "steps": 10**9})
    sizes = (1, *CANDIDATES["cuda" if device.startswith("cuda") else "cpu"])

    def members(k: int) -> list[Member]:
        return [Member(build_model(net.model, net.input_shape, net.classes, width=net.width,
                                   hidden=net.hidden, seed=i).to(device), spec, i)
                for i in range(k)]

    packs = {k: members(k) for k in sizes}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def block(k: int, steps: int) -> float:
        start = time.perf_counter()
        train_members(packs[k], data, total_steps=steps, execution=Execution(device=device),
                      stacked=k > 1)
        sync()
        return time.perf_counter() - start

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        steps = {k: max(2, min(50, round(BLOCK_SECONDS / (block(k, 2) / 2)))) for k in sizes}
        best = {k: float("inf") for k in sizes}
        for _ in range(2):
            for k in sizes:
                best[k] = min(best[k], block(k, steps[k]) / (k * steps[k]))
    finally:
        torch.set_num_threads(before)
    return {k: best[1] / best[k] for k in sizes if k > 1}


class PackSizes:
    """The pack size of each trial: `--pack-size` for all, else its net's `best_pack_size`."""

    def __init__(self, fixed: int | None = None, device: str = "cpu", threads: int = 1,
                 cap: int | None = None) -> None:
        self.fixed, self.device, self.threads, self.cap = fixed, device, threads, cap
        self.chosen: dict[str, tuple[Net, int]] = {}

    @classmethod
    def of(cls, size: int | PackSizes) -> PackSizes:
        return size if isinstance(size, PackSizes) else cls(size)

    def __call__(self, spec: TrialSpec) -> int:
        if self.fixed is not None:
            return self.fixed
        net = Net.of(spec)
        if net.key() not in self.chosen:
            k = best_pack_size(net, self.device, self.threads)
            self.chosen[net.key()] = (net, min(k, self.cap) if self.cap else k)
        return self.chosen[net.key()][1]

    def most(self, trials: list[TrialSpec]) -> int:
        """The largest pack size among `trials` (1: nothing packs)."""
        return max((self(t) for t in trials), default=1)

    def summary(self, trials: list[TrialSpec]) -> str:
        """'up to K' for a fixed size, else each net's chosen K."""
        if self.fixed is not None:
            return f"up to {self.fixed}"
        for t in trials:
            self(t)
        return "of " + ", ".join(f"{k} ({net.label()})" for net, k in self.chosen.values())
