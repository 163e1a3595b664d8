"""Readers for the datasets that live as standard files in a data directory (never downloaded here).

MNIST and Fashion-MNIST are the four IDX files (gzipped or not), parsed with numpy; CIFAR-10 is
the "python version" pickle batches. Files are looked for in a few folders (ours, then
torchvision's layout, then the data directory itself); when absent, `DataNotFoundError` says which
files, where, and how to fetch them explicitly.
"""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from study.data.offline import Arrays

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message names them, the folder, and how to get them."""


def data_root(data_dir: str | Path | None = None) -> Path:
    """The data directory: the argument, else `$STUDY_DATA_DIR`, else `./data` (made absolute)."""
    chosen = data_dir if data_dir is not None else os.environ.get("STUDY_DATA_DIR") or "data"
    return Path(chosen).expanduser().absolute()


def find_files(name: str, root: Path, folders: Sequence[Path], files: Sequence[str],
               gz: bool) -> dict[str, Path]:
    """The first folder holding every file (each may be `.gz` when gz); else DataNotFoundError."""
    for folder in folders:
        found = {f: p for f in files for p in _variants(folder / f, gz) if p.is_file()}
        if len(found) == len(files):
            return found
    wanted = ", ".join(f + ("[.gz]" if gz else "") for f in files)
    others = ", ".join(str(f) for f in folders[1:])
    raise DataNotFoundError(
        f"{name}: dataset files not found. Expected {wanted} in {folders[0]} (also looked in "
        f"{others}). To get them: pip install 'study[vision]', then run "
        f"python -c \"import study.data; study.data.download('{name}', '{root}')\" "
        "(or copy the files there yourself, or point STUDY_DATA_DIR / --data-dir at a folder "
        "that has them). Nothing is downloaded implicitly.")


def _variants(path: Path, gz: bool) -> tuple[Path, ...]:
    return (path, path.with_name(path.name + ".gz")) if gz else (path,)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """One IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian int32 sizes, then data."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"corrupt IDX file {path}: cannot read or decompress it ({e})") from e
    expected = 0x0800 | ndim
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != expected:
        got = "a file shorter than 4 bytes" if magic is None else f"{magic:#010x}"
        raise ValueError(f"corrupt IDX file {path}: magic number {got}, expected {expected:#010x} "
                         f"(unsigned bytes, {ndim} dimension(s))")
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"corrupt IDX file {path}: header says shape {shape}, i.e. "
                         f"{header + int(np.prod(shape))} bytes, but the file has {len(raw)}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def idx_reader(name: str, folder: str, torchvision_folder: str) -> Callable[[Path], Arrays]:
    """A reader for MNIST-format data in root/folder, root/<torchvision>/raw, or root itself."""

    def read(root: Path) -> Arrays:
        folders = [root / folder, root / torchvision_folder / "raw", root]
        paths = [find_files(name, root, folders, IDX_FILES, gz=True)[f] for f in IDX_FILES]
        x_train, y_train = read_idx(paths[0], 3), read_idx(paths[1], 1)
        x_test, y_test = read_idx(paths[2], 3), read_idx(paths[3], 1)
        for x, y, p in ((x_train, y_train, paths[1]), (x_test, y_test, paths[3])):
            if len(x) != len(y):
                raise ValueError(f"{name}: {p} has {len(y)} labels for {len(x)} images")
        return x_train[:, None], y_train.astype(np.int64), x_test[:, None], y_test.astype(np.int64)

    return read


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 pickle batch: {b'data': (N, 3072) uint8, b'labels': N ints} -> (N, 3, 32, 32).

    Unpickling runs code from the file: read only batches from a source you trust."""
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the batches were pickled by Python 2
        data = batch.get(b"data", batch.get("data"))
        labels = batch.get(b"labels", batch.get("labels"))
        x, y = np.asarray(data, dtype=np.uint8), np.asarray(labels, dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"corrupt CIFAR-10 batch {path}: {e!r}") from e
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or y.shape != (len(x),):
        raise ValueError(f"corrupt CIFAR-10 batch {path}: data {x.shape}, labels {y.shape}; "
                         "expected (N, 3072) and (N,)")
    return x.reshape(-1, 3, 32, 32), y


def read_cifar10(root: Path) -> Arrays:
    """The five training batches and the test batch, from cifar-10-batches-py under root."""
    folders = [root / "cifar-10-batches-py", root / "cifar10" / "cifar-10-batches-py",
               root / "cifar10", root]
    paths = find_files("cifar10", root, folders, CIFAR_FILES, gz=False)
    train = [read_cifar_batch(paths[f]) for f in CIFAR_FILES[:-1]]
    x_test, y_test = read_cifar_batch(paths["test_batch"])
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
            x_test, y_test)
