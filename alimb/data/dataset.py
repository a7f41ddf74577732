"""The in-memory dataset every loader returns, and the seeded balanced test split."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from alimb.errors import UserError

log = logging.getLogger(__name__)


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
    train_ids: list[str] | None = None  # each training sample's id (a person's answers name it); None: its index
    train_paths: list[str] | None = None  # each training sample's image file, where it has one (shown to a person)

    def __post_init__(self):
        self.train_y = np.asarray(self.train_y, dtype=np.int64)
        self.test_y = np.asarray(self.test_y, dtype=np.int64)
        if not self.class_names:
            top = max(int(self.train_y.max(initial=-1)), int(self.test_y.max(initial=-1)))
            self.class_names = [str(c) for c in range(top + 1)]
        assert len(self.train_x) == len(self.train_y), "one training label per training sample"
        assert len(self.test_x) == len(self.test_y), "one test label per test sample"

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(training labels, test labels); -1 throughout the training split of data without labels."""
        return self.train_y, self.test_y

    def sample_ids(self) -> list[str]:
        """The training samples' ids (their index as text when the data names none)."""
        return list(self.train_ids) if self.train_ids is not None else [str(i) for i in range(len(self.train_y))]


UNLABELED = -1  # a training label nobody has given yet: data brought for a person to label


def is_unlabeled(train_y: np.ndarray) -> bool:
    """Whether a training split carries no labels (all -1); a split with some labels and some -1 is refused."""
    train_y = np.asarray(train_y)
    missing = train_y == UNLABELED
    if missing.any() and not missing.all():
        raise UserError(f"{int(missing.sum())} of {train_y.size} training samples have no label; give every sample a "
                        "label, or none (oracle=human: a person labels them)")
    return bool(missing.all()) and train_y.size > 0


def _named(classes: np.ndarray) -> str:
    shown = ", ".join(str(c) for c in classes[:5])
    return shown + (f" and {classes.size - 5} more" if classes.size > 5 else "")


def check_labels(train_y: np.ndarray, test_y: np.ndarray, n_classes: int) -> None:
    """Refuse labels that would make a run meaningless: fewer than two classes, a label range far beyond
    the samples, classes without a training sample (a test class absent from training included)."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if n_classes > train_y.size:
        raise UserError(
            f"labels go up to {n_classes - 1} but there are only {train_y.size} training samples; "
            "labels must be class indices 0..C-1"
        )
    train_counts = np.bincount(train_y, minlength=n_classes)
    present = np.flatnonzero(train_counts)
    if present.size < 2:
        raise UserError(f"the training split has {present.size} class(es); active learning needs at least two")
    absent = np.flatnonzero(train_counts == 0)
    if absent.size:
        in_test = np.intersect1d(absent, test_y)
        raise UserError(
            f"class(es) {_named(absent)} have no training sample"
            + (f" (class(es) {_named(in_test)} appear in the test split)" if in_test.size else "")
            + "; labels must be 0..C-1 with every class in the training split"
        )
    missing_in_test = np.setdiff1d(np.arange(n_classes), test_y)
    if missing_in_test.size:
        log.warning("class(es) %s have no test sample: accuracy is the mean over the other classes", _named(missing_in_test))


def check_test(test_y: np.ndarray) -> None:
    """Refuse a run without a test set (every test image unreadable, say): its accuracy would be undefined."""
    if np.asarray(test_y).size == 0:
        raise UserError("the test split is empty (no test sample could be read); check the test list or folder and "
                        "that its images exist under the dataset's root")


def balanced_split(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, test) with exactly `per_class` test samples of every class."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if per_class <= 0:
        raise UserError(f"dataset.loader.test_per_class must be at least 1, got {per_class}")
    if (counts <= per_class).any():
        smallest = classes[np.argmin(counts)]
        raise UserError(
            f"cannot hold out {per_class} test samples per class: class {smallest} has only {counts.min()}; "
            "lower dataset.loader.test_per_class"
        )
    test = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes])
    test.sort()
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test
