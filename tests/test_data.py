"""The data registry: offline sets, real-format files written small into tmp_path, augmentation."""

from __future__ import annotations

import gzip
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import write_cifar

from study.data import (
    DATASETS,
    DataNotFoundError,
    DatasetInfo,
    Splits,
    dataset_info,
    download,
    load_data,
    offline,
)
from study.data.augment import random_crop_flip
from study.data.registry import split_indices

KNOWN = "cifar10, digits, fashion_mnist, mnist, mnist1d"
CIFAR_MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
CIFAR_STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """A fresh disk cache for this module, and empty in-process caches around it."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDY_CACHE_DIR", str(path))
        offline._mnist1d_cached.cache_clear()
        offline.digits_arrays.cache_clear()
        yield path
        offline._mnist1d_cached.cache_clear()
        offline.digits_arrays.cache_clear()


# --- offline datasets -------------------------------------------------------------------------

def test_mnist1d_shapes_classes_and_determinism():
    s = load_data("mnist1d")
    assert isinstance(s, Splits) and s.augment is None
    assert s.x_train.shape == (3600, 40) and s.x_val.shape == (400, 40)
    assert s.x_test.shape == (1000, 40) and s.x_train.dtype == torch.float32
    assert s.y_train.dtype == torch.int64 and set(s.y_train.tolist()) == set(range(10))
    assert s.info == dataset_info("mnist1d") == DatasetInfo("mnist1d", (40,), 10, 4000, 1000)
    again = load_data("mnist1d")
    for a, b in zip(vars(s).values(), vars(again).values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


def test_mnist1d_disk_cache_is_reused_without_generating(cache_dir, monkeypatch):
    first = load_data("mnist1d", val_fraction=0.0)
    files = list(cache_dir.glob("mnist1d-*-n5000-seed42.npz"))
    assert len(files) == 1 and not list(cache_dir.glob("*.tmp"))
    offline._mnist1d_cached.cache_clear()  # as in a new process: only the disk cache is left

    def no_generation(n):
        raise AssertionError("regenerated although the disk cache exists")

    monkeypatch.setattr(offline, "_generate_mnist1d", no_generation)
    second = load_data("mnist1d", val_fraction=0.0)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)


def test_mnist1d_n_samples_matches_info_and_leaves_global_rngs_alone():
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    s = load_data("mnist1d", n_samples=105, val_fraction=0.0)
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state
    assert s.info == dataset_info("mnist1d", n_samples=105)  # 10 per class: 80 / 20
    assert (len(s.y_train), len(s.y_test)) == (80, 20)
    with pytest.raises(ValueError, match="at least 10"):
        dataset_info("mnist1d", n_samples=5)


def test_digits_shapes_and_scale():
    s = load_data("digits")
    assert s.x_train.shape == (1294, 1, 8, 8) and s.x_val.shape == (143, 1, 8, 8)
    assert s.x_test.shape == (360, 1, 8, 8) and s.info.train_size == 1437
    assert s.x_train.min() >= 0.0 and s.x_train.max() <= 1.0 and s.x_train.max() == 1.0


def test_validation_split_is_seeded_disjoint_and_may_be_empty():
    train, val = split_indices(100, 0.25, seed=3)
    assert len(val) == 25 and sorted(np.concatenate([train, val])) == list(range(100))
    assert np.array_equal(val, split_indices(100, 0.25, seed=3)[1])
    assert not np.array_equal(val, split_indices(100, 0.25, seed=4)[1])
    s = load_data("mnist1d", val_fraction=0.0)
    assert s.x_val.shape == (0, 40) and s.y_val.shape == (0,) and len(s.y_train) == 4000
    with pytest.raises(ValueError, match="val_fraction"):
        load_data("mnist1d", val_fraction=1.0)


# --- files in the standard formats ----------------------------------------------------------------

def _write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    raw = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    raw += arr.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def _write_mnist(folder: Path, gz: bool, rng: np.random.Generator) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20),
              rng.integers(0, 256, (10, 28, 28)), rng.integers(0, 10, 10)]
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for name, arr in zip(names, arrays):
        _write_idx(folder / name, arr, gz)
    return arrays


@pytest.mark.parametrize(("name", "gz", "sub", "mean", "std"), [
    ("mnist", True, "mnist", 0.1307, 0.3081),
    ("fashion_mnist", False, "", 0.2860, 0.3530),
])
def test_idx_files_round_trip(tmp_path, name, gz, sub, mean, std):
    x_tr, y_tr, x_te, y_te = _write_mnist(tmp_path / sub, gz, np.random.default_rng(0))
    with pytest.warns(UserWarning, match="standard is 60000 / 10000"):
        s = load_data(name, data_dir=tmp_path, val_fraction=0.0)
    assert s.x_train.shape == (20, 1, 28, 28) and s.x_test.shape == (10, 1, 28, 28)
    assert s.info.train_size == 20 and s.info.test_size == 10
    pixels = (s.x_test * std + mean) * 255
    assert torch.allclose(pixels, torch.tensor(x_te[:, None], dtype=torch.float32), atol=1e-3)
    assert torch.allclose((s.x_train * std + mean) * 255, torch.tensor(x_tr[:, None]).float(),
                          atol=1e-3)
    assert s.y_train.tolist() == y_tr.tolist() and s.y_test.tolist() == y_te.tolist()


def test_corrupt_idx_file_is_named(tmp_path):
    _write_mnist(tmp_path / "mnist", False, np.random.default_rng(0))
    bad = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + bytes(20))
    with pytest.raises(ValueError, match=f"corrupt IDX file {bad}: magic number 0x00000803"):
        load_data("mnist", data_dir=tmp_path)
    bad.write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(3))  # truncated
    with pytest.raises(ValueError, match="header says shape"):
        load_data("mnist", data_dir=tmp_path)


def test_cifar_batches_round_trip_and_augment(tmp_path):
    batches = write_cifar(tmp_path, np.random.default_rng(1))
    with pytest.warns(UserWarning, match="standard is 50000 / 10000"):
        s = load_data("cifar10", data_dir=tmp_path, val_fraction=0.0, augment=True)
    raw_train = np.concatenate([x for x, _ in batches[:5]]).reshape(-1, 3, 32, 32)
    assert s.x_train.shape == (10, 3, 32, 32) and s.x_test.shape == (3, 3, 32, 32)
    pixels = (s.x_train * CIFAR_STD + CIFAR_MEAN) * 255
    assert torch.allclose(pixels, torch.tensor(raw_train).float(), atol=1e-3)
    assert s.y_train.tolist() == sum((y for _, y in batches[:5]), [])
    assert s.y_test.tolist() == batches[5][1]
    out = s.augment(s.x_train, torch.Generator("cpu").manual_seed(0))
    assert out.shape == s.x_train.shape
    out_pixels = (out * CIFAR_STD + CIFAR_MEAN) * 255  # torchvision pads with black pixels
    assert out_pixels.min() > -1e-3 and (out_pixels.abs() < 1e-3).any()


def test_missing_files_say_what_where_and_how(tmp_path):
    for name, sub in [("mnist", "mnist"), ("fashion_mnist", "fashion_mnist"),
                      ("cifar10", "cifar-10-batches-py")]:
        folder = tmp_path / sub
        with pytest.raises(DataNotFoundError) as err:
            load_data(name, data_dir=tmp_path)
        msg = str(err.value)
        assert isinstance(err.value, FileNotFoundError) and f"in {folder} " in msg
        assert "pip install 'study[vision]'" in msg and f"download('{name}', '{tmp_path}')" in msg
    assert "train-images-idx3-ubyte[.gz]" in str(
        pytest.raises(DataNotFoundError, load_data, "mnist", data_dir=tmp_path).value)


def test_unknown_names_list_the_known_ones():
    assert sorted(DATASETS) == KNOWN.split(", ")
    for call in (load_data, dataset_info, download):
        with pytest.raises(ValueError, match=f"unknown dataset 'x'; known: {KNOWN}"):
            call("x")
    with pytest.raises(ValueError, match="mnist1d only"):
        dataset_info("digits", n_samples=100)
    with pytest.raises(ValueError, match="no standard augmentation"):
        load_data("mnist1d", augment=True)


def test_infos_are_cheap_and_standard():
    assert dataset_info("mnist") == DatasetInfo("mnist", (1, 28, 28), 10, 60000, 10000)
    assert dataset_info("cifar10").input_shape == (3, 32, 32)
    assert dataset_info("digits") == DatasetInfo("digits", (1, 8, 8), 10, 1437, 360)


def test_download_is_explicit_and_names_the_extra(tmp_path, monkeypatch):
    assert download("mnist1d", tmp_path) == tmp_path and not list(tmp_path.iterdir())
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'study\[vision\]'"):
        download("cifar10", tmp_path)


# --- augmentation --------------------------------------------------------------------------------

def _gen(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def test_augment_is_seeded_batched_and_changes_images():
    x = torch.randn(256, 3, 32, 32)
    out = random_crop_flip(x, _gen(0))
    assert out.shape == x.shape and torch.equal(out, random_crop_flip(x, _gen(0)))
    assert not torch.equal(out, random_crop_flip(x, _gen(1)))
    changed = (out != x).flatten(1).any(1)
    assert 0.9 < changed.float().mean() < 1.0  # most changed; a few drew no shift and no flip


def test_flip_alone_flips_about_half():
    x = torch.randn(200, 3, 8, 8)
    out = random_crop_flip(x, _gen(2), pad=0)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 60 < int(flipped.sum()) < 140


def test_each_output_is_a_crop_of_the_padded_input():
    x = torch.randn(6, 2, 5, 5)
    out = random_crop_flip(x, _gen(3), pad=2, fill=(7.0, -7.0))
    padded = torch.tensor([7.0, -7.0]).view(1, 2, 1, 1).repeat(6, 1, 9, 9)
    padded[:, :, 2:7, 2:7] = x
    for i in range(6):
        crops = [padded[i, :, dy:dy + 5, dx:dx + 5] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(-1)) for c in crops)
