"""The low-budget AFs: TypiClust (Hacohen et al., ICML 2022) and ProbCover (Yehuda et al., NeurIPS 2022), in F_g.

TypiClust, our reading (the authors' code in avihu111/TypiClust): F_g rows scaled to unit norm; k-means of the
whole pool into min(n_labeled + b, max_clusters=500) clusters (Lloyd's, alimb.acquisition.clustering, seeded
from the generator; the authors use scikit-learn's KMeans / MiniBatchKMeans); then, b times: among clusters of
more than min_cluster_size=5 samples, the one with the fewest labeled (and already picked) samples, ties to
the largest; in it, the unlabeled sample of highest typicality 1 / (mean distance to its min(20, size - 1)
nearest neighbours within the cluster + 1e-5). Remaining ties: the lowest cluster id, then a random order of
the samples.

ProbCover, our reading (the authors' code in the same repository): F_g rows scaled to unit norm; the
delta-ball graph (x -> y when ||x - y|| <= delta); the points covered by a labeled sample's ball are
removed; b times: the unlabeled sample whose ball covers the most uncovered points (ties: a random order),
whose covered points are then removed. Once everything is covered the rest of the batch is random.
delta (`delta: null`) follows the paper's purity rule: k-means with one cluster per class, and the
largest delta for which at least `purity` (0.95) of the balls hold a single cluster; i.e. the
(1 - purity) quantile of each point's distance to the nearest point of another cluster, estimated on a
random sample of `purity_sample` (2 000) points, each compared with the whole pool (the exact quantile
needs every pair).

Scale: distances in blocks of rows; the graph is stored sparse (its edges only).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from alimb.acquisition.base import Context, Selection, unit_rows
from alimb.acquisition.clustering import kmeans

BLOCK_ELEMENTS = 1 << 22


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared distances, float32, through torch's GEMM."""
    at, bt = torch.as_tensor(a), torch.as_tensor(b)
    d = torch.addmm((at * at).sum(1)[:, None], at, bt.T, alpha=-2.0).add_((bt * bt).sum(1)[None, :])
    return d.clamp_min_(0.0).numpy()


def typicality(x: np.ndarray, k_nn: int = 20) -> np.ndarray:
    """1 / (mean distance to the min(k_nn, n - 1) nearest other rows + 1e-5), for the rows of x."""
    k = min(k_nn, len(x) - 1)
    if k <= 0:
        return np.ones(len(x))
    out = np.empty(len(x))
    step = max(1, BLOCK_ELEMENTS // len(x))
    for start in range(0, len(x), step):
        d = np.sqrt(_sq_distances(x[start:start + step], x))
        near = np.partition(d, k, axis=1)[:, 1:k + 1]  # column 0: the row itself (distance 0)
        out[start:start + len(d)] = 1.0 / (near.mean(axis=1) + 1e-5)
    return out


def typiclust(ctx: Context, *, max_clusters: int = 500, min_cluster_size: int = 5, k_nn: int = 20) -> Selection:
    """TypiClust's batch (see the module docstring); only `ctx.available()` samples are picked."""
    ctx.need("typiclust", "fg")
    fg, labeled_mask, budget, rng = ctx.fg, np.asarray(ctx.labeled_mask), ctx.budget, ctx.rng
    ctx.pool()
    x = unit_rows(fg)
    clusters = kmeans(x, min(int(labeled_mask.sum()) + budget, max_clusters, len(x)), rng)
    sizes = np.bincount(clusters)
    taken = np.bincount(clusters[labeled_mask], minlength=sizes.size)
    chosen = ~ctx.available()  # labeled, picked earlier in the batch, or outside the candidates
    free_left = sizes - np.bincount(clusters[chosen], minlength=sizes.size)
    order = rng.permutation(len(x))  # ties between samples
    picks = []
    scores: dict[int, np.ndarray] = {}
    while len(picks) < budget:
        open_ = (sizes > min_cluster_size) & (free_left > 0)
        if not open_.any():  # every large cluster exhausted: the small ones too
            open_ = free_left > 0
        c = int(np.lexsort((np.arange(sizes.size), -sizes, np.where(open_, taken, np.iinfo(np.int64).max)))[0])
        members = np.flatnonzero(clusters == c)
        if c not in scores:
            scores[c] = typicality(x[members], k_nn)
        free = ~chosen[members]
        rank = np.lexsort((order[members][free], -scores[c][free]))
        j = int(members[free][rank[0]])
        picks.append(j)
        chosen[j] = True
        taken[c] += 1
        free_left[c] -= 1
    return Selection(np.array(picks, dtype=np.int64))


def purity_delta(x: np.ndarray, clusters: np.ndarray, purity: float, rows: np.ndarray) -> float:
    """The (1 - purity) quantile, over `rows`, of a row's distance to the nearest row of another cluster."""
    nearest_other = np.empty(rows.size)
    step = max(1, BLOCK_ELEMENTS // len(x))
    for start in range(0, rows.size, step):
        block = rows[start:start + step]
        d = _sq_distances(x[block], x)
        d[clusters[block][:, None] == clusters[None, :]] = np.inf
        nearest_other[start:start + step] = np.sqrt(d.min(axis=1))
    return float(np.quantile(nearest_other, 1.0 - purity))


def ball_graph(x: np.ndarray, rows: np.ndarray, delta: float) -> sp.csr_matrix:
    """(len(rows), n) sparse: row r has the points within delta of x[rows[r]]."""
    r_idx, c_idx = [], []
    step = max(1, BLOCK_ELEMENTS // len(x))
    for start in range(0, rows.size, step):
        r, c = np.nonzero(_sq_distances(x[rows[start:start + step]], x) <= delta * delta)
        r_idx.append(r + start)
        c_idx.append(c)
    r, c = (np.concatenate(v) if v else np.empty(0, dtype=np.int64) for v in (r_idx, c_idx))
    return sp.csr_matrix((np.ones(r.size, dtype=bool), (r, c)), shape=(rows.size, len(x)))


def probcover(ctx: Context, *, delta: float | None = None, purity: float = 0.95,
              purity_sample: int = 2000) -> Selection:
    """ProbCover's batch (see the module docstring)."""
    ctx.need("probcover", "fg")
    fg, n_classes, budget, rng = ctx.fg, ctx.n_classes, ctx.budget, ctx.rng
    candidates = ctx.pool()
    x = unit_rows(fg)
    if delta is None:
        rows = rng.choice(len(x), min(len(x), purity_sample), replace=False)
        delta = purity_delta(x, kmeans(x, n_classes, rng), purity, rows)
    covered = np.zeros(len(x), dtype=bool)
    labeled = ctx.covered()
    if labeled.size:
        covered[ball_graph(x, labeled, delta).indices] = True
    balls = ball_graph(x, candidates, delta)  # (m, n)
    gain = np.asarray(balls[:, ~covered].sum(axis=1)).ravel().astype(np.int64)
    by_point = balls.T.tocsr()  # (n, m): which candidates' balls hold each point
    order = rng.permutation(candidates.size)
    free = np.ones(candidates.size, dtype=bool)
    picks = []
    for _ in range(budget):
        if gain[free].max(initial=0) <= 0:  # all covered: the rest at random
            rest = np.flatnonzero(free)[np.argsort(order[free])]
            picks.extend(rest[:budget - len(picks)].tolist())
            break
        j = int(np.lexsort((order, -np.where(free, gain, -1)))[0])
        picks.append(j)
        free[j] = False
        new = balls.indices[balls.indptr[j]:balls.indptr[j + 1]]
        new = new[~covered[new]]
        covered[new] = True
        gain -= np.bincount(by_point[new].indices, minlength=candidates.size)
    return Selection(candidates[np.array(picks, dtype=np.int64)], info={"delta": float(delta)})
