"""CIFAR-100 from its python pickle archive (`cifar-100-python/{train,test,meta}`), fine labels.

Read directly: torchvision's CIFAR100(download=False) insists on the MD5 of the original files.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from alimb.data.download import fetch_or_explain
from alimb.data.images import ImageDataset, ImageSet, root_key
from alimb.errors import UserError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise UserError(f"cannot read {path} as a CIFAR-100 pickle ({err}); delete it and download again") from None


def _split(path: Path) -> ImageSet:
    batch = _unpickle(path)
    try:
        data, labels = batch[b"data"], batch[b"fine_labels"]
    except KeyError as err:
        raise UserError(f"{path} lacks key {err}; is it the python version of CIFAR-100?") from None
    images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (n, 32, 32, 3)
    return ImageSet(np.asarray(labels), arrays=np.ascontiguousarray(images))


def load_cifar100(root: str = "data", download: bool = True) -> ImageDataset:
    """CIFAR-100 train (pool source, 500/class) and test (100/class) from `root/cifar-100-python/`."""
    base = Path(root).expanduser()
    folder = base / "cifar-100-python"
    fetch_or_explain("CIFAR-100", folder, URL, base / "cifar-100-python.tar.gz", MD5, download)
    names = [n.decode() for n in _unpickle(folder / "meta")[b"fine_label_names"]]
    return ImageDataset(_split(folder / "train"), _split(folder / "test"), names, root_key("cifar100", folder))
