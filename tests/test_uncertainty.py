"""Exact small cases for the baseline AFs."""

import numpy as np

from alimb.acquisition import entropy, least_confidence, margin, random
from alimb.acquisition.base import as_probabilities, margin_of, top_k
from tests.helpers import select

SCORES = np.array([
    [0.50, 0.40, 0.10],  # margin 0.10
    [0.90, 0.05, 0.05],  # margin 0.85
    [0.34, 0.33, 0.33],  # margin 0.01, highest entropy
    [0.60, 0.30, 0.10],  # margin 0.30
])


def call(af, budget, labeled=(), scores=SCORES, seed=0):
    mask = np.zeros(len(scores), dtype=bool)
    mask[list(labeled)] = True
    return select(af, scores=scores, labeled_mask=mask, budget=budget, rng=np.random.default_rng(seed)).indices


def test_margin_values():
    np.testing.assert_allclose(margin_of(SCORES), [0.10, 0.85, 0.01, 0.30])


def test_margin_takes_smallest_margins_first():
    assert call(margin, 3).tolist() == [2, 0, 3]


def test_margin_skips_labeled():
    assert call(margin, 2, labeled=[2]).tolist() == [0, 3]


def test_entropy_and_least_confidence_order():
    assert call(entropy, 2).tolist() == [2, 0]
    assert call(least_confidence, 4).tolist() == [2, 0, 3, 1]


def test_decision_values_get_a_softmax_probabilities_pass_through():
    np.testing.assert_array_equal(as_probabilities(SCORES), SCORES)
    dec = np.array([[1.0, -1.0], [0.0, 0.0]])
    np.testing.assert_allclose(as_probabilities(dec), [[1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))], [0.5, 0.5]])


def test_ties_broken_by_the_generator():
    tied = np.tile([0.5, 0.5], (6, 1))
    picks = {tuple(call(margin, 2, scores=tied, seed=s)) for s in range(20)}
    assert len(picks) > 1, "ties always broken the same way regardless of the generator"
    assert call(margin, 2, scores=tied, seed=3).tolist() == call(margin, 2, scores=tied, seed=3).tolist()


def test_top_k_orders_by_utility():
    cand = np.array([10, 11, 12, 13])
    assert top_k(np.array([0.2, 0.9, 0.5, 0.1]), cand, 2, np.random.default_rng(0)).tolist() == [11, 12]


def test_random_is_uniform_over_unlabeled():
    mask = np.zeros(10, dtype=bool)
    mask[:5] = True
    counts = np.zeros(10)
    for s in range(400):
        counts[select(random, labeled_mask=mask, budget=2, rng=np.random.default_rng(s)).indices] += 1
    assert counts[:5].sum() == 0
    assert counts[5:].min() > 110 and counts[5:].max() < 210  # expected 160 each
