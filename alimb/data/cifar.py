"""CIFAR-10 and CIFAR-100 from their python pickle archives, read directly (torchvision's CIFAR classes with
download=False insist on the MD5 of the original files).

CIFAR-100: `cifar-100-python/{train,test,meta}`, fine labels. CIFAR-10: `cifar-10-batches-py/{data_batch_1..5,
test_batch,batches.meta}`. Images are rows of 3 072 channel-first bytes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from alimb.data.download import Download, Root, fetch_or_explain
from alimb.data.images import ImageDataset, ImageSet, root_key
from alimb.errors import UserError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
URL10 = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5_10 = "c58f30108f718f92721af3b95e74349a"


def _unpickle(path: Path, name: str) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as err:  # noqa: BLE001 - a damaged pickle raises about anything (EOFError, ValueError, ...)
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UserError(f"cannot read {path} as a {name} pickle ({reason}); delete it and download again") from None


def _split(paths: list[Path], label_key: bytes, name: str) -> ImageSet:
    """The batches at `paths`, in order, as one split of HWC uint8 images."""
    data, labels = [], []
    for path in paths:
        batch = _unpickle(path, name)
        try:
            data.append(np.asarray(batch[b"data"], dtype=np.uint8))
            labels.extend(batch[label_key])
        except KeyError as err:
            raise UserError(f"{path} lacks key {err}; is it the python version of {name}?") from None
    try:
        images = np.concatenate(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (n, 32, 32, 3)
    except ValueError:
        raise UserError(f"{paths[0].parent} holds {name} batches of the wrong size (not 3 072 bytes per image); "
                        "delete it and download again") from None
    if images.shape[0] != len(labels):
        raise UserError(f"{paths[0].parent}: {images.shape[0]} images but {len(labels)} labels; delete it and "
                        "download again")
    return ImageSet(np.asarray(labels), arrays=np.ascontiguousarray(images))


def load_cifar100(root: Root = "data", download: Download = True) -> ImageDataset:
    """CIFAR-100 train (pool source, 500/class) and test (100/class) from `root/cifar-100-python/`."""
    base = Path(root).expanduser()
    folder = base / "cifar-100-python"
    fetch_or_explain("CIFAR-100", folder, URL, base / "cifar-100-python.tar.gz", MD5, download)
    names = [n.decode() for n in _unpickle(folder / "meta", "CIFAR-100")[b"fine_label_names"]]
    return ImageDataset(_split([folder / "train"], b"fine_labels", "CIFAR-100"),
                        _split([folder / "test"], b"fine_labels", "CIFAR-100"), names, root_key("cifar100", folder))


def load_cifar10(root: Root = "data", download: Download = True) -> ImageDataset:
    """CIFAR-10 train (pool source, 5 000/class, the five batches in order) and test (1 000/class) from
    `root/cifar-10-batches-py/`."""
    base = Path(root).expanduser()
    folder = base / "cifar-10-batches-py"
    fetch_or_explain("CIFAR-10", folder, URL10, base / "cifar-10-python.tar.gz", MD5_10, download)
    names = [n.decode() for n in _unpickle(folder / "batches.meta", "CIFAR-10")[b"label_names"]]
    train = _split([folder / f"data_batch_{i}" for i in range(1, 6)], b"labels", "CIFAR-10")
    return ImageDataset(train, _split([folder / "test_batch"], b"labels", "CIFAR-10"), names,
                        root_key("cifar10", folder))
