"""Minority-class sampling, coreset and cds-bal on cases worked out by hand."""

import numpy as np
import pytest

from alimb.acquisition import Oracle, cds_bal, coreset, kcenter_greedy, margin, minority_quotas, minority_sampling, random
from alimb.acquisition.minority import allocate
from alimb.acquisition.uncertainty import certain
from tests.helpers import select


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
    taken = allocate(minority_quotas(np.array(counts)), np.full(len(counts), 1000), budget)  # candidates aplenty
    assert taken.tolist() == expected
    assert taken.sum() <= budget


def test_a_class_short_of_candidates_hands_its_share_to_other_minority_classes():
    """Quotas 10, 10, 10 over a budget of 12 (shares 4, 4, 4); class 1 has one candidate: its 3 go to 2 and 3."""
    taken = allocate(np.array([0, 10, 10, 10]), np.array([100, 1, 50, 50]), 12)
    assert taken.tolist() == [0, 1, 6, 5]  # the 3 left: shares 1.5, 1.5 -> 1, 1, and the tie to the lower index


def test_quota_overflow_with_enough_candidates_is_filled_entirely_from_quotas():
    """Sum of quotas > budget, one minority class nearly without predicted candidates: 100% from quotas."""
    n_classes, rng = 4, np.random.default_rng(0)
    labels = np.full(400, -1)
    labels[:40] = np.repeat([0, 1, 2, 3], [37, 1, 1, 1])  # mu = 10: quotas 0, 9, 9, 9 = 27 > budget 12
    predicted = np.r_[np.zeros(40, dtype=int), [1], np.full(179, 2), np.full(180, 3)]  # class 1: one candidate
    scores = np.eye(n_classes)[predicted] + 0.01 * rng.random((400, n_classes))
    sel = select(minority_sampling, scores=scores, features=rng.normal(size=(400, 3)), labels=labels, labeled_mask=labels >= 0,
                            budget=12, rng=rng, within=coreset, auxiliary=random)
    assert sel.n_quota == 12 and sel.quota_requested == 27
    assert np.bincount(predicted[sel.indices], minlength=4).tolist() == [0, 1, 6, 5]


@pytest.mark.parametrize("seed", range(200))
def test_allocation_never_exceeds_quota_or_candidates_and_fills_what_it_can(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    counts = rng.integers(0, 30, n)
    quotas = minority_quotas(counts)
    candidates = rng.integers(0, 25, n)
    budget = int(rng.integers(1, 60))
    taken = allocate(quotas, candidates, budget)
    assert (taken <= quotas).all() and (taken <= candidates).all() and (taken >= 0).all()
    assert taken.sum() == min(budget, np.minimum(quotas, candidates).sum())
    labels = np.full(counts.sum() + 200, -1)
    labels[:counts.sum()] = np.repeat(np.arange(n), counts)
    scores = rng.normal(size=(labels.size, n))
    sel = select(minority_sampling, scores=scores, labels=labels, labeled_mask=labels >= 0, budget=budget, rng=rng,
                            within=margin, auxiliary=random)
    assert sel.indices.size == budget and np.unique(sel.indices).size == budget


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
    cmcs = select(minority_sampling, **x, budget=2, rng=np.random.default_rng(0), within=certain, auxiliary=random)
    umcs = select(minority_sampling, **x, budget=2, rng=np.random.default_rng(0), within=margin, auxiliary=random)
    assert cmcs.indices.tolist() == [6, 4] and cmcs.n_quota == 2
    assert umcs.indices.tolist() == [5, 4] and umcs.n_quota == 2


def test_auxiliary_fills_what_the_quotas_leave():
    x = two_class_case()
    sel = select(minority_sampling, **x, budget=4, rng=np.random.default_rng(0), within=certain, auxiliary=margin)
    # quota of class 1 = 2, filled by certainty; the 2 left by margin among the rest: 5 (0.1), then 9 (0.4)
    assert sel.indices.tolist() == [6, 4, 5, 9] and sel.n_quota == 2 and sel.n_auxiliary == 2


def test_fewer_candidates_than_the_quota_takes_them_all():
    x = two_class_case()
    x["scores"][[4, 5], :] = [[0.9, 0.1], [0.9, 0.1]]  # now only sample 6 is predicted as class 1
    sel = select(minority_sampling, **x, budget=3, rng=np.random.default_rng(0), within=certain, auxiliary=margin)
    assert sel.indices[:1].tolist() == [6] and sel.n_quota == 1 and sel.indices.size == 3


def test_dmcs_on_a_hand_worked_2d_example():
    # class 1's labeled sample at (0, 0) is the center; candidates predicted as class 1:
    features = np.array([[0, 0], [9, 9], [9, 9], [1, 0], [3, 0], [0, 2], [2.9, 0.1]], dtype=np.float32)
    labels = np.array([1, 0, 0, -1, -1, -1, -1])
    labeled = labels >= 0
    scores = np.array([[0, 1], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1]], dtype=float)
    sel = select(minority_sampling, 
        scores=scores, features=features, labels=labels, labeled_mask=labeled, budget=2,
        rng=np.random.default_rng(0), within=coreset, auxiliary=random,
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
@pytest.mark.parametrize("loop", ["lazy", "plain"])
def test_coreset_equals_the_plain_reference(monkeypatch, n_centers, subset, batch, loop):
    import alimb.acquisition.kcenter as kc

    # the lazy loop, which a problem this small would not take unless told; or the plain loop it takes by default
    monkeypatch.setattr(kc, "PLAIN_PAIRS", 0 if loop == "lazy" else 1 << 20)
    if subset is not None:
        monkeypatch.setattr(kc, "LAZY_SUBSET", subset)
        monkeypatch.setattr(kc, "LAZY_BATCH", batch)
    rng = np.random.default_rng(n_centers)
    features = rng.normal(size=(300, 5)).astype(np.float32)
    centers = rng.choice(300, n_centers, replace=False)
    candidates = np.setdiff1d(np.arange(300), centers)
    ours = kcenter_greedy(features, candidates, centers, 60, np.random.default_rng(1), "cpu")
    assert ours.tolist() == reference_kcenter(features, candidates, centers, 60, np.random.default_rng(1))


@pytest.mark.parametrize("plain_pairs", [0, 1 << 20], ids=["lazy loop", "plain loop (small problem)"])
def test_coreset_ties_are_broken_like_the_reference(monkeypatch, plain_pairs):
    import alimb.acquisition.kcenter as kc

    monkeypatch.setattr(kc, "PLAIN_PAIRS", plain_pairs)
    features = np.array([[i % 3, i // 3 % 3] for i in range(40)], dtype=np.float32)  # many exact ties
    centers = np.array([0])
    candidates = np.arange(1, 40)
    for seed in range(3):
        ours = kcenter_greedy(features, candidates, centers, 12, np.random.default_rng(seed), "cpu")
        assert ours.tolist() == reference_kcenter(features, candidates, centers, 12, np.random.default_rng(seed))


def test_coreset_in_small_chunks_is_the_same(monkeypatch):
    import alimb.acquisition.kcenter as kc

    monkeypatch.setattr(kc, "PLAIN_PAIRS", 0)  # the lazy loop's blocks
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 8)).astype(np.float32)
    labeled = np.zeros(500, dtype=bool)
    labeled[:120] = True
    whole = select(coreset, features=features, labeled_mask=labeled, budget=30, rng=np.random.default_rng(2), device="cpu")
    monkeypatch.setattr(kc, "CHUNK_ELEMENTS", 1000)  # 2 centers per block
    chunked = select(coreset, features=features, labeled_mask=labeled, budget=30, rng=np.random.default_rng(2), device="cpu")
    np.testing.assert_array_equal(whole.indices, chunked.indices)


def cds_case(points, labels, truth):
    fg = np.array(points, dtype=float).reshape(len(points), -1)
    labels = np.array(labels)
    return dict(fg=fg, labels=labels, labeled_mask=labels >= 0, oracle=Oracle(np.array(truth)))


def test_cds_bal_follows_the_published_rule_pick_by_pick():
    """1-D: class 0 labeled 3x at 0, class 1 once at 10 (mean 2, majority {0}, gap 2, budget 2: balancing).
    Pick 1: ratios d(x,10)/d(x,0): 9 -> 1/9, 5 -> 1, 11 -> 1/11, 20 -> 1/2: x=11, revealed class 1.
    Counts 3, 2 (gap 1, budget left 1: still balancing); centroid of 1 moves to 10.5:
    pick 2: 9 -> 1.5/9, 5 -> 5.5/5, 20 -> 9.5/20: x=9."""
    x = cds_case([0, 0, 0, 10, 9, 5, 11, 20], [0, 0, 0, 1, -1, -1, -1, -1], [0, 0, 0, 1, 1, 0, 1, 1])
    sel = select(cds_bal, **x, n_classes=2, budget=2, rng=np.random.default_rng(0), device="cpu")
    assert sel.indices.tolist() == [6, 4] and sel.info["n_balancing"] == 2
    assert x["oracle"].revealed.tolist() == [6, 4]  # each pick's label, before the next pick


def test_cds_bal_divides_by_the_nearest_majority_centroid_and_needs_no_rarest_centroid():
    """Majority classes 0 at (0,0) and 1 at (10,0), class 2 never labeled (numerator 1): the pick is the sample
    farthest from its nearest majority centroid, (5,6) at 7.8; the farthest-centroid reading would take (-4,0)."""
    x = cds_case([[0, 0]] * 3 + [[10, 0]] * 3 + [[5, 0], [-4, 0], [5, 6]], [0] * 3 + [1] * 3 + [-1] * 3,
                 [0] * 3 + [1] * 3 + [2] * 3)
    sel = select(cds_bal, **x, n_classes=3, budget=1, rng=np.random.default_rng(0), device="cpu")
    assert sel.indices.tolist() == [8] and sel.info["n_balancing"] == 1


def test_cds_bal_is_random_once_balanced_relative_to_the_budget_left():
    """Counts 3, 1 (gap 2, one minority class): with 3 to pick, 3 > 1 x 2, so the first pick is random; every
    unlabeled sample being of class 1, counts go 3, 2 (2 left > 1 x 1: random) and 3, 3 (no majority: random)."""
    x = cds_case([0, 0, 0, 10, 9, 5, 11, 20], [0, 0, 0, 1, -1, -1, -1, -1], [0, 0, 0, 1, 1, 1, 1, 1])
    sel = select(cds_bal, **x, n_classes=2, budget=3, rng=np.random.default_rng(0), device="cpu")
    assert sel.info["n_balancing"] == 0 and sel.indices.size == 3
    balanced = cds_case([0, 10, 1, 2, 3], [0, 1, -1, -1, -1], [0, 1, 0, 1, 0])
    assert select(cds_bal, **balanced, n_classes=2, budget=1, rng=np.random.default_rng(0), device="cpu").info["n_balancing"] == 0


def test_lazy_initial_distances_break_ties_like_the_reference(monkeypatch):
    import alimb.acquisition.kcenter as kc

    monkeypatch.setattr(kc, "LAZY_SUBSET", 2)
    monkeypatch.setattr(kc, "LAZY_BATCH", 3)
    monkeypatch.setattr(kc, "PLAIN_PAIRS", 0)
    features = np.array([[i % 4, i // 4 % 4] for i in range(64)], dtype=np.float32)  # many exact ties
    centers = np.array([0, 5, 10, 33, 47, 60])
    candidates = np.setdiff1d(np.arange(64), centers)
    for seed in range(4):
        ours = kcenter_greedy(features, candidates, centers, 20, np.random.default_rng(seed), "cpu")
        assert ours.tolist() == reference_kcenter(features, candidates, centers, 20, np.random.default_rng(seed))


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_lazy_picks_are_the_plain_algorithms_picks(monkeypatch, batch):
    """The lazy picks (contenders brought up to date in batches) equal the plain algorithm's, on clustered data
    and on a grid full of exact ties; and both equal the float64 reference."""
    import alimb.acquisition.kcenter as kc

    monkeypatch.setattr(kc, "LAZY_SUBSET", 3)
    monkeypatch.setattr(kc, "LAZY_BATCH", batch)
    monkeypatch.setattr(kc, "PLAIN_PAIRS", 0)
    rng = np.random.default_rng(batch)
    clustered = (rng.normal(size=(20, 6)) * 5)[rng.integers(0, 20, 600)] + rng.normal(size=(600, 6))
    grid = np.array([[i % 5, i // 5 % 5, i // 25 % 2] for i in range(600)], dtype=np.float32)
    for features in (clustered.astype(np.float32), grid):
        centers = rng.choice(600, 50, replace=False)
        candidates = np.setdiff1d(np.arange(600), centers)
        lazy = kcenter_greedy(features, candidates, centers, 80, np.random.default_rng(4), "cpu")
        plain = kcenter_greedy(features, candidates, centers, 80, np.random.default_rng(4), "cpu", lazy=False)
        assert lazy.tolist() == plain.tolist()
        assert lazy.tolist() == reference_kcenter(features, candidates, centers, 80, np.random.default_rng(4))


def test_small_problems_take_the_plain_loop_and_large_ones_the_lazy_loop(monkeypatch):
    """candidates x (centers + picks) up to PLAIN_PAIRS: the plain loop (faster there); above: the lazy one."""
    import alimb.acquisition.kcenter as kc

    calls = []
    plain = kc._plain
    monkeypatch.setattr(kc, "_plain", lambda *a: calls.append(len(a[3])) or plain(*a))
    monkeypatch.setattr(kc, "PLAIN_PAIRS", 100 * (10 + 5))
    features = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    kcenter_greedy(features, np.arange(100), np.arange(100, 110), 5, np.random.default_rng(1), "cpu")  # 1 500 pairs
    assert calls == [10]
    kcenter_greedy(features, np.arange(101), np.arange(101, 111), 5, np.random.default_rng(1), "cpu")  # 1 515 pairs
    assert calls == [10]


def test_the_within_class_afs_info_reaches_the_records(make_cfg):
    """A quota filled by an AF with diagnostics (DropQuery's candidates, a fallback): the record keeps them per
    class, beside the auxiliary's."""
    from alimb.acquisition import Context, Oracle
    from alimb.config import build, expand_parts

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [200, 120, 40, 40])
    features = rng.normal(size=(400, 5)) + 2 * np.eye(5)[y]
    head = (2 * np.eye(5)[:, :4], np.zeros(4))
    labeled = np.zeros(400, dtype=bool)
    labeled[rng.choice(400, 60, replace=False)] = True
    ctx = Context(scores=features @ head[0], features=features, fg=features, head=head, labels=np.where(labeled, y, -1),
                  labeled_mask=labeled, n_classes=4, budget=40, rng=rng, oracle=Oracle(y))
    cfg = make_cfg("acquisition=dmcs_rand", "acquisition.within=dropquery")
    expand_parts(cfg)
    sel = build(cfg.acquisition)(ctx)
    counts = np.bincount(y[labeled], minlength=4)
    minority = np.flatnonzero(counts * 4 < counts.sum())  # Eq. 3's rule, by hand
    assert sel.n_quota > 0 and set(sel.info["within"]) <= {str(c) for c in minority}
    assert all("n_candidates" in info for info in sel.info["within"].values())
