"""The GPU path's switches, checked on the CPU: bf16 autocast, channels-last, torch.compile.

Channels-last and compile change how a step runs, not what it computes: the same run must end
at the same weights. bf16 changes the numbers, so it is part of a trial's id.
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from bench.trainer import synthetic_splits
from study.cli import app
from study.execution import Execution, bf16_supported
from study.models import build_model
from study.specs import DataSpec, DenseSpec, ModelSpec, TrainSpec
from study.train import train

SPEC = TrainSpec(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=16, steps=6, eval_every=3)


def _conv(seed=0):
    return build_model("conv2", (3, 32, 32), 10, width=0.125, seed=seed)


def _masks(model, keep=0.5):
    gen = torch.Generator().manual_seed(3)
    return {n: torch.rand(p.shape, generator=gen) < keep
            for n, p in model.named_parameters() if n in model.prunable()}


def test_channels_last_trains_to_the_same_weights_and_keeps_masks():
    data = synthetic_splits((3, 32, 32), 64)
    runs = {}
    for layout in (False, True):
        model = _conv()
        masks = _masks(model)
        result = train(model, data, SPEC, seed=0, total_steps=6, masks=masks,
                       execution=Execution(channels_last=layout))
        runs[layout] = (model, result)
        params = dict(model.named_parameters())
        for name, mask in masks.items():
            assert (params[name][~mask] == 0).all(), name
    model, _ = runs[True]
    conv = next(p for p in model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    for (name, a), b in zip(runs[False][0].state_dict().items(),
                            runs[True][0].state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    losses = [[r["train_loss"] for r in runs[k][1].curves] for k in (False, True)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_bf16_autocast_trains_close_to_fp32_and_is_its_own_trial():
    data = synthetic_splits((40,), 256)
    finals = {}
    for precision in ("fp32", "bf16"):
        model = build_model("mlp", (40,), 10, hidden=(32, 32), seed=0)
        spec = SPEC.model_copy(update={"precision": precision, "steps": 30, "eval_every": 10})
        result = train(model, data, spec, seed=0, total_steps=30)
        finals[precision] = (model, result)
    (_, r32), (m16, r16) = finals["fp32"], finals["bf16"]
    assert all(p.dtype == torch.float32 for p in m16.parameters())  # autocast, not a bf16 model
    loss32, loss16 = r32.curves[-1]["train_loss"], r16.curves[-1]["train_loss"]
    assert loss16 != loss32 and loss16 == pytest.approx(loss32, rel=0.05)
    dense = DenseSpec(data=DataSpec(name="mnist1d"), model=ModelSpec(name="mlp"),
                      train=TrainSpec(steps=10))
    bf16 = dense.model_copy(update={"train": TrainSpec(steps=10, precision="bf16")})
    assert dense.id != bf16.id
    assert "precision" not in dense.model_dump_json(exclude_defaults=True)


def test_compiled_forward_trains_to_the_same_weights():
    pytest.importorskip("torch._inductor")
    data = synthetic_splits((40,), 128)
    weights = []
    for compile in (False, True):
        model = build_model("mlp", (40,), 10, hidden=(16,), seed=0)
        train(model, data, SPEC, seed=0, total_steps=6, masks=_masks(model),
              execution=Execution(compile=compile))
        weights.append(model.state_dict())
    assert weights[0].keys() == weights[1].keys()  # the module itself is not wrapped
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-4, atol=1e-5)


def test_execution_defaults_and_tags():
    assert Execution() == Execution("cpu", channels_last=False, compile=False)  # the safe path
    assert Execution().tags() == {"study.device": "cpu", "study.channels_last": "False",
                                  "study.compile": "False"}
    assert bf16_supported("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a CPU-only host")
def test_cli_refuses_a_device_that_is_not_here(tmp_path):
    for device, fix in (("cuda", "no CUDA device here"), ("tpu", "use cpu, cuda or cuda:N")):
        result = CliRunner().invoke(app, ["run", "smoke", "--device", device, "--tracking-uri",
                                          f"sqlite:///{tmp_path / 'm.db'}"])
        assert result.exit_code == 2 and fix in result.output
    assert not (tmp_path / "m.db").exists()
