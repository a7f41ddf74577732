"""The diversity step DropQuery and ALFA-Mix share in the foundation-models code: k-means of the candidates, the
candidate nearest each centroid; a random fill when there are fewer candidates than the budget.

Read from sanketx/AL-foundation-models at aa015d2 (ALFM/src/clustering/kmeans.py `cluster_features` and
`kmeans_plus_plus_init`; the end of `query` and `_random_samples` in query_strategies/dropout.py and alfamix.py):
- fewer candidates than the budget: every candidate, and the rest drawn uniformly without replacement from the
  unlabeled samples that are not candidates;
- otherwise the candidates' rows scaled to unit norm (F.normalize) go to k-means with k = budget, and each cluster
  gives the member nearest its centroid (squared distances; ties: the first member). The k-means: k-means++ seeding
  over every candidate (the first seed uniform, each next one drawn with probability proportional to the squared
  distance to the nearest seed so far), then faiss.Kmeans(niter=100, min_points_per_centroid=1,
  max_points_per_centroid=512) trained from those seeds, which runs 100 Lloyd iterations on at most 512 k of the
  candidates (a random subset beyond that), re-seeds an empty cluster by splitting a large one (faiss's
  `split_clusters`: cluster j chosen with probability (size_j - 1) / (n - k), both copies perturbed by ±1/1024 in
  alternate coordinates), and with exactly k candidates takes the candidates as the centroids. Every candidate is
  then assigned to its nearest final centroid. Ties for the nearest member go to the first (torch's argmin).

Where alimb differs, and why:
- Randomness: the run's generator, in the authors' order (the first seed by `integers`, each D² draw by one `random()`
  on the cumulative squared distances, then the training subset by `permutation`, then faiss's split draws, one
  `random()` per trial), instead of numpy's and torch's global states and faiss's fixed seed 1234. The picks follow
  the same rule; they cannot be the same numbers as a run of the authors' code.
- torch on the CPU or GPU (float32, as faiss) instead of faiss's GPU index. Lloyd stops once an iteration neither
  changes an assignment nor splits a cluster: faiss's remaining iterations would repeat it exactly, so the result is
  that of the full `iterations`.
- Two cases the authors' code does not survive get an answer: all remaining squared distances zero while seeding
  (duplicate rows; torch.multinomial fails on 0/0): the next seed is uniform among the rows not yet seeds; a final
  cluster without a member (their argmin over an empty set fails): the candidate nearest that centroid among those
  not yet picked, clusters in order.
- The nearest member's squared distance is recomputed in float64, and members within 1e-6 of it (relative) count
  as tied, so the first of them is picked. A cluster whose centroid is the mean of two rows (common when faiss
  trains on few rows per centroid) is exactly as near to both; in faiss's float32 the rounding picks one.
"""

from __future__ import annotations

import numpy as np
import torch

from alimb.acquisition.kcenter import squared_norms

CHUNK_ELEMENTS = 1 << 24  # 64 MiB of float32 per block of row x centroid distances
SPLIT_EPS = 1.0 / 1024.0  # faiss's EPS in split_clusters


def unit_rows_tensor(features, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """features[rows] scaled to unit norm (F.normalize: / max(norm, 1e-12)), float32 on `device`, gathered in blocks."""
    d = np.shape(features)[1]
    out = torch.empty((rows.size, d), dtype=torch.float32, device=device)
    step = max(1, CHUNK_ELEMENTS // max(1, d))
    for s in range(0, rows.size, step):
        x = torch.as_tensor(np.asarray(features[rows[s:s + step]], dtype=np.float32)).to(device)
        out[s:s + step] = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-12)
    return out


def candidates_or_fill(pool: np.ndarray, candidate: np.ndarray, budget: int, rng: np.random.Generator,
                       rows_of, iterations: int, max_points_per_centroid: int) -> np.ndarray:
    """The batch from `pool` (absolute indices, ascending) given which are candidates (bool, (len(pool),)):
    every candidate and a random fill when there are fewer than the budget, else one per k-means cluster.
    `rows_of(positions)` gives the unit rows (torch, (len, d)) of pool[positions] that k-means clusters."""
    cand = np.flatnonzero(candidate)
    if cand.size < budget:
        rest = np.flatnonzero(~candidate)
        fill = rest[rng.choice(rest.size, budget - cand.size, replace=False)]
        return pool[np.concatenate([cand, fill])]
    return pool[cand[centroid_picks(rows_of(cand), budget, rng, iterations, max_points_per_centroid)]]


def centroid_picks(x: torch.Tensor, k: int, rng: np.random.Generator, iterations: int = 100,
                   max_points_per_centroid: int = 512) -> np.ndarray:
    """Positions (k,) into x (m, d): per k-means cluster, in cluster order, the row nearest its centroid."""
    m = len(x)
    assert 0 < k <= m, "k-means needs at least k rows"
    if m == k:  # faiss: as many points as clusters, the points are the centroids
        return np.arange(m)
    norms = squared_norms(x)  # (m,), in blocks: x * x would be a second copy of the candidates
    centroids = x[torch.as_tensor(kmeanspp_seeds(x, norms, k, rng), device=x.device)].clone()  # (k, d)
    cap = k * max_points_per_centroid
    if m > cap:  # faiss trains on a random subset of max_points_per_centroid per centroid
        sub = torch.as_tensor(rng.permutation(m)[:cap], device=x.device)
        train, train_norms = x[sub], norms[sub]
    else:
        train, train_norms = x, norms
    centroids = lloyd(train, train_norms, centroids, iterations, rng)
    dist, assign = nearest_centroid(x, norms, centroids)
    return nearest_member_per_cluster(x, norms, centroids, dist.cpu().numpy(), assign.cpu().numpy())


def kmeanspp_seeds(x: torch.Tensor, norms: torch.Tensor, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: positions (k,) into x; see the module docstring for the draws."""
    m = len(x)
    seeds = np.empty(k, dtype=np.int64)
    is_seed = np.zeros(m, dtype=bool)
    j = int(rng.integers(m))
    d2 = _sq_to(x, norms, j)  # (m,) float64 on the CPU
    for i in range(k):
        if i > 0:
            cum = np.cumsum(d2)
            total = cum[-1]
            if total > 0:
                j = min(int(np.searchsorted(cum, rng.random() * total, side="right")), m - 1)
                while d2[j] <= 0:  # rounding landed on a zero weight: its positive neighbour below
                    j -= 1
            else:  # every row is a seed's duplicate: uniform among the others (the authors' code fails here)
                j = int(rng.choice(np.flatnonzero(~is_seed)))
            np.minimum(d2, _sq_to(x, norms, j), out=d2)
        seeds[i] = j
        is_seed[j] = True
        d2[j] = 0.0
    return seeds


def _sq_to(x: torch.Tensor, norms: torch.Tensor, j: int) -> np.ndarray:
    """Squared distances of every row of x to row j, clipped at 0 (the authors' clip(min=0).nan_to_num())."""
    d = torch.addmv(norms, x, x[j], alpha=-2.0).add_(norms[j]).clamp_min_(0.0)
    return torch.nan_to_num(d).cpu().numpy().astype(np.float64)


def nearest_centroid(x: torch.Tensor, norms: torch.Tensor, centroids: torch.Tensor):
    """(squared distance, index) of each row's nearest centroid (ties: the lower index), in row blocks."""
    c_norms = (centroids * centroids).sum(dim=1)
    dist = torch.empty(len(x), dtype=torch.float32, device=x.device)
    assign = torch.empty(len(x), dtype=torch.int64, device=x.device)
    step = max(1, CHUNK_ELEMENTS // max(1, len(centroids)))
    for s in range(0, len(x), step):
        d = torch.addmm(c_norms[None, :], x[s:s + step], centroids.T, alpha=-2.0).add_(norms[s:s + step, None])
        best = d.min(dim=1)
        dist[s:s + step], assign[s:s + step] = best.values.clamp_min_(0.0), best.indices
    return dist, assign


def _centroid_sums(x: torch.Tensor, assign: torch.Tensor, k: int) -> torch.Tensor:
    """(k, d) sums of the rows assigned to each centroid; deterministic on CPU and GPU (no atomics on the GPU)."""
    if x.device.type == "cpu":
        return torch.zeros(k, x.shape[1], dtype=x.dtype).index_add_(0, assign, x)
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
    step = max(1, CHUNK_ELEMENTS // k)
    for s in range(0, len(x), step):  # one-hot GEMMs: cuBLAS is deterministic, index_add_'s atomics are not
        onehot = torch.nn.functional.one_hot(assign[s:s + step], k).to(x.dtype)
        sums.addmm_(onehot.T, x[s:s + step])
    return sums


def lloyd(x: torch.Tensor, norms: torch.Tensor, centroids: torch.Tensor, iterations: int,
          rng: np.random.Generator) -> torch.Tensor:
    """faiss's training loop from the given centroids: assign, average, split empty clusters; (k, d)."""
    k = len(centroids)
    previous, split_before = None, True
    for _ in range(iterations):
        _, assign = nearest_centroid(x, norms, centroids)
        counts = torch.bincount(assign, minlength=k).to(torch.float64).cpu().numpy()
        sums = _centroid_sums(x, assign, k)
        centroids = sums / torch.as_tensor(np.maximum(counts, 1.0), dtype=x.dtype, device=x.device)[:, None]
        split = split_clusters(centroids, counts, len(x), rng)
        if not split and not split_before and previous is not None and torch.equal(assign, previous):
            break  # a fixed point: the remaining iterations would repeat this one
        previous, split_before = assign, split
    return centroids


def split_clusters(centroids: torch.Tensor, counts: np.ndarray, n: int, rng: np.random.Generator) -> int:
    """faiss's split_clusters, in place: each empty cluster takes a perturbed copy of a cluster chosen with probability
    (size - 1) / (n - k), one draw per trial over the clusters in turn; returns how many were split."""
    k = len(centroids)
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return 0
    sign = torch.ones(centroids.shape[1], dtype=centroids.dtype, device=centroids.device)
    sign[1::2] = -1.0  # even coordinates: the new copy up, the old down; odd: the reverse
    for ci in empty.tolist():
        cj = 0
        while True:
            p = (counts[cj] - 1.0) / float(max(n - k, 1))  # n = k: faiss's x / 0 picks the same clusters
            if rng.random() < p:
                break
            cj = (cj + 1) % k
        base = centroids[cj].clone()
        centroids[ci] = base * (1 + SPLIT_EPS * sign)
        centroids[cj] = base * (1 - SPLIT_EPS * sign)
        counts[ci] = counts[cj] / 2
        counts[cj] -= counts[ci]
    return int(empty.size)


def nearest_member_per_cluster(x: torch.Tensor, norms: torch.Tensor, centroids: torch.Tensor, dist: np.ndarray,
                               assign: np.ndarray) -> np.ndarray:
    """Per cluster (in order) its member nearest the centroid, ties to the first member; a cluster without a member
    gets the row nearest its centroid among those not yet picked. A tie is equal up to float rounding (TIE_RTOL of the
    squared distance, recomputed in float64): a centroid that is the mean of two rows is as near to both."""
    k, m = len(centroids), len(dist)
    exact = _member_distances(x, centroids, assign)
    best = np.full(k, np.inf)
    np.minimum.at(best, assign, exact)
    tied = exact <= best[assign] * (1 + TIE_RTOL) + 1e-30
    order = np.lexsort((np.arange(m), ~tied, assign))  # by cluster, the tied members first, then by position
    first = order[np.r_[True, assign[order][1:] != assign[order][:-1]]]  # each non-empty cluster's first best
    picks = np.full(k, -1, dtype=np.int64)
    picks[assign[first]] = first
    taken = np.zeros(m, dtype=bool)
    taken[first] = True
    for c in np.flatnonzero(picks < 0).tolist():
        d = torch.addmv(norms, x, centroids[c], alpha=-2.0).cpu().numpy().astype(np.float64)
        d[taken] = np.inf
        picks[c] = int(np.argmin(d))
        taken[picks[c]] = True
    return picks


TIE_RTOL = 1e-6


def _member_distances(x: torch.Tensor, centroids: torch.Tensor, assign: np.ndarray) -> np.ndarray:
    """||x_i - c_assign(i)||² in float64, differences first (no expansion): (m,)."""
    out = np.empty(len(x))
    a = torch.as_tensor(assign, device=x.device)
    step = max(1, CHUNK_ELEMENTS // max(1, x.shape[1]))
    for s in range(0, len(x), step):
        diff = x[s:s + step].double() - centroids[a[s:s + step]].double()
        out[s:s + step] = (diff * diff).sum(dim=1).cpu().numpy()
    return out
