"""Minority-class sampling (paper §IV-B): quotas for minority classes (Eq. 3), candidates predicted
as each minority class (Eq. 4), a within-class choice (CMCS Eq. 5, UMCS Eq. 6, DMCS Eq. 7), and an
auxiliary AF for the budget left."""

from __future__ import annotations

from typing import Callable

import numpy as np

from alimb.acquisition.base import Selection, margin_of, per_row, top_k, unlabeled_candidates
from alimb.acquisition.kcenter import kcenter_greedy


def minority_quotas(class_counts: np.ndarray) -> np.ndarray:
    """m_c = ceil(mu_k - s_c) for classes with s_c < mu_k = s_k / n, else 0 (Eq. 3), in exact integers."""
    counts = np.asarray(class_counts, dtype=np.int64)
    deficit = int(counts.sum()) - counts.size * counts  # n * (mu_k - s_c)
    return np.where(deficit > 0, -(-deficit // counts.size), 0)


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """`total` split proportionally to integer `weights` by largest remainder (ties: larger weight, lower index)."""
    weights = np.asarray(weights, dtype=np.int64)
    whole = int(weights.sum())
    if whole == 0:
        return np.zeros_like(weights)
    share = weights * total  # proportional share, times `whole`
    parts = share // whole
    order = np.lexsort((np.arange(weights.size), -weights, -(share % whole)))
    parts[order[:total - int(parts.sum())]] += 1
    return parts


def allocate(quotas: np.ndarray, candidates: np.ndarray, budget: int) -> np.ndarray:
    """How many to take from each class: at most its quota and its candidates, at most `budget` in all.

    When the quotas add up to more than the budget, the budget is apportioned proportionally to the
    quotas; a class that cannot fill its share (too few candidates) hands the rest, by the same
    apportionment, to the classes that still have candidates and unfilled quota, until the budget,
    the quotas or the candidates are exhausted (SPEC §4, step 2).
    """
    capacity = np.minimum(quotas, candidates).astype(np.int64)
    taken = np.zeros_like(capacity)
    left = int(budget)
    while left > 0:
        room = capacity - taken
        if room.sum() <= left:
            return taken + room
        share = apportion(left, np.where(room > 0, quotas, 0))
        step = np.minimum(share, room)
        taken += step
        left -= int(step.sum())
    return taken


def certain(candidates: np.ndarray, k: int, *, scores: np.ndarray, rng: np.random.Generator, **_) -> np.ndarray:
    """CMCS (Eq. 5): the k candidates of largest margin."""
    return top_k(per_row(margin_of, scores, candidates), candidates, k, rng)


def uncertain(candidates: np.ndarray, k: int, *, scores: np.ndarray, rng: np.random.Generator, **_) -> np.ndarray:
    """UMCS (Eq. 6): the k candidates of smallest margin."""
    return top_k(-per_row(margin_of, scores, candidates), candidates, k, rng)


def diverse(
    candidates: np.ndarray, k: int, *, features: np.ndarray, centers: np.ndarray, rng: np.random.Generator,
    device: str = "auto", lazy: bool = True, **_,
) -> np.ndarray:
    """DMCS (Eq. 7): k-center greedy inside the candidates, the class's labeled samples as centers."""
    return kcenter_greedy(features, candidates, centers, k, rng, device, lazy)


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
    quotas = minority_quotas(np.bincount(labels[labeled_mask], minlength=n_classes))
    predicted = per_row(lambda s: np.argmax(s, axis=1), scores, unlabeled)  # Eq. 4: D^U(c), predicted as c
    take = allocate(quotas, np.bincount(predicted, minlength=n_classes), budget)
    picked: list[np.ndarray] = []
    for c in np.flatnonzero(take):
        candidates = unlabeled[predicted == c]
        if candidates.size == take[c]:
            picked.append(candidates)
        else:
            centers = np.flatnonzero(labeled_mask & (labels == c))
            picked.append(within(candidates, int(take[c]), scores=scores, features=features, centers=centers, rng=rng))
    quota_picks = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
    return complete(quota_picks, auxiliary, scores=scores, features=features, labels=labels,
                    labeled_mask=labeled_mask, budget=budget, rng=rng, quota_requested=int(quotas.sum()))


def complete(quota_picks: np.ndarray, auxiliary: Callable[..., Selection], *, labeled_mask: np.ndarray, budget: int,
             quota_requested: int = 0, **inputs) -> Selection:
    """The quota picks, then `auxiliary` over the rest of the pool for the budget they leave."""
    rest = budget - quota_picks.size
    if rest == 0:
        return Selection(quota_picks, n_quota=quota_picks.size, quota_requested=quota_requested)
    taken = labeled_mask.copy()
    taken[quota_picks] = True
    fill = auxiliary(labeled_mask=taken, budget=rest, **inputs)
    return Selection(np.concatenate([quota_picks, fill.indices]), n_quota=quota_picks.size,
                     quota_requested=quota_requested)
