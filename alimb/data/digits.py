"""scikit-learn's bundled 8x8 digits: real data available offline, the default dataset."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path
from typing import Annotated

import numpy as np

from alimb.data.dataset import ArrayDataset, balanced_split
from alimb.options import Count, Doc, Positive


def digits_file() -> Path:
    """The CSV scikit-learn ships (64 pixel values 0..16 and the label per row), found without importing
    scikit-learn (over a second of start-up for a file read)."""
    spec = importlib.util.find_spec("sklearn")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


@functools.cache
def _rows() -> np.ndarray:
    """The CSV's rows, parsed once per process (a sweep's jobs share the process on the basic launcher: 22 ms
    each); read-only, so no job can change another's."""
    with gzip.open(digits_file(), "rt") as f:
        rows = np.loadtxt(f, delimiter=",")
    rows.flags.writeable = False
    return rows


def load_digits(
    test_per_class: Annotated[Positive, Doc("the balanced test split: this many images per class")] = 30,
    split_seed: Annotated[Count, Doc("seeds the test split")] = 0,
) -> ArrayDataset:
    """Pixel features scaled to [0, 1], with a seeded balanced test split."""
    rows = _rows()
    data, target = rows[:, :-1], rows[:, -1].astype(np.int64)
    x = (data / 16.0).astype(np.float32)  # (1797, 64), pixel intensities 0..16
    pixels = np.round(data.reshape(-1, 8, 8) * 255 / 16).astype(np.uint8)
    images = np.repeat(pixels[..., None], 3, axis=-1)  # (1797, 8, 8, 3)
    train, test = balanced_split(target, test_per_class, np.random.default_rng(split_seed))
    return ArrayDataset(
        x[train], target[train], x[test], target[test], [str(n) for n in range(10)],
        train_images=images[train], test_images=images[test],
    )
