"""Minority-class sampling (paper §IV-B): quotas for minority classes (Eq. 3), candidates predicted
as each minority class (Eq. 4), a within-class choice (CMCS Eq. 5, UMCS Eq. 6, DMCS Eq. 7), and an
auxiliary AF for the budget left."""

from __future__ import annotations

from typing import Callable

import numpy as np

from alimb.acquisition.base import Selection, margin_of, top_k, unlabeled_candidates
from alimb.acquisition.kcenter import kcenter_greedy


def minority_quotas(class_counts: np.ndarray, budget: int) -> np.ndarray:
    """m_c = ceil(mu_k - s_c) for classes with s_c < mu_k = s_k / n, else 0 (Eq. 3); scaled to the budget.

    When the quotas add up to more than the budget, the budget is apportioned proportionally to
    them by largest remainder (ties: larger quota first, then lower class index).
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    n, s_k = counts.size, int(counts.sum())
    deficit = s_k - n * counts  # n * (mu_k - s_c), exact in integers
    quotas = np.where(deficit > 0, -(-deficit // n), 0)  # ceil(deficit / n) for minority classes
    total = int(quotas.sum())
    if total <= budget:
        return quotas
    share = quotas * budget  # proportional share, times `total`
    apportioned = share // total
    leftover = budget - int(apportioned.sum())
    order = np.lexsort((np.arange(n), -quotas, -(share % total)))  # largest remainder first
    apportioned[order[:leftover]] += 1
    return apportioned


def certain(candidates: np.ndarray, k: int, *, scores: np.ndarray, rng: np.random.Generator, **_) -> np.ndarray:
    """CMCS (Eq. 5): the k candidates of largest margin."""
    return top_k(margin_of(scores[candidates]), candidates, k, rng)


def uncertain(candidates: np.ndarray, k: int, *, scores: np.ndarray, rng: np.random.Generator, **_) -> np.ndarray:
    """UMCS (Eq. 6): the k candidates of smallest margin."""
    return top_k(-margin_of(scores[candidates]), candidates, k, rng)


def diverse(
    candidates: np.ndarray, k: int, *, features: np.ndarray, centers: np.ndarray, rng: np.random.Generator,
    device: str = "auto", **_,
) -> np.ndarray:
    """DMCS (Eq. 7): k-center greedy inside the candidates, the class's labeled samples as centers."""
    return kcenter_greedy(features, candidates, centers, k, rng, device)


def minority_sampling(
    *,
    scores: np.ndarray,
    features: np.ndarray | None = None,
    labels: np.ndarray,
    labeled_mask: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    within: Callable[..., np.ndarray],
    auxiliary: Callable[..., Selection],
    **_,
) -> Selection:
    """Fill minority-class quotas from samples predicted as those classes, the rest with `auxiliary`."""
    unlabeled = unlabeled_candidates(labeled_mask, budget)
    n_classes = scores.shape[1]
    known = labels[labeled_mask]  # (n_labeled,) true labels of the labeled samples
    quotas = minority_quotas(np.bincount(known, minlength=n_classes), budget)
    predicted = np.argmax(scores[unlabeled], axis=1)
    picked: list[np.ndarray] = []
    for c in np.flatnonzero(quotas):
        candidates = unlabeled[predicted == c]
        if candidates.size <= quotas[c]:
            picked.append(candidates)
        else:
            centers = np.flatnonzero(labeled_mask & (labels == c))
            picked.append(within(candidates, int(quotas[c]), scores=scores, features=features, centers=centers, rng=rng))
    quota_picks = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
    return complete(quota_picks, auxiliary, scores=scores, features=features, labels=labels,
                    labeled_mask=labeled_mask, budget=budget, rng=rng)


def complete(quota_picks: np.ndarray, auxiliary: Callable[..., Selection], *, labeled_mask: np.ndarray, budget: int,
             **inputs) -> Selection:
    """The quota picks, then `auxiliary` over the rest of the pool for the budget they leave."""
    rest = budget - quota_picks.size
    if rest == 0:
        return Selection(quota_picks, n_quota=quota_picks.size)
    taken = labeled_mask.copy()
    taken[quota_picks] = True
    fill = auxiliary(labeled_mask=taken, budget=rest, **inputs)
    return Selection(np.concatenate([quota_picks, fill.indices]), n_quota=quota_picks.size)
