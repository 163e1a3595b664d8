"""Tiny datasets written in their real on-disk formats, for tests that read files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar(root: Path, rng: np.random.Generator, per_batch: int = 2,
                test: int = 3) -> list[tuple[np.ndarray, list[int]]]:
    """CIFAR-10's python pickle batches (5 training batches and a test batch) under
    root/cifar-10-batches-py; returns each batch's (pixels, labels)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = []
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", test)]:
        x = rng.integers(1, 256, (n, 3072), dtype=np.uint8)  # >= 1: padding is the only black
        y = rng.integers(0, 10, n).tolist()
        with (folder / name).open("wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": x, b"labels": y}, f, protocol=2)
        batches.append((x, y))
    return batches
