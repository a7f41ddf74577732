"""The low-budget AFs: TypiClust (Hacohen et al., ICML 2022) and ProbCover (Yehuda et al., NeurIPS 2022), in F_g.

TypiClust as its authors run it (avihu111/TypiClust, deep-al/pycls/al/typiclust.py, read for this): F_g rows
scaled to unit norm; scikit-learn's k-means of the whole pool into min(n_labeled + b, max_clusters=500)
clusters (alimb.acquisition.clustering); the clusters of more than min_cluster_size=5 samples sorted once by
their labeled count (fewest first), then by size (largest first), then by id; pick i goes to the (i mod the
number of those clusters)-th cluster of that order; in it, among the members neither labeled nor picked, the
one of highest typicality 1 / (mean squared distance to its min(k_nn=20, members // 2) nearest other members
+ 1e-5), recomputed for every pick (the authors' faiss IndexFlatL2 distances are squared). Where the authors'
code has no answer, alimb's: a cluster with no member left is passed over for the next one in the order, a
single member is taken as it is, and with no cluster above the size floor every cluster takes part.
Samples an enclosing AF excludes (`ctx.available()`) are never picked but count as the authors count them.

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

from typing import Annotated, Optional

from alimb.options import Count, Doc, Fraction, Positive, PositiveNumber

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
    """1 / (mean squared distance to the min(k_nn, n // 2) nearest other rows + 1e-5), for the rows of x (the
    authors' rule: at most half the rows as neighbours; a single row: 1)."""
    k = min(k_nn, len(x) // 2)
    if k <= 0:
        return np.ones(len(x))
    out = np.empty(len(x))
    step = max(1, BLOCK_ELEMENTS // len(x))
    for start in range(0, len(x), step):
        d = _sq_distances(x[start:start + step], x)
        d[np.arange(len(d)), np.arange(start, start + len(d))] = np.inf  # not its own neighbour
        near = np.partition(d, k - 1, axis=1)[:, :k]
        out[start:start + len(d)] = 1.0 / (near.mean(axis=1) + 1e-5)
    return out


def typiclust_order(clusters: np.ndarray, labeled_mask: np.ndarray, min_cluster_size: int) -> np.ndarray:
    """The clusters picks go to, in turn: those above the size floor by (labeled count, -size, id)."""
    sizes = np.bincount(clusters)
    labeled = np.bincount(clusters[labeled_mask], minlength=sizes.size)
    ids = np.flatnonzero(sizes > min_cluster_size)
    if ids.size == 0:
        ids = np.flatnonzero(sizes > 0)
    return ids[np.lexsort((ids, -sizes[ids], labeled[ids]))]


def typiclust(
    ctx: Context, *,
    max_clusters: Annotated[Positive, Doc("at most this many k-means clusters (the authors': 500)")] = 500,
    min_cluster_size: Annotated[Count, Doc("clusters smaller than this get no pick (the authors': 5)")] = 5,
    k_nn: Annotated[Positive, Doc("neighbours of the typicality (the authors': 20)")] = 20,
) -> Selection:
    """TypiClust's batch (see the module docstring); only `ctx.available()` samples are picked."""
    ctx.need("typiclust", "fg")
    fg, labeled_mask, budget, rng = ctx.fg, np.asarray(ctx.labeled_mask), ctx.budget, ctx.rng
    ctx.pool()
    x = unit_rows(fg)
    clusters = kmeans(x, min(int(labeled_mask.sum()) + budget, max_clusters, len(x)), rng)
    order = typiclust_order(clusters, labeled_mask, min_cluster_size)
    free = ctx.available().copy()
    left = np.bincount(clusters[free], minlength=clusters.max() + 1)  # free members per cluster
    by_cluster = np.argsort(clusters, kind="stable")
    bounds = np.searchsorted(clusters[by_cluster], np.arange(left.size + 1))
    picks: list[int] = []
    turn = 0
    while len(picks) < budget:
        if left[order].sum() == 0:  # the listed clusters are used up: the others take part, by id
            order = np.flatnonzero(left)
        c = order[turn % order.size]
        turn += 1
        members = by_cluster[bounds[c]:bounds[c + 1]]
        members = members[free[members]]
        if members.size == 0:
            continue
        j = int(members[np.argmax(typicality(x[members], k_nn))])
        picks.append(j)
        free[j] = False
        left[c] -= 1
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


def probcover(
    ctx: Context, *,
    delta: Annotated[Optional[PositiveNumber], Doc("the ball radius; null: the paper's purity rule (k-means with "
                                                   "one cluster per class)")] = None,
    purity: Annotated[Fraction, Doc("the share of pure balls the radius keeps (the paper's alpha)")] = 0.95,
    purity_sample: Annotated[Positive, Doc("points whose distance to another cluster estimates the quantile")] = 2000,
) -> Selection:
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
