"""Bad input: every mistake exits with code 2 and names the field, the value and what is
allowed, before anything is written to the tracking store or any trial starts."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from study.cli import app

BASE = {"train": "{'lr': 0.1, 'steps': 20}", "model": "{'name': 'mlp', 'hidden': [8]}",
        "prune": "{'rate': 0.5, 'rounds': 1}", "data": "{'name': 'mnist1d'}"}
TRIED = {"count": 0, "clear": 0}
FIXTURE_OK = [HealthCheck.function_scoped_fixture]


def _space(folder: Path, **sections: str) -> Path:
    body = ", ".join(f"{k}={v}" for k, v in {**BASE, **sections}.items())
    path = folder / "bad_space.py"
    path.write_text(f"from study.space import Space\nspace = Space(name='bad', {body})\n")
    return path


def _invoke(folder: Path, *args: str):
    store = folder / "store" / "mlflow.db"
    result = CliRunner().invoke(app, [*args, "--tracking-uri", f"sqlite:///{store}"])
    TRIED["count"] += 1
    return result, store


def _assert_clear(result, store: Path, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)
    assert not store.exists(), "nothing may be written before the input is valid"
    TRIED["clear"] += 1


CASES = [
    ({"train": "{'lr': -1.0, 'steps': 20}"}, ["train.lr", "-1.0", "greater than 0"]),
    ({"train": "{'lr': 'fast', 'steps': 20}"}, ["train.lr", "fast"]),
    ({"train": "{'lr': 0.1}"}, ["exactly one of steps or epochs"]),
    ({"train": "{'lr': 0.1, 'steps': 20, 'optimiser': 'sgd'}"}, ["train.optimiser", "Extra"]),
    ({"train": "{'lr': 0.1, 'steps': 20, 'schedule': 'linear'}"},
     ["train.schedule", "linear", "constant", "cosine"]),
    ({"model": "{'name': 'alexnet'}"}, ["model.name", "alexnet", "resnet56", "mlp"]),
    ({"data": "{'name': 'imagenet'}"}, ["data.name", "imagenet", "cifar10"]),
    ({"prune": "{'rate': 1.5}"}, ["prune.rate", "1.5", "less than 1"]),
    ({"prune": "{'granularity': 'unstructured', 'criterion': 'l1_filter'}"},
     ["prune.criterion", "l1_filter", "magnitude"]),
    ({"prune": "{'granularity': 'blocky'}"}, ["prune.granularity", "blocky", "structured"]),
    ({"prune": "{'rewind_step': 500}"}, ["prune.rewind_step", "500", "past the end"]),
    ({"arms": "['reinit', 'scratch_c']"}, ["arms", "scratch_c", "scratch_b"]),
    ({"grid": "{'optim.lr': [0.1]}"}, ["grid", "optim.lr"]),
    ({"grid": "{'train.lr': [0.1, -0.5]}"}, ["train.lr", "-0.5"]),
    ({"seeds": "[-1]"}, ["seed", "-1"]),
]


@pytest.mark.parametrize("sections,needles", CASES)
def test_invalid_space_fields_exit_2_with_the_field_named(tmp_path, sections, needles):
    result, store = _invoke(tmp_path, "run", str(_space(tmp_path, **sections)))
    _assert_clear(result, store, *needles)


def _valid_lr(text: str) -> bool:
    """Pydantic reads a numeric string such as '1' as the number: such text is a valid lr."""
    try:
        return 0.0 < float(text) <= 10.0
    except ValueError:
        return False


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE_OK)
@given(lr=st.one_of(st.floats(max_value=0.0, allow_nan=False), st.floats(min_value=10.001),
                    st.text(max_size=5).filter(lambda t: not _valid_lr(t)).map(repr),
                    st.just("None"), st.just("[0.1]")),
       rate=st.floats(allow_nan=True))
def test_random_bad_rates_and_learning_rates(tmp_path, lr, rate):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # tmp_path is shared by every example
    lr_text = lr if isinstance(lr, str) else f"float('{lr!r}')"
    valid_rate = 0.0 < rate < 1.0
    sections = {"train": f"{{'lr': {lr_text}, 'steps': 20}}"}
    if not valid_rate:
        sections["prune"] = f"{{'rate': float('{rate}')}}"
    result, store = _invoke(folder, "run", str(_space(folder, **sections)))
    _assert_clear(result, store, "train.lr")


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE_OK)
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12))
def test_unknown_model_names_list_the_known_ones(tmp_path, name):
    from study.models import MODELS

    if name in MODELS:
        return
    result, store = _invoke(tmp_path, "run", str(_space(tmp_path, model=f"{{'name': '{name}'}}")))
    _assert_clear(result, store, "model.name", name, "resnet20")


@pytest.mark.parametrize("args,needles", [
    (["run", "no_such_space"], ["no_such_space", "known spaces", "quickstart"]),
    (["run", "smoke", "--select", "lr"], ["--select", "KEY=VALUE"]),
    (["run", "smoke", "--select", "colour=red"], ["unknown field 'colour'"]),
    (["run", "smoke", "--select", "seed=7"], ["no trial matches"]),
    (["sweep", "smoke", "--max-concurrent", "0"], ["max-concurrent"]),
    (["tune", "smoke", "--arm", "lottery2"], ["--arm", "lottery2", "reinit"]),
    (["run", "smoke", "--device", "cuda"], ["--device cuda", "no CUDA"]),
])
def test_bad_cli_arguments_exit_2(tmp_path, args, needles):
    result, store = _invoke(tmp_path, *args)
    _assert_clear(result, store, *needles)


def test_missing_dataset_files_are_explained_before_any_trial(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    space = _space(tmp_path, data="{'name': 'mnist'}", model="{'name': 'mlp', 'hidden': [8]}")
    result, store = _invoke(tmp_path, "run", str(space), "--data-dir", str(empty))
    _assert_clear(result, store, "train-images-idx3-ubyte", str(empty))


def test_unreachable_ray_address_fails_fast(tmp_path):
    start = time.monotonic()
    result, store = _invoke(tmp_path, "sweep", "smoke", "--address", "127.0.0.1:9")
    _assert_clear(result, store, "--address 127.0.0.1:9", "no Ray cluster")
    assert time.monotonic() - start < 30


def test_report_counts():
    """Printed for the issue note: how many invalid inputs were tried, how many were clear."""
    print(f"\ninvalid inputs tried: {TRIED['count']}, clear errors: {TRIED['clear']}")
    assert TRIED["count"] == TRIED["clear"]
