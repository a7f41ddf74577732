"""The active-learning pool: absolute indices, the iteration each sample was labeled in, class counts."""

from __future__ import annotations

import numpy as np


def imbalance_ratio(counts: np.ndarray) -> float:
    """ir = std / mean of per-class counts (population std, as in the paper's Table I)."""
    counts = np.asarray(counts, dtype=np.float64)
    mean = counts.mean()
    return float(counts.std() / mean) if mean > 0 else float("nan")


def minority_classes(counts: np.ndarray) -> np.ndarray:
    """Boolean mask of classes whose count is below the mean count per class (paper Eq. 3)."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts < counts.mean()


SKIPPED = -2  # labeled_round of a sample a person skipped ("unsure"): it left the pool, never asked again


class Pool:
    """Labels of the pool (the simulated oracle's, or a person's answers: -1 until given) and `labeled_round`: the
    iteration each sample was labeled in (-1: unlabeled, SKIPPED: a person skipped it)."""

    def __init__(self, labels: np.ndarray, n_classes: int):
        self.labels = np.asarray(labels, dtype=np.int64)  # (n_pool,)
        self.n_classes = int(n_classes)
        self.labeled_round = np.full(len(self.labels), -1, dtype=np.int64)  # -1 = unlabeled

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labeled_mask(self) -> np.ndarray:
        return self.labeled_round >= 0

    @property
    def labeled_idx(self) -> np.ndarray:
        return np.flatnonzero(self.labeled_round >= 0)

    @property
    def unlabeled_idx(self) -> np.ndarray:
        return np.flatnonzero(self.labeled_round == -1)

    @property
    def skipped_idx(self) -> np.ndarray:
        return np.flatnonzero(self.labeled_round == SKIPPED)

    def known_labels(self) -> np.ndarray:
        """Labels as an AF may see them: the true label where labeled, -1 elsewhere."""
        return np.where(self.labeled_mask, self.labels, -1)

    def label(self, idx: np.ndarray, iteration: int) -> None:
        """Ask the oracle for the labels of `idx` (absolute indices) in `iteration`."""
        idx = np.asarray(idx, dtype=np.int64)
        assert np.unique(idx).size == idx.size, "selection contains duplicates"
        assert not self.labeled_mask[idx].any(), "selected an already labeled sample"
        self.labeled_round[idx] = iteration

    def skip(self, idx: np.ndarray) -> None:
        """Samples a person skipped: they leave the pool (never labeled, never asked again)."""
        idx = np.asarray(idx, dtype=np.int64)
        assert (self.labeled_round[idx] == -1).all(), "skipped a sample that was not in the pool"
        self.labeled_round[idx] = SKIPPED

    def class_counts(self, upto: int | None = None) -> np.ndarray:
        """Labeled count per class, optionally only of iterations <= `upto`: (n_classes,)."""
        mask = self.labeled_mask if upto is None else (self.labeled_round >= 0) & (self.labeled_round <= upto)
        return np.bincount(self.labels[mask], minlength=self.n_classes)

    def pool_counts(self) -> np.ndarray:
        """Count per class over the whole pool, as far as its labels are known: (n_classes,)."""
        return np.bincount(self.labels[self.labels >= 0], minlength=self.n_classes)
