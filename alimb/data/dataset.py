"""The in-memory dataset every loader returns, and the seeded balanced test split."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from alimb.errors import UserError


@dataclass
class ArrayDataset:
    """A training split (the future pool) and a balanced test split, as arrays."""

    train_x: np.ndarray  # (n_train, ...) features, or images for fine-tuning schemes
    train_y: np.ndarray  # (n_train,) int64 in [0, n_classes)
    test_x: np.ndarray  # (n_test, ...)
    test_y: np.ndarray  # (n_test,)
    class_names: list[str] = field(default_factory=list)
    train_images: np.ndarray | None = None  # (n_train, H, W, 3) uint8, for fine-tuning schemes
    test_images: np.ndarray | None = None

    def __post_init__(self):
        self.train_y = np.asarray(self.train_y, dtype=np.int64)
        self.test_y = np.asarray(self.test_y, dtype=np.int64)
        if not self.class_names:
            self.class_names = [str(c) for c in range(int(max(self.train_y.max(), self.test_y.max())) + 1)]
        assert len(self.train_x) == len(self.train_y), "one training label per training sample"
        assert len(self.test_x) == len(self.test_y), "one test label per test sample"

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def balanced_split(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, test) with exactly `per_class` test samples of every class."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if per_class <= 0 or (counts <= per_class).any():
        smallest = classes[np.argmin(counts)]
        raise UserError(
            f"cannot hold out {per_class} test samples per class: class {smallest} has only {counts.min()}; "
            "lower dataset.loader.test_per_class"
        )
    test = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes])
    test.sort()
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test
