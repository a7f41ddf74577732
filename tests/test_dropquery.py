"""DropQuery and the foundation-models k-means: hand-checked steps, and picks against a transcription of the authors'
code, edge cases included (threshold widening, fewer candidates than the budget, k-means subsets and empty clusters)."""

import numpy as np
import pytest
import torch

from alimb.acquisition import dropquery
from alimb.acquisition.centroids import centroid_picks, nearest_member_per_cluster, split_clusters
from alimb.acquisition.dropout import disagreements
from tests.helpers import select

EPS = 1.0 / 1024.0


# ---- a transcription of sanketx/AL-foundation-models at aa015d2: ALFM/src/query_strategies/dropout.py (Dropout) and
# ALFM/src/clustering/kmeans.py (cluster_features, kmeans_plus_plus_init), kept to the authors' structure, in numpy
# float64. numpy's and torch's global random states are replaced by a Generator called in the same order:
# np.random.randint -> rng.integers; torch.multinomial(p, 1) -> the inverse CDF of p at one rng.random();
# np.random.choice -> rng.choice; torch's dropout mask -> rng.random(float32) >= p, pass by pass, row by row.
# faiss.Kmeans(niter=100, min_points_per_centroid=1, max_points_per_centroid=512).train(x, init_centroids=...) and
# index.search are written out as faiss runs them (Clustering::train_encoded: the nx == k copy, the training subset
# (faiss: rand_perm with its seed 1234 -> rng.permutation), niter Lloyd iterations, split_clusters with its
# RandomGenerator(1234) -> rng.random()). The model is a linear probe over the features (their probe's BatchNorm is an
# affine map at inference, folded into W, b here): get_probs(x, dropout) = softmax(dropout(x) W + b). ----
class Probe:
    def __init__(self, w, b, dropout_p, rng):
        self.w, self.b, self.p, self.rng = w, b, dropout_p, rng

    def get_probs(self, features, dropout=False):
        x = features
        if dropout:
            x = x * (self.rng.random(x.shape, dtype=np.float32) >= self.p) / (1 - self.p)
        logits = x @ self.w + self.b
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def get_probs_and_embedding(self, features):
        return self.get_probs(features), features


def faiss_search(x, centroids):
    d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return d.min(axis=1), d.argmin(axis=1)


def faiss_split_clusters(d, k, n, hassign, centroids, rng):
    nsplit = 0
    for ci in range(k):
        if hassign[ci] == 0:
            cj = 0
            while True:
                p = (hassign[cj] - 1.0) / float(n - k)
                r = rng.random()
                if r < p:
                    break
                cj = (cj + 1) % k
            centroids[ci] = centroids[cj]
            for j in range(d):
                if j % 2 == 0:
                    centroids[ci, j] *= 1 + EPS
                    centroids[cj, j] *= 1 - EPS
                else:
                    centroids[ci, j] *= 1 - EPS
                    centroids[cj, j] *= 1 + EPS
            hassign[ci] = hassign[cj] / 2
            hassign[cj] -= hassign[ci]
            nsplit += 1
    return nsplit


def faiss_kmeans_train(x, k, init_centroids, rng, niter=100, max_points_per_centroid=512):
    nx, d = x.shape
    if nx == k:
        return x.copy()
    if nx > k * max_points_per_centroid:
        x = x[rng.permutation(nx)[:k * max_points_per_centroid]]
        nx = len(x)
    centroids = init_centroids.copy()
    for _ in range(niter):
        _, assign = faiss_search(x, centroids)
        hassign = np.bincount(assign, minlength=k).astype(np.float64)
        new = np.zeros_like(centroids)
        np.add.at(new, assign, x)
        nonempty = hassign > 0
        new[nonempty] /= hassign[nonempty, None]
        centroids = new
        faiss_split_clusters(d, k, nx, hassign, centroids, rng)
    return centroids


def kmeans_plus_plus_init(features, k, rng):
    centroids = []
    n, d = features.shape
    idx = rng.integers(n)
    centroids.append(idx)
    sq_dist = ((features - features[idx]) ** 2).sum(axis=1)
    sq_dist = np.nan_to_num(sq_dist.clip(min=0))
    for _ in range(1, k):
        probabilities = sq_dist / np.sum(sq_dist)
        if not np.isfinite(probabilities).all():
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")  # torch.multinomial
        idx = int(np.searchsorted(np.cumsum(probabilities), rng.random(), side="right"))
        centroids.append(idx)
        new_dist = np.nan_to_num(((features - features[idx]) ** 2).sum(axis=1).clip(min=0))
        sq_dist = np.minimum(sq_dist, new_dist)
    return np.array(centroids)


def cluster_features(features, num_samples, rng, max_points_per_centroid=512):
    init_idx = kmeans_plus_plus_init(features, num_samples, rng)
    centroids = faiss_kmeans_train(features, num_samples, features[init_idx], rng,
                                   max_points_per_centroid=max_points_per_centroid)
    sq_dist, cluster_idx = faiss_search(features, centroids)
    selected = np.zeros(num_samples, dtype=np.int64)
    for i in range(num_samples):
        idx = np.nonzero(cluster_idx == i)[0]
        # argmin: the first of equal minima (an empty cluster: ValueError, as torch's argmin of an empty tensor). Two
        # members are equally near when the centroid is their mean; float rounding, faiss's float32 or this float64,
        # would pick either: equal is taken to 1e-6 relative, as alimb does
        min_idx = np.flatnonzero(sq_dist[idx] <= sq_dist[idx].min() * (1 + 1e-6))[0]
        selected[i] = idx[min_idx]
    return selected, cluster_idx


class Dropout:
    def __init__(self, features, labeled_pool, model, num_iter, rng, max_points_per_centroid=512):
        self.features, self.labeled_pool, self.model, self.num_iter = features, labeled_pool, model, num_iter
        self.rng, self.max_points_per_centroid = rng, max_points_per_centroid

    def _get_candidates(self, features, y_star, num_samples):
        samples = np.stack([self.model.get_probs(features, dropout=True).argmax(axis=1) for _ in range(self.num_iter)])
        thresh = self.num_iter // 2
        mismatch = (y_star != samples).sum(axis=0)
        while (mismatch > thresh).sum() < 25 * num_samples and thresh > 0:
            thresh = thresh - 1
        return np.nonzero(mismatch > thresh)[0]

    def _random_samples(self, candidates, num_samples):
        num_unlabeled = np.count_nonzero(~self.labeled_pool)
        unlabeled_pool = np.ones(num_unlabeled, dtype=bool)
        unlabeled_pool[candidates] = False
        remaining = np.nonzero(unlabeled_pool)[0]
        idx = self.rng.choice(len(remaining), num_samples, replace=False)
        return remaining[idx]

    def query(self, num_samples):
        unlabeled_indices = np.flatnonzero(~self.labeled_pool)
        features = self.features[unlabeled_indices]
        probs, embeddings = self.model.get_probs_and_embedding(features)
        y_star = probs.argmax(axis=1)
        candidates = self._get_candidates(features, y_star, num_samples)
        if len(candidates) < num_samples:
            delta = num_samples - len(candidates)
            candidates = np.concatenate([candidates, self._random_samples(candidates, delta)])
            selected = np.ones(len(candidates), dtype=bool)
        else:
            e = embeddings[candidates]
            candidate_vectors = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
            selected, _ = cluster_features(candidate_vectors, num_samples, self.rng, self.max_points_per_centroid)
        mask = np.zeros(len(self.features), dtype=bool)
        mask[unlabeled_indices[candidates[selected]]] = True
        return mask


def _problem(seed, n, d, c, n_labeled, sharp=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    x = (rng.normal(size=(n, d)) + sharp * np.eye(c, d)[y] * 3).astype(np.float32)
    w = rng.normal(size=(d, c)).astype(np.float32) + 2 * np.eye(d, c, dtype=np.float32)
    b = rng.normal(size=c).astype(np.float32) * 0.1
    labeled = np.zeros(n, dtype=bool)
    labeled[rng.choice(n, n_labeled, replace=False)] = True
    return x, y, w, b, labeled


def authors_picks(x, w, b, labeled, budget, seed, passes=3, p=0.75, max_points_per_centroid=512):
    rng = np.random.default_rng(seed)
    model = Probe(w.astype(np.float64), b.astype(np.float64), p, rng)
    mask = Dropout(x.astype(np.float64), labeled, model, passes, rng, max_points_per_centroid).query(budget)
    return set(np.flatnonzero(mask).tolist())


def ours(x, y, w, b, labeled, budget, seed, **options):
    return select(dropquery, features=x, head=(w, b), labels=np.where(labeled, y, -1), labeled_mask=labeled,
                  n_classes=w.shape[1], budget=budget, rng=np.random.default_rng(seed), **options)


@pytest.mark.parametrize("seed, n, d, c, n_labeled, budget, passes, p, mppc", [
    (0, 400, 8, 5, 40, 5, 3, 0.75, 512),   # 25 x 5 = 125 candidates needed: the threshold stays at 1
    (1, 400, 8, 5, 40, 20, 3, 0.75, 512),  # 500 needed of 360: it widens to 0
    (2, 300, 6, 4, 30, 12, 5, 0.5, 512),   # 5 passes: the threshold starts at 2
    (3, 500, 8, 6, 50, 30, 3, 0.75, 6),    # faiss's training subset (6 per centroid)
    (4, 300, 6, 4, 0, 8, 3, 0.75, 512),    # nothing labeled yet
])
def test_picks_match_a_transcription_of_the_authors_code(seed, n, d, c, n_labeled, budget, passes, p, mppc):
    x, y, w, b, labeled = _problem(seed, n, d, c, n_labeled)
    theirs = authors_picks(x, w, b, labeled, budget, seed + 100, passes, p, mppc)
    sel = ours(x, y, w, b, labeled, budget, seed + 100, passes=passes, p=p, max_points_per_centroid=mppc)
    assert set(sel.indices.tolist()) == theirs
    assert len(theirs) == budget and sel.info["n_candidates"] >= budget


def test_with_a_training_subset_that_leaves_clusters_empty_the_picks_still_match(monkeypatch):
    """3 training rows per centroid: seeds far from the subset lose every row, and faiss's split re-seeds them."""
    import alimb.acquisition.centroids as centroids

    splits = []
    real = centroids.split_clusters
    monkeypatch.setattr(centroids, "split_clusters", lambda *a: splits.append(real(*a)) or splits[-1])
    x, y, w, b, labeled = _problem(9, 500, 8, 6, 50)
    theirs = authors_picks(x, w, b, labeled, 30, 109, max_points_per_centroid=3)
    assert set(ours(x, y, w, b, labeled, 30, 109, max_points_per_centroid=3).indices.tolist()) == theirs
    assert sum(splits) > 0, "no cluster was split: this case tests nothing of split_clusters"


def test_fewer_candidates_than_the_budget_take_all_and_a_random_fill_as_the_authors():
    """Confident predictions and light dropout: few samples ever change, all are taken, the rest is random."""
    x, y, w, b, labeled = _problem(5, 300, 6, 4, 30, sharp=4.0)
    sel = ours(x, y, w, b, labeled, 60, 7, p=0.05)
    assert 0 < sel.info["n_candidates"] < 60 and sel.info["threshold"] == 0 and sel.info["n_random"] > 0
    assert set(sel.indices.tolist()) == authors_picks(x, w, b, labeled, 60, 7, p=0.05)


def test_exactly_the_budget_of_candidates_are_all_taken():
    x, y, w, b, labeled = _problem(5, 300, 6, 4, 30, sharp=4.0)
    n_cand = ours(x, y, w, b, labeled, 60, 7, p=0.05).info["n_candidates"]
    sel = ours(x, y, w, b, labeled, n_cand, 7, p=0.05)
    assert sel.info["n_random"] == 0
    assert set(sel.indices.tolist()) == authors_picks(x, w, b, labeled, n_cand, 7, p=0.05)


def test_inside_a_composite_only_the_available_samples_take_part():
    """candidates/picked narrow the pool: the authors' 'unlabeled' is what the enclosing AF leaves."""
    x, y, w, b, labeled = _problem(6, 300, 6, 4, 30)
    free = np.flatnonzero(~labeled)
    cands = free[::2]
    sel = select(dropquery, features=x, head=(w, b), labeled_mask=labeled, n_classes=4, budget=10,
                 rng=np.random.default_rng(3), candidates=cands)
    as_labeled = np.ones(len(x), dtype=bool)
    as_labeled[cands] = False  # the transcription sees only the candidates as unlabeled
    assert set(sel.indices.tolist()) == authors_picks(x, w, b, as_labeled, 10, 3)


# ---- the defining steps on cases worked out by hand ----
def test_dropout_disagreements_by_hand():
    """1-d features, W = [1, -1], b = [0, 0.5]. Clean logits (x, 0.5 - x): y* = 0 iff x > 0.25. A kept value is
    scaled by 1 / (1 - p) = 4: logits (4x, 0.5 - 4x), class 0 iff x > 1/16; a dropped one gives (0, 0.5): class 1.
    So x = 1 changes in the passes that drop it, x = 0.1 (y* = 1) in those that keep it, x = 0.01 never."""
    x = np.array([[1.0], [0.1], [0.01]], dtype=np.float32)
    head = (np.array([[1.0, -1.0]], dtype=np.float32), np.array([0.0, 0.5], dtype=np.float32))
    changed = disagreements(x, np.arange(3), head, 5, 0.75, np.random.default_rng(0), torch.device("cpu"))
    rng = np.random.default_rng(0)
    keep = np.stack([rng.random((3, 1), dtype=np.float32)[:, 0] >= 0.75 for _ in range(5)])  # (passes, rows)
    assert changed.tolist() == [int((~keep[:, 0]).sum()), int(keep[:, 1].sum()), 0]


def test_the_threshold_is_more_than_half_and_widens_to_any_change():
    x = np.array([[1.0], [0.1], [0.01]] * 40, dtype=np.float32)
    head = (np.array([[1.0, -1.0]], dtype=np.float32), np.array([0.0, 0.5], dtype=np.float32))
    common = dict(features=x, head=head, labeled_mask=np.zeros(120, dtype=bool), n_classes=2)
    changed = disagreements(x, np.arange(120), head, 3, 0.75, np.random.default_rng(1), torch.device("cpu"))
    strict = select(dropquery, **common, budget=2, rng=np.random.default_rng(1), widen_below=0)
    assert strict.info["threshold"] == 1 and strict.info["n_candidates"] == int((changed >= 2).sum())
    wide = select(dropquery, **common, budget=2, rng=np.random.default_rng(1))  # 50 needed: fewer change twice
    assert (changed >= 2).sum() < 50 and wide.info["threshold"] == 0
    assert wide.info["n_candidates"] == int((changed >= 1).sum())
    assert not np.isin(wide.indices, np.arange(2, 120, 3)).any(), "x = 0.01 never changes: never a candidate"


def test_kmeans_takes_the_member_nearest_each_centroid_by_hand():
    """Three tight pairs on the unit circle, k = 3: one pick per pair, the member nearer the pair's mean."""
    angles = np.array([0.0, 0.1, 2.0, 2.05, 4.0, 4.2])
    x = torch.as_tensor(np.stack([np.cos(angles), np.sin(angles)], axis=1), dtype=torch.float32)
    picks = centroid_picks(x, 3, np.random.default_rng(0))
    assert sorted(picks.tolist()) in ([0, 2, 4], [0, 2, 5], [0, 3, 4], [0, 3, 5], [1, 2, 4], [1, 2, 5], [1, 3, 4],
                                      [1, 3, 5])
    assert sorted(np.array(picks) // 2) == [0, 1, 2]


def test_an_empty_final_cluster_gets_the_nearest_row_not_yet_picked():
    """Centroids 0 and 1 coincide: every row goes to 0 (the lower index), 1 is empty; the authors' argmin over the
    empty set fails, ours gives it the row nearest it that 0 did not take."""
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.2]])
    c = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.1]])
    norms = (x * x).sum(1)
    d = ((x[:, None] - c[None]) ** 2).sum(2)
    picks = nearest_member_per_cluster(x, norms, c, d.min(1).values.numpy(), d.argmin(1).numpy())
    assert picks.tolist() == [0, 1, 2]  # cluster 2: rows 2 and 3 at 0.01 each, the first


def test_split_clusters_is_faiss_rule():
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    counts = np.array([0.0, 5.0, 1.0, 0.0, 9.0])
    cents = np.random.default_rng(0).normal(size=(5, 4))
    theirs_c, theirs_h = cents.copy(), counts.copy()
    faiss_split_clusters(4, 5, 15, theirs_h, theirs_c, rng_a)
    ours_c = torch.as_tensor(cents.copy())
    ours_h = counts.copy()
    assert split_clusters(ours_c, ours_h, 15, rng_b) == 2
    np.testing.assert_allclose(ours_c.numpy(), theirs_c, rtol=1e-12)
    np.testing.assert_array_equal(ours_h, theirs_h)
    assert rng_a.random() == rng_b.random(), "the same draws were used"


def test_duplicate_rows_seed_beyond_where_the_authors_code_stops():
    """Four distinct rows, each 10 times, k = 6: after four seeds every squared distance is 0; torch.multinomial
    fails there, alimb seeds uniformly among the rest and still picks 6 distinct rows."""
    base = np.random.default_rng(0).normal(size=(4, 3))
    x = np.repeat(base / np.linalg.norm(base, axis=1, keepdims=True), 10, axis=0)
    with pytest.raises(RuntimeError, match="multinomial"), np.errstate(invalid="ignore"):
        kmeans_plus_plus_init(x, 6, np.random.default_rng(1))
    picks = centroid_picks(torch.as_tensor(x, dtype=torch.float32), 6, np.random.default_rng(1))
    assert np.unique(picks).size == 6


def test_the_same_generator_gives_the_same_batch_and_another_a_different_one():
    x, y, w, b, labeled = _problem(8, 400, 8, 5, 40)
    a, b2 = ours(x, y, w, b, labeled, 20, 1), ours(x, y, w, b, labeled, 20, 1)
    assert a.indices.tolist() == b2.indices.tolist()
    assert set(ours(x, y, w, b, labeled, 20, 2).indices.tolist()) != set(a.indices.tolist())
