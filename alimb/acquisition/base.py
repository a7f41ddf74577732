"""What every acquisition function shares: the context it reads, the result type, tie-broken top-k."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from alimb.errors import UserError


@dataclass(frozen=True)
class Selection:
    """Selected absolute pool indices; the first `n_quota` filled the MCS family's minority-class quotas (Eq. 3)."""

    indices: np.ndarray  # (budget,) int64, absolute into the pool
    n_quota: int = 0
    quota_requested: int = 0  # sum of the minority quotas m_c (Eq. 3) before the budget capped them
    # for the records (solver status, arms chosen); *_seconds: timings; "fallback": why the AF's own rule could not
    # run and what ran instead (alimb-report shows the share of iterations that fell back)
    info: dict = field(default_factory=dict)

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


@dataclass(frozen=True)
class Context:
    """Everything the loop knows when an AF selects; read-only (an AF never writes into its arrays: tested).

    An AF is any callable `af(ctx: Context) -> Selection`; its own settings are keyword arguments bound by
    the config (`_partial_: true`). A composite AF hands its inner AFs this context whole, narrowed with
    `replace` (a class's candidates, the budget left, the picks already made), never a choice of arguments.
    """

    labels: np.ndarray  # (n_pool,) true label where labeled, -1 elsewhere: an AF never sees unlabeled labels
    labeled_mask: np.ndarray  # (n_pool,) bool
    n_classes: int  # a class may have no labeled sample yet
    budget: int  # how many samples to select
    rng: np.random.Generator  # the only source of randomness (ties included)
    scores: np.ndarray | None = None  # (n_pool, n_classes) probabilities (fine tuning) or SVM decision values
    features: np.ndarray | None = None  # (n_pool, d) the scheme's feature space (F_g for the SVMs, M_{k-1}'s for FT)
    fg: np.ndarray | None = None  # (n_pool, d_g) F_g, the pretrained backbone's features, whatever the scheme
    head: tuple | None = None  # (W (d, n_classes), b (n_classes,)): the scheme's linear last layer over `features`
    oracle: Oracle | None = None  # labels of samples the AF selects, for `reveal_within_batch`; None: none revealed
    candidates: np.ndarray | None = None  # absolute indices the AF may pick from (None: every unlabeled sample)
    picked: np.ndarray | None = None  # chosen earlier in this batch by an enclosing AF: not pickable, covered
    centers: np.ndarray | None = None  # what a diversity AF counts as covered (None: labeled and picked samples)

    @property
    def n_pool(self) -> int:
        return len(self.labeled_mask)

    def replace(self, **changes: Any) -> "Context":
        return dataclasses.replace(self, **changes)

    def available(self) -> np.ndarray:
        """(n_pool,) bool: the samples this AF may pick."""
        mask = ~np.asarray(self.labeled_mask, dtype=bool)
        if self.picked is not None:
            mask[self.picked] = False
        if self.candidates is not None:
            allowed = np.zeros_like(mask)
            allowed[self.candidates] = True
            mask &= allowed
        return mask

    def pool(self) -> np.ndarray:
        """Absolute indices of the samples this AF may pick (ascending), after checking the budget fits in them."""
        candidates = np.flatnonzero(self.available())
        budget = self.budget
        if int(budget) != budget or budget <= 0:
            raise UserError(f"acquisition budget must be a positive integer, got {budget}; set al.per_iteration > 0")
        if budget > candidates.size:
            raise UserError(
                f"acquisition budget {budget} exceeds the {candidates.size} unlabeled samples left in the pool; "
                "lower al.per_iteration or al.iterations"
            )
        return candidates

    def covered(self) -> np.ndarray:
        """Absolute indices a diversity AF starts from as centers: `centers`, else the labeled and picked samples."""
        if self.centers is not None:
            return np.asarray(self.centers, dtype=np.int64)
        labeled = np.flatnonzero(self.labeled_mask)
        return labeled if self.picked is None else np.union1d(labeled, self.picked)

    def class_counts(self) -> np.ndarray:
        """(n_classes,) labeled count per class."""
        return np.bincount(self.labels[self.labeled_mask], minlength=self.n_classes).astype(np.int64)

    def reveals(self, reveal_within_batch: bool) -> bool:
        """Whether an AF set to reveal labels within its batch may: only with an oracle (the loop's; a bandit's
        arms propose without one, and count the predicted class instead)."""
        return reveal_within_batch and self.oracle is not None

    def reveal(self, i: int) -> int:
        """The oracle's label of pick i."""
        return int(self.oracle(np.array([i]))[0])

    def need(self, af: str, *names: str) -> None:
        """UserError when an input the AF needs is missing (e.g. scores before any model was trained)."""
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise UserError(f"acquisition {af} needs {', '.join(missing)}, which this context does not have")


AF = Callable[[Context], Selection]


def whole_pool(af: Callable) -> Callable:
    """Marks an AF that selects over the whole pool (a graph of it): it cannot choose inside one class's
    candidates, so the MCS family refuses it as `within` before any work (alimb.options)."""
    af.whole_pool = True
    return af


def narrows(*slots: str) -> Callable:
    """Marks a composite AF that hands the AFs of `slots` a narrowed set of candidates: an AF that selects over the
    whole pool cannot serve there, or anywhere below, and config refuses it before any work (alimb.config)."""

    def mark(af: Callable) -> Callable:
        af.narrows = slots
        return af

    return mark


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


def is_simplex(scores: np.ndarray) -> bool:
    """Whether every row is a probability vector (fine tuning's scores) rather than decision values."""
    scores = np.asarray(scores, dtype=np.float64)
    return bool((scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-6))


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores as class probabilities: rows already on the simplex pass through, others get a softmax."""
    scores = np.asarray(scores, dtype=np.float64)
    if is_simplex(scores):
        return scores
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def margin_of(scores: np.ndarray) -> np.ndarray:
    """marg(x) = top1(x) - top2(x) of the scores (paper Eq. 1): (n,)."""
    top2 = np.partition(np.asarray(scores, dtype=np.float64), -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]
