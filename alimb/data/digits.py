"""scikit-learn's bundled 8x8 digits: real data available offline, the default dataset."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits as _sk_load_digits

from alimb.data.dataset import ArrayDataset, balanced_split


def load_digits(test_per_class: int = 30, split_seed: int = 0) -> ArrayDataset:
    """Pixel features scaled to [0, 1], with a seeded balanced test split."""
    bunch = _sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # (1797, 64), pixel intensities 0..16
    images = np.repeat(np.round(bunch.images * 255 / 16).astype(np.uint8)[..., None], 3, axis=-1)  # (1797, 8, 8, 3)
    train, test = balanced_split(bunch.target, test_per_class, np.random.default_rng(split_seed))
    return ArrayDataset(
        x[train], bunch.target[train], x[test], bunch.target[test], [str(n) for n in bunch.target_names],
        train_images=images[train], test_images=images[test],
    )
