"""Minority-class sampling (paper §IV-B): quotas for minority classes (Eq. 3), candidates predicted
as each minority class (Eq. 4), a within-class choice (CMCS Eq. 5, UMCS Eq. 6, DMCS Eq. 7), and an
auxiliary AF for the budget left."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from alimb.acquisition.base import AF, Context, Selection, paper_method, per_row
from alimb.options import Doc, Part


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


@paper_method
def minority_sampling(
    ctx: Context, *,
    within: Annotated[AF, Part("acquisition", narrows=True), Doc(
        "chooses inside each minority class's predicted candidates (an AF of conf/acquisition)")],
    auxiliary: Annotated[AF, Doc("fills the budget the quotas leave (an AF of conf/acquisition)")],
) -> Selection:
    """Fill minority-class quotas from samples predicted as those classes with `within`, the rest with `auxiliary`.

    `within` chooses m_c of class c's candidates D^U(c) (Eq. 4) from the context narrowed to them, with the
    class's labeled samples as what is covered: `margin` is UMCS (Eq. 6), `certain` CMCS (Eq. 5), `coreset` DMCS
    (Eq. 7). `auxiliary` fills the budget left from the rest of the pool, the quota picks marked as picked.
    """
    ctx.need("minority_sampling", "scores")
    unlabeled = ctx.pool()
    quotas = minority_quotas(ctx.class_counts())
    predicted = per_row(lambda s: np.argmax(s, axis=1), ctx.scores, unlabeled)  # Eq. 4: D^U(c), predicted as c
    take = allocate(quotas, np.bincount(predicted, minlength=ctx.n_classes), ctx.budget)
    picked: list[np.ndarray] = []
    within_info: dict[str, dict] = {}
    for c in np.flatnonzero(take):
        candidates = unlabeled[predicted == c]
        if candidates.size == take[c]:
            picked.append(candidates)
        else:
            centers = np.flatnonzero(ctx.labeled_mask & (ctx.labels == c))
            inside = ctx.replace(candidates=candidates, budget=int(take[c]), centers=centers)
            chosen = within(inside)
            picked.append(np.asarray(chosen.indices, dtype=np.int64))
            if chosen.info:
                within_info[str(int(c))] = chosen.info
    quota_picks = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
    return complete(ctx, quota_picks, auxiliary, quota_requested=int(quotas.sum()), within_info=within_info)


def complete(ctx: Context, quota_picks: np.ndarray, auxiliary: AF, quota_requested: int = 0,
             within_info: dict[str, dict] | None = None) -> Selection:
    """The quota picks, then `auxiliary` over the rest of the pool for the budget they leave. The records get the
    auxiliary's info and, under "within", the within-class AF's per class (a fallback there counts as the AF's)."""
    rest = ctx.budget - quota_picks.size
    info: dict = {}
    if rest:
        picked = quota_picks if ctx.picked is None else np.union1d(ctx.picked, quota_picks)
        fill = auxiliary(ctx.replace(budget=rest, picked=picked))
        quota_picks, info = np.concatenate([quota_picks, fill.indices]), dict(fill.info)
    if within_info:
        info["within"] = within_info
        fallbacks = [f"within class {c}: {i['fallback']}" for c, i in within_info.items() if i.get("fallback")]
        if fallbacks and not info.get("fallback"):
            info["fallback"] = "; ".join(fallbacks)
    return Selection(quota_picks, n_quota=quota_picks.size - rest, quota_requested=quota_requested, info=info)
