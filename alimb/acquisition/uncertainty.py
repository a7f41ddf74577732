"""Baselines: random and the classical uncertainty AFs (margin, entropy, least confidence)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from alimb.acquisition.base import Context, Selection, as_probabilities, margin_of, per_row, top_k


def random(ctx: Context) -> Selection:
    """`budget` unlabeled samples chosen uniformly at random."""
    return Selection(ctx.rng.choice(ctx.pool(), size=ctx.budget, replace=False))


def _largest(utility: Callable[[np.ndarray], np.ndarray], name: str, doc: str):
    """An AF that takes the `budget` candidates of largest `utility(scores)`."""

    def select(ctx: Context) -> Selection:
        ctx.need(name, "scores")
        candidates = ctx.pool()
        return Selection(top_k(per_row(utility, ctx.scores, candidates), candidates, ctx.budget, ctx.rng))

    select.__name__ = select.__qualname__ = name
    select.__doc__ = doc
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


margin = _largest(negative_margin, "margin", "The `budget` candidates of smallest margin (UMCS's Eq. 6 inside a class).")
certain = _largest(margin_of, "certain", "The `budget` candidates of largest margin (CMCS's Eq. 5 inside a class).")
entropy = _largest(entropy_of, "entropy", "The `budget` candidates of largest entropy.")
least_confidence = _largest(least_confidence_of, "least_confidence", "The `budget` candidates of least confidence.")
