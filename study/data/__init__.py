"""Datasets as tensors on the training device: mnist1d (default), digits, mnist, fashion_mnist,
cifar10. See `registry.py` for the interface and how to add one."""

from study.data.download import download
from study.data.files import DataNotFoundError
from study.data.registry import DATASETS, DatasetInfo, Splits, dataset_info, load_data

__all__ = ["DATASETS", "DataNotFoundError", "DatasetInfo", "Splits", "dataset_info", "download",
           "load_data"]
