"""The dataset registry: a name -> standard description, tensors on the training device.

Every dataset ends as float32 inputs and int64 labels on the device (docs/design.md: batches are
indexed, never loaded), with a validation split carved from train by a seeded permutation.

Adding a dataset: write a reader `(data_dir, n_samples) -> (x_train, y_train, x_test, y_test)`
numpy arrays, and add a `Source` to `DATASETS` with its `DatasetInfo` and normalisation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from study.data import files, offline
from study.data.augment import Augment, crop_flip
from study.data.offline import Arrays


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a spec need to know about a dataset without loading it."""

    name: str
    input_shape: tuple[int, ...]  # per sample, e.g. (40,) or (3, 32, 32)
    num_classes: int
    train_size: int  # before the validation split is carved out
    test_size: int


@dataclass
class Splits:
    """A dataset on the device: float32 inputs (N, *input_shape), int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    info: DatasetInfo  # sizes as loaded (train_size before the validation split)
    augment: Augment | None = None  # batch-level, on the device; None: no augmentation

    def __repr__(self) -> str:
        return (f"Splits({self.info.name}: train {len(self.y_train)}, val {len(self.y_val)}, "
                f"test {len(self.y_test)}, device {self.x_train.device}, "
                f"augment {self.augment is not None})")


def random_splits(shape: tuple[int, ...], classes: int, n: int, seed: int = 0,
                  device: str | torch.device = "cpu") -> Splits:
    """Random inputs and labels of a dataset's shape, for timing loops: empty val and test."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen).to(device)
    y = torch.randint(0, classes, (n,), generator=gen).to(device)
    return Splits(x, y, x[:0], y[:0], x[:0], y[:0], DatasetInfo("random", shape, classes, n, 0))


@dataclass(frozen=True)
class Source:
    """One registry entry: a dataset's info (shape, classes, split sizes), how to read and
    normalise it."""

    info: Callable[[int | None], DatasetInfo]
    read: Callable[[Path, int | None], Arrays]
    scale: float = 1.0  # the raw value that becomes 1.0 (255 for bytes, 16 for digits)
    mean: tuple[float, ...] | None = None  # per channel, after scaling; None: left as is
    std: tuple[float, ...] | None = None
    augmentable: bool = False  # whether the standard crop + flip exists for it


def _fixed(info: DatasetInfo) -> Callable[[int | None], DatasetInfo]:
    def fixed(n_samples: int | None) -> DatasetInfo:
        if n_samples is not None:
            raise ValueError(f"n_samples applies to mnist1d only, not to {info.name!r}")
        return info

    return fixed


def _mnist1d_info(n_samples: int | None) -> DatasetInfo:
    train, test = offline.mnist1d_sizes(n_samples)
    return DatasetInfo("mnist1d", (40,), 10, train, test)


def _image(name: str, shape: tuple[int, ...], train: int, test: int) -> Callable:
    return _fixed(DatasetInfo(name, shape, 10, train, test))


DATASETS: dict[str, Source] = {
    "mnist1d": Source(_mnist1d_info, lambda root, n: offline.mnist1d_arrays(n)),
    "digits": Source(_image("digits", (1, 8, 8), offline.DIGITS_TRAIN, offline.DIGITS_TEST),
                     lambda root, n: offline.digits_arrays(), scale=16.0),
    "mnist": Source(_image("mnist", (1, 28, 28), 60_000, 10_000),
                    lambda root, n: files.idx_reader("mnist", "mnist", "MNIST")(root),
                    scale=255.0, mean=(0.1307,), std=(0.3081,)),
    "fashion_mnist": Source(
        _image("fashion_mnist", (1, 28, 28), 60_000, 10_000),
        lambda root, n: files.idx_reader("fashion_mnist", "fashion_mnist", "FashionMNIST")(root),
        scale=255.0, mean=(0.2860,), std=(0.3530,)),
    # Per-channel mean and std of the 50,000 training images (the true std, as in airbench).
    "cifar10": Source(_image("cifar10", (3, 32, 32), 50_000, 10_000),
                      lambda root, n: files.read_cifar10(root), scale=255.0,
                      mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                      augmentable=True),
}


def source(name: str) -> Source:
    """The registry entry, or a ValueError that lists the known names."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def dataset_info(name: str, n_samples: int | None = None) -> DatasetInfo:
    """The standard description of a dataset; cheap, reads nothing."""
    return source(name).info(n_samples)


def load_data(name: str, *, device: str | torch.device = "cpu", val_fraction: float = 0.1,
              split_seed: int = 0, n_samples: int | None = None, augment: bool = False,
              data_dir: str | Path | None = None) -> Splits:
    """Read a dataset, normalise it, carve a seeded validation split and put it on the device."""
    src, info = source(name), dataset_info(name, n_samples)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if augment and not src.augmentable:
        known = ", ".join(k for k, s in DATASETS.items() if s.augmentable)
        raise ValueError(f"augment=True: {name!r} has no standard augmentation (only {known})")
    x_train, y_train, x_test, y_test = src.read(files.data_root(data_dir), n_samples)
    info = _check(info, x_train, y_train, x_test, y_test)
    train_idx, val_idx = split_indices(len(y_train), val_fraction, split_seed)
    dev = torch.device(device)

    def put(x: np.ndarray) -> torch.Tensor:
        return _normalise(x, src, dev)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.tensor(y, dtype=torch.int64, device=dev)

    aug = crop_flip(src.mean, src.std) if augment and src.mean and src.std else None
    return Splits(put(x_train[train_idx]), labels(y_train[train_idx]),
                  put(x_train[val_idx]), labels(y_train[val_idx]),
                  put(x_test), labels(y_test), info, aug)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices, each sorted: int(n * val_fraction) samples chosen by a seeded
    permutation (generated on the CPU, so the split is the same on every device)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_val = int(n * val_fraction)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _normalise(x: np.ndarray, src: Source, device: torch.device) -> torch.Tensor:
    """Bytes travel as bytes (4x less to copy), then become float32 on the device."""
    t = torch.tensor(x) if x.dtype == np.uint8 else torch.tensor(x, dtype=torch.float32)
    t = t.to(device).float()
    if src.scale != 1.0:
        t /= src.scale
    if src.mean is not None and src.std is not None and t.ndim == 4:
        t = (t - t.new_tensor(src.mean).view(1, -1, 1, 1)) / t.new_tensor(src.std).view(1, -1, 1, 1)
    return t


def _check(info: DatasetInfo, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
           y_test: np.ndarray) -> DatasetInfo:
    """Fail on wrong shapes or labels; warn when the files hold a non-standard number of samples."""
    for part, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if tuple(x.shape[1:]) != info.input_shape:
            raise ValueError(f"{info.name} {part}: samples have shape {tuple(x.shape[1:])}, "
                             f"expected {info.input_shape}")
        if len(y) and (y.min() < 0 or y.max() >= info.num_classes):
            raise ValueError(f"{info.name} {part}: labels outside 0..{info.num_classes - 1}")
    loaded = replace(info, train_size=len(y_train), test_size=len(y_test))
    if loaded != info:
        warnings.warn(f"{info.name}: loaded {loaded.train_size} train / {loaded.test_size} test "
                      f"samples, the standard is {info.train_size} / {info.test_size}",
                      stacklevel=3)
    return loaded
