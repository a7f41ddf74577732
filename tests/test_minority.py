"""Minority-class sampling, coreset and cds-bal on cases worked out by hand."""

import numpy as np
import pytest

from alimb.acquisition import cds_bal, coreset, kcenter_greedy, margin, minority_quotas, minority_sampling, random
from alimb.acquisition.minority import certain, diverse, uncertain


@pytest.mark.parametrize(
    "counts,budget,expected",
    [
        ([5, 1, 3, 0], 10, [0, 2, 0, 3]),  # mu = 2.25: ceil(1.25) = 2, ceil(2.25) = 3; class 2 is majority
        ([3, 3, 3], 10, [0, 0, 0]),  # no minority class
        ([10, 0, 0, 2], 4, [0, 2, 2, 0]),  # quotas 3, 3, 1 > 4: shares 1.71, 1.71, 0.57 -> 1, 1, 0 + remainders
        ([6, 0, 0], 3, [0, 2, 1]),  # quotas 2, 2 > 3: equal remainders, lower class index first
        ([4, 4, 0, 0], 100, [0, 0, 2, 2]),  # classes with no labeled sample are minority
    ],
)
def test_quotas_and_apportionment(counts, budget, expected):
    quotas = minority_quotas(np.array(counts), budget)
    assert quotas.tolist() == expected
    assert quotas.sum() <= budget


def two_class_case():
    """Class 0 labeled 4 times, class 1 never: class 1 is minority with quota 2."""
    labels = np.array([0, 0, 0, 0, -1, -1, -1, -1, -1, -1])
    labeled = labels >= 0
    scores = np.array([
        [1, 0], [1, 0], [1, 0], [1, 0],
        [0.2, 0.8],  # predicted 1, margin 0.6
        [0.45, 0.55],  # predicted 1, margin 0.1
        [0.1, 0.9],  # predicted 1, margin 0.8
        [0.9, 0.1], [0.8, 0.2], [0.7, 0.3],  # predicted 0
    ])
    return dict(scores=scores, labels=labels, labeled_mask=labeled, n_classes=2)


def test_cmcs_takes_largest_margins_umcs_smallest():
    x = two_class_case()
    cmcs = minority_sampling(**x, budget=2, rng=np.random.default_rng(0), within=certain, auxiliary=random)
    umcs = minority_sampling(**x, budget=2, rng=np.random.default_rng(0), within=uncertain, auxiliary=random)
    assert cmcs.indices.tolist() == [6, 4] and cmcs.n_quota == 2
    assert umcs.indices.tolist() == [5, 4] and umcs.n_quota == 2


def test_auxiliary_fills_what_the_quotas_leave():
    x = two_class_case()
    sel = minority_sampling(**x, budget=4, rng=np.random.default_rng(0), within=certain, auxiliary=margin)
    # quota of class 1 = 2, filled by certainty; the 2 left by margin among the rest: 5 (0.1), then 9 (0.4)
    assert sel.indices.tolist() == [6, 4, 5, 9] and sel.n_quota == 2 and sel.n_auxiliary == 2


def test_fewer_candidates_than_the_quota_takes_them_all():
    x = two_class_case()
    x["scores"][[4, 5], :] = [[0.9, 0.1], [0.9, 0.1]]  # now only sample 6 is predicted as class 1
    sel = minority_sampling(**x, budget=3, rng=np.random.default_rng(0), within=certain, auxiliary=margin)
    assert sel.indices[:1].tolist() == [6] and sel.n_quota == 1 and sel.indices.size == 3


def test_dmcs_on_a_hand_worked_2d_example():
    # class 1's labeled sample at (0, 0) is the center; candidates predicted as class 1:
    features = np.array([[0, 0], [9, 9], [9, 9], [1, 0], [3, 0], [0, 2], [2.9, 0.1]], dtype=np.float32)
    labels = np.array([1, 0, 0, -1, -1, -1, -1])
    labeled = labels >= 0
    scores = np.array([[0, 1], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1]], dtype=float)
    sel = minority_sampling(
        scores=scores, features=features, labels=labels, labeled_mask=labeled, budget=2,
        rng=np.random.default_rng(0), within=diverse, auxiliary=random,
    )
    # mu = 1.5, class 1 has 1 < 1.5: quota ceil(0.5) = 1 -> only one quota pick, the farthest from (0,0): (3, 0)
    assert sel.indices[0] == 4 and sel.n_quota == 1
    # with two picks: (3, 0) first; then distances to {(0,0), (3,0)}: (1,0) 1, (0,2) 2, (2.9,0.1) 0.14 -> (0, 2)
    picks = kcenter_greedy(features, np.array([3, 4, 5, 6]), np.array([0]), 2, np.random.default_rng(0), "cpu")
    assert picks.tolist() == [4, 5]


def reference_kcenter(features, candidates, centers, k, rng):
    """Plain k-center greedy: every distance recomputed at every pick (float64, direct differences)."""
    candidates = candidates[rng.permutation(candidates.size)]
    x = features.astype(np.float64)
    chosen_centers, picks = list(centers), []
    for _ in range(k):
        if not chosen_centers:
            j = int(rng.integers(candidates.size))
        else:
            d = ((x[candidates][:, None, :] - x[chosen_centers][None, :, :]) ** 2).sum(-1).min(axis=1)
            d[np.isin(candidates, picks)] = -1
            j = int(np.argmax(d))
        picks.append(int(candidates[j]))
        chosen_centers.append(int(candidates[j]))
    return picks


@pytest.mark.parametrize(
    "n_centers,subset,batch",
    [(0, None, None), (1, None, None), (40, None, None),  # default settings: 40 centers all evaluated up front
     (40, 8, 5), (40, 8, 1000), (120, 0, 16), (3, 1, 1)],  # lazy evaluation of the initial centers
)
def test_coreset_equals_the_plain_reference(monkeypatch, n_centers, subset, batch):
    import alimb.acquisition.kcenter as kc

    if subset is not None:
        monkeypatch.setattr(kc, "LAZY_SUBSET", subset)
        monkeypatch.setattr(kc, "LAZY_BATCH", batch)
    rng = np.random.default_rng(n_centers)
    features = rng.normal(size=(300, 5)).astype(np.float32)
    centers = rng.choice(300, n_centers, replace=False)
    candidates = np.setdiff1d(np.arange(300), centers)
    ours = kcenter_greedy(features, candidates, centers, 60, np.random.default_rng(1), "cpu")
    assert ours.tolist() == reference_kcenter(features, candidates, centers, 60, np.random.default_rng(1))


def test_coreset_ties_are_broken_like_the_reference():
    features = np.array([[i % 3, i // 3 % 3] for i in range(40)], dtype=np.float32)  # many exact ties
    centers = np.array([0])
    candidates = np.arange(1, 40)
    for seed in range(3):
        ours = kcenter_greedy(features, candidates, centers, 12, np.random.default_rng(seed), "cpu")
        assert ours.tolist() == reference_kcenter(features, candidates, centers, 12, np.random.default_rng(seed))


def test_coreset_in_small_chunks_is_the_same(monkeypatch):
    import alimb.acquisition.kcenter as kc

    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 8)).astype(np.float32)
    labeled = np.zeros(500, dtype=bool)
    labeled[:120] = True
    whole = coreset(features=features, labeled_mask=labeled, budget=30, rng=np.random.default_rng(2), device="cpu")
    monkeypatch.setattr(kc, "CHUNK_ELEMENTS", 1000)  # 2 centers per block
    chunked = coreset(features=features, labeled_mask=labeled, budget=30, rng=np.random.default_rng(2), device="cpu")
    np.testing.assert_array_equal(whole.indices, chunked.indices)


def test_cds_bal_prefers_near_minority_far_from_majority():
    features = np.array([[0, 0], [0, 1], [10, 0], [9, 0], [5, 0], [1, 0], [0, -1]], dtype=np.float32)
    labels = np.array([0, 0, 1, -1, -1, -1, -1])  # class 0 majority (2), class 1 minority (1): quota 1
    sel = cds_bal(features=features, labels=labels, labeled_mask=labels >= 0, n_classes=2, budget=2,
                  rng=np.random.default_rng(0), device="cpu")
    # utility d(majority centroid (0, .5)) - d(centroid 1 (10, 0)): (9,0) best
    assert sel.indices[0] == 3 and sel.n_quota == 1 and sel.indices.size == 2


def test_cds_bal_majority_centroids_are_classes_at_or_above_the_mean():
    # counts 6, 1, 1 (mu 2.67): quotas 2, 2 over a budget of 1 -> apportioned 1, 0. Class 2 keeps a zero
    # quota but is still a minority class: its centroid (10, 2) must not count as a majority centroid.
    features = np.array([[0, 0]] * 6 + [[10, 0], [10, 2], [10, 1], [6, 0]], dtype=np.float32)
    labels = np.array([0] * 6 + [1, 2, -1, -1])
    sel = cds_bal(features=features, labels=labels, labeled_mask=labels >= 0, n_classes=3, budget=1,
                  rng=np.random.default_rng(0), device="cpu")
    # utilities d(class-0 centroid) - d(class-1 centroid): (10, 1) 10.05 - 1 = 9.05; (6, 0) 6 - 4 = 2
    # (had class 2 counted as majority: (10, 1) 1 - 1 = 0 < (6, 0) 4.47 - 4 = 0.47)
    assert sel.indices.tolist() == [8] and sel.n_quota == 1


def test_lazy_initial_distances_break_ties_like_the_reference(monkeypatch):
    import alimb.acquisition.kcenter as kc

    monkeypatch.setattr(kc, "LAZY_SUBSET", 2)
    monkeypatch.setattr(kc, "LAZY_BATCH", 3)
    features = np.array([[i % 4, i // 4 % 4] for i in range(64)], dtype=np.float32)  # many exact ties
    centers = np.array([0, 5, 10, 33, 47, 60])
    candidates = np.setdiff1d(np.arange(64), centers)
    for seed in range(4):
        ours = kcenter_greedy(features, candidates, centers, 20, np.random.default_rng(seed), "cpu")
        assert ours.tolist() == reference_kcenter(features, candidates, centers, 20, np.random.default_rng(seed))
