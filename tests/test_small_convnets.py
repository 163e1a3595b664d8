"""Small conv nets are first-class: every conv family trains at 2 channels a layer.

Width scaling and structured pruning reach 2-16 channels. On some CPUs oneDNN's channels-last
backward hangs or crashes such nets (an AVX2 AMD EPYC with torch 2.13), so the default layout
is the one tested here, and each family trains in its own child process: a hang or a crash in
native code, which no in-process timeout can stop, fails that family's test alone.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from fakedata import write_cifar

from study.models import MODELS

FAMILIES = ("conv2", "conv4", "conv6", "vgg11", "vgg16", "resnet20", "resnet56")
DEFAULT = ("conv2", "resnet20")  # the smallest, and the one the crash was reported on; the rest
# run with -m slow (each family is a child process of its own: ~10-20 s of imports apiece)
LIMIT = 240  # seconds per family; each trains in well under a tenth of that

SCRIPT = """
import sys, torch
from bench.trainer import synthetic_splits
from study.models import build_model, count
from study.specs import TrainSpec
from study.train import train

name, base = sys.argv[1], float(sys.argv[2])
data = synthetic_splits((3, 32, 32), 64)
spec = TrainSpec(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=16, steps=4, eval_every=4)
narrow = build_model(name, (3, 32, 32), 10, width=2 / base, seed=0)
every_two = narrow.rebuild([2] * len(narrow.widths))  # a structured round's extreme
for threads, model in ((1, narrow), (2, every_two), (2, narrow), (1, every_two)):
    torch.set_num_threads(threads)  # the crashes seen differed between one and two threads
    result = train(model, data, spec, seed=0, total_steps=4)
    loss = result.curves[-1]["train_loss"]
    assert result.outcome == "finished" and loss == loss, (name, result.outcome, loss)
    conv = next(p for p in model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(), "the default layout is contiguous (NCHW)"
    print(name, threads, model.widths[:4], count(model).total_weights, f"{loss:.3f}", flush=True)
"""


def _first_width(name: str) -> int:
    """Channels of the family's first layer at width 1 (64 for conv/VGG, 16 for ResNets)."""
    return MODELS[name]((3, 32, 32), 10, 1.0, None).widths[0]


@pytest.mark.timeout(LIMIT + 30)
@pytest.mark.parametrize("name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in FAMILIES])
def test_every_conv_family_trains_at_two_channels_in_the_default_layout(name):
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT, name, str(_first_width(name))],
                              capture_output=True, text=True, timeout=LIMIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} hung: 4 steps at 2 channels a layer did not finish in {LIMIT} s")
    assert done.returncode == 0, (f"{name} exited {done.returncode} (a negative code is the "
                                  f"signal):\n{done.stdout}\n{done.stderr[-3000:]}")
    assert done.stdout.count(name) == 4, done.stdout


TINY_RESNET = """from study.space import Space
space = Space(name="tinyresnet", data={"name": "cifar10", "val_fraction": 0.0},
              model={"name": "resnet20", "width": 0.25},
              train={"lr": 0.1, "batch_size": 16, "steps": 20, "eval_every": 20},
              prune={"granularity": "structured", "criterion": "l1_filter", "rounds": 1},
              arms=["reinit"])
"""


@pytest.mark.timeout(LIMIT + 60)
def test_study_run_trains_a_structured_resnet20_at_width_a_quarter(tmp_path):
    """What crashed through the tool itself (`double free or corruption`, or a segmentation
    fault) with channels-last on by default: ResNet-20 at 4/8/16 channels, 20 steps, a
    structured round, on CIFAR-format files, with the default options."""
    write_cifar(tmp_path / "data", np.random.default_rng(0), per_batch=16, test=16)
    space = tmp_path / "tinyresnet.py"
    space.write_text(TINY_RESNET)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "study.cli", "run", str(space), "--data-dir",
             str(tmp_path / "data"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
            capture_output=True, text=True, timeout=LIMIT)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"study run hung: {err.stdout}")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "done: {'finished': 3}" in done.stdout, done.stdout
