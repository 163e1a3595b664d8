"""The one way data enters the data directory from the internet: an explicit call, never implicit.

It uses torchvision's downloaders (the optional `vision` extra), which leave MNIST-format files in
`<data_dir>/MNIST/raw` (`FashionMNIST/raw`) and CIFAR-10 in `<data_dir>/cifar-10-batches-py`;
the readers in `files.py` look there too.
"""

from __future__ import annotations

from pathlib import Path

from study.data.files import data_root
from study.data.registry import source

_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def download(name: str, data_dir: str | Path | None = None) -> Path:
    """Fetch `name`'s standard files into data_dir (default `$STUDY_DATA_DIR` or `./data`).

    mnist1d and digits need nothing (generated / bundled): returns at once. Returns the data dir.
    """
    source(name)  # unknown name -> ValueError listing the known ones
    root = data_root(data_dir)
    if name not in _TORCHVISION:
        return root
    try:
        import torchvision.datasets as tv_datasets
    except ImportError as e:
        raise ImportError(f"downloading {name!r} needs torchvision: pip install 'study[vision]' "
                          f"(or place the files in {root} yourself)") from e
    root.mkdir(parents=True, exist_ok=True)
    dataset = getattr(tv_datasets, _TORCHVISION[name])
    for train in (True, False):
        dataset(str(root), train=train, download=True)
    return root
