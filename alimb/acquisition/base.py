"""What every acquisition function shares: the result type, input checks, tie-broken top-k."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from alimb.errors import UserError


@dataclass(frozen=True)
class Selection:
    """Selected absolute pool indices; the first `n_quota` came from minority-class quotas (or a balancing rule)."""

    indices: np.ndarray  # (budget,) int64, absolute into the pool
    n_quota: int = 0
    quota_requested: int = 0  # sum of the minority quotas m_c (Eq. 3) before the budget capped them
    info: dict = field(default_factory=dict)  # for the records (solver status, arms chosen); *_seconds: timings

    @property
    def n_auxiliary(self) -> int:
        return len(self.indices) - self.n_quota


class Oracle:
    """The simulated annotator, for AFs that read the labels of samples they picked earlier in the same batch
    (`reveal_within_batch`); remembers what it revealed, so the loop can check only selected samples were asked."""

    def __init__(self, labels: np.ndarray):
        self._labels = np.asarray(labels)
        self._asked: list[np.ndarray] = []

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        self._asked.append(idx.copy())
        return self._labels[idx]

    @property
    def revealed(self) -> np.ndarray:
        """Absolute indices whose labels were revealed so far."""
        return np.concatenate(self._asked) if self._asked else np.empty(0, dtype=np.int64)


def unlabeled_candidates(labeled_mask: np.ndarray, budget: int) -> np.ndarray:
    """Absolute indices of the unlabeled samples, after checking the budget fits in them."""
    labeled_mask = np.asarray(labeled_mask, dtype=bool)
    candidates = np.flatnonzero(~labeled_mask)
    if int(budget) != budget or budget <= 0:
        raise UserError(f"acquisition budget must be a positive integer, got {budget}; set al.per_iteration > 0")
    if budget > candidates.size:
        raise UserError(
            f"acquisition budget {budget} exceeds the {candidates.size} unlabeled samples left in the pool; "
            "lower al.per_iteration or al.iterations"
        )
    return candidates


def top_k(utility: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The k candidates of largest utility, ties broken at random by `rng`."""
    utility = np.asarray(utility, dtype=np.float64)
    assert utility.shape == candidates.shape, "one utility per candidate"
    assert np.isfinite(utility).all(), "utilities must be finite"
    tiebreak = rng.random(candidates.size)
    order = np.lexsort((tiebreak, -utility))  # by utility descending, then by the random key
    return candidates[order[:k]]


ROW_BLOCK_ELEMENTS = 1 << 22  # rows of a (n, K) array handled together: 16 MiB of float32


def row_blocks(n_rows: int, width: int) -> Iterator[slice]:
    """Slices of about ROW_BLOCK_ELEMENTS elements over n_rows rows of `width` columns."""
    step = max(1, ROW_BLOCK_ELEMENTS // max(1, width))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def per_row(fn: Callable[[np.ndarray], np.ndarray], scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """fn over scores[rows] in row blocks, concatenated: (len(rows), ...) without a copy of every row at once."""
    scores = np.asarray(scores)
    parts = [fn(scores[rows[b]]) for b in row_blocks(rows.size, scores.shape[1])]
    return np.concatenate(parts) if parts else fn(scores[rows])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (float32; zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores as class probabilities: rows already on the simplex pass through, others get a softmax."""
    scores = np.asarray(scores, dtype=np.float64)
    if (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-6):
        return scores
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def margin_of(scores: np.ndarray) -> np.ndarray:
    """marg(x) = top1(x) - top2(x) of the scores (paper Eq. 1): (n,)."""
    top2 = np.partition(np.asarray(scores, dtype=np.float64), -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]
