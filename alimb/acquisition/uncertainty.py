"""Baselines: random and the classical uncertainty AFs (margin, entropy, least confidence)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from alimb.acquisition.base import Selection, as_probabilities, margin_of, per_row, top_k, unlabeled_candidates


def random(*, labeled_mask: np.ndarray, budget: int, rng: np.random.Generator, **_) -> Selection:
    """`budget` unlabeled samples chosen uniformly at random."""
    candidates = unlabeled_candidates(labeled_mask, budget)
    return Selection(rng.choice(candidates, size=budget, replace=False))


def _most_uncertain(uncertainty: Callable[[np.ndarray], np.ndarray]):
    """An AF that takes the `budget` unlabeled samples of largest `uncertainty(scores)`."""

    def select(*, scores: np.ndarray, labeled_mask: np.ndarray, budget: int, rng: np.random.Generator, **_):
        candidates = unlabeled_candidates(labeled_mask, budget)
        return Selection(top_k(per_row(uncertainty, scores, candidates), candidates, budget, rng))

    select.__doc__ = f"The `budget` unlabeled samples of largest {uncertainty.__name__}."
    return select


def negative_margin(scores: np.ndarray) -> np.ndarray:
    """-(top1 - top2): smallest margin = most uncertain."""
    return -margin_of(scores)


def entropy_of(scores: np.ndarray) -> np.ndarray:
    """Shannon entropy of the class probabilities."""
    p = as_probabilities(scores)
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)


def least_confidence_of(scores: np.ndarray) -> np.ndarray:
    """1 - max class probability."""
    return 1.0 - as_probabilities(scores).max(axis=1)


margin = _most_uncertain(negative_margin)
margin.__name__ = "margin"
entropy = _most_uncertain(entropy_of)
entropy.__name__ = "entropy"
least_confidence = _most_uncertain(least_confidence_of)
least_confidence.__name__ = "least_confidence"
