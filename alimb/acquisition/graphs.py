"""GALAXY (Zhang et al., ICML 2022): graph-based bisection per class, one query at a time.

As the authors' code runs it (jifanz/GALAXY `src/multiclass/multi_linear_graph.py`; LabelBench
`strategy_impl/galaxy.py`, read for this). For each class k the pool is a 1-D graph (a path) sorted by
q_k = p_k - max_j p_j + 1e-8 max_j p_j, from the most to the least class-k-like, where p are the model's class
probabilities: the scores themselves where they are probabilities (fine tuning), their softmax otherwise
(SVM decision values). On that path a labeled sample is + if its label is k, - otherwise. Each query:
1. draws a class k uniformly (as the authors);
2. among the runs of unlabeled samples lying between two labeled samples of opposite sign (the cut
   edges of the path), takes the shortest, the first from the class-k end when several are (as the authors),
   and queries its midpoint (the lower middle when the run has even length): S^2's bisection;
3. if path k has no such run, queries the unlabeled sample with the smallest |q_k| (ties: at random).
   This fallback is ours: the authors take the unlabeled node next to a fully labeled cut, else one at random.
The queried sample's label then counts on every path before the next query: read from the simulated
oracle (`reveal_within_batch: true`, GALAXY's setting) or, with `false`, its predicted class. With a person
answering, each query is a sub-round of one sample (alimb.person); `false` asks nothing within the batch.

Ties in q_k are ordered by a random permutation drawn once per call (the authors: numpy's argsort order).

Scale: a path is never sorted whole. The cut runs of path k lie between the highest and the lowest
labeled samples where the sign changes; only the samples in that range are kept (sorted), built the
first time class k is drawn and rebuilt only when a new label falls outside the range with a sign that
differs from the labels there (which would create a new cut).
"""

from __future__ import annotations

import numpy as np

from alimb.acquisition.base import Context, Selection, row_blocks, whole_pool
from alimb.errors import UserError
from alimb.options import RevealWithinBatch


def probability_terms(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(predicted class, row maximum, row log-normaliser, whether the scores are probabilities already), in row
    blocks: p_k = s_k on the simplex, exp(s_k - lse) otherwise, and max_j p_j the same of the row maximum."""
    n = len(scores)
    simplex = True
    arg1, top, lse = np.empty(n, dtype=np.int64), np.empty(n), np.zeros(n)
    for b in row_blocks(n, scores.shape[1]):
        s = np.asarray(scores[b], dtype=np.float64)
        arg1[b], top[b] = np.argmax(s, axis=1), s.max(axis=1)
        simplex = simplex and (s >= 0).all() and np.allclose(s.sum(axis=1), 1.0, atol=1e-6)
        lse[b] = top[b] + np.log(np.exp(s - top[b][:, None]).sum(axis=1))
    return arg1, top, lse, simplex


class _Paths:
    """The per-class paths' cut regions over the pool, kept up to date as queries are labeled."""

    def __init__(self, scores: np.ndarray, known: np.ndarray, tie: np.ndarray):
        self.scores, self.known, self.tie = scores, known, tie  # known: (n,) label or -1 (updated in place)
        self.arg1, top, lse, simplex = probability_terms(scores)
        self.lse = None if simplex else lse
        self.p_max = top if simplex else np.exp(top - lse)
        self.regions: dict[int, tuple] = {}  # class -> (nodes sorted by -q, q_low, q_high, sign_above, sign_below)

    def p(self, rows, cols) -> np.ndarray:
        s = np.asarray(self.scores[rows, cols], dtype=np.float64)
        if self.lse is None:
            return s
        lse = self.lse[rows]
        return np.exp(s - (lse[:, None] if s.ndim == 2 else lse))

    def q(self, k: int, idx=slice(None)) -> np.ndarray:
        """q_k = p_k - (1 - 1e-8) max_j p_j of the samples `idx` (the authors' ordering of path k)."""
        return self.p(idx, k) - (1 - 1e-8) * self.p_max[idx]

    def region(self, k: int):
        if k not in self.regions:
            q = self.q(k)
            lab = np.flatnonzero(self.known >= 0)
            lab = lab[np.lexsort((self.tie[lab], -q[lab]))]
            sign = self.known[lab] == k
            change = np.flatnonzero(sign[1:] != sign[:-1])
            if change.size == 0:
                self.regions[k] = None if sign.size == 0 else (None, None, None, bool(sign[0]), bool(sign[0]))
            else:
                q_high, q_low = q[lab[change[0]]], q[lab[change[-1] + 1]]
                nodes = np.flatnonzero((q <= q_high) & (q >= q_low))
                nodes = nodes[np.lexsort((self.tie[nodes], -q[nodes]))]
                self.regions[k] = (nodes, q_low, q_high, bool(sign[0]), bool(sign[-1]))
        return self.regions[k]

    def label(self, i: int, y: int) -> None:
        """Sample i now counts as class y: drop every cached region where that creates a cut outside it."""
        self.known[i] = y
        if not self.regions:
            return
        cached = np.fromiter(self.regions, dtype=np.int64, count=len(self.regions))
        q_row = self.q_row(i)[cached]
        plus = cached == y
        drop = []
        for k, qi, pos in zip(cached.tolist(), q_row.tolist(), plus.tolist()):
            region = self.regions[k]
            if region is None:  # no labeled sample on the path yet
                drop.append(k)
                continue
            nodes, q_low, q_high, above, below = region
            if nodes is None:  # every labeled sample of one sign
                if pos != above:
                    drop.append(k)
            elif (qi >= q_high and pos != above) or (qi <= q_low and pos != below):
                drop.append(k)
        for k in drop:
            del self.regions[k]

    def q_row(self, i: int) -> np.ndarray:
        """q_k of sample i for every class k: (K,)."""
        return self.p(i, slice(None)) - (1 - 1e-8) * self.p_max[i]

    def query(self, k: int, rng: np.random.Generator) -> int:
        region = self.region(k)
        if region is not None and region[0] is not None:
            nodes = region[0]
            labels = self.known[nodes]
            pos = np.flatnonzero(labels >= 0)
            sign = labels[pos] == k
            cut = np.flatnonzero((sign[1:] != sign[:-1]) & (np.diff(pos) > 1))
            if cut.size:
                length = pos[cut + 1] - pos[cut] - 1
                c = cut[np.argmin(length)]  # the first of the shortest, from the class-k end (as the authors)
                return int(nodes[(pos[c] + 1 + pos[c + 1] - 1) // 2])
        free = np.flatnonzero(self.known < 0)  # no cut run: the unlabeled sample nearest the boundary
        near = np.abs(self.q(k, free))
        best = free[near == near.min()]
        return int(best[rng.integers(best.size)]) if best.size > 1 else int(best[0])


@whole_pool
def galaxy(ctx: Context, *, reveal_within_batch: RevealWithinBatch = True) -> Selection:
    """`budget` sequential GALAXY queries; see the module docstring. Samples an enclosing AF already picked in
    this batch (`ctx.picked`) sit on the paths with their predicted class, as if labeled so."""
    ctx.need("galaxy", "scores")
    ctx.pool()
    if ctx.candidates is not None:
        raise UserError("galaxy bisects paths over the whole pool and cannot choose inside a set of candidates")
    scores, n_classes, budget, rng = ctx.scores, ctx.n_classes, ctx.budget, ctx.rng
    known = np.where(ctx.labeled_mask, ctx.labels, -1).astype(np.int64)
    aside = ctx.set_aside()  # picked by an enclosing AF (or skipped by a person): on the paths as predicted
    if aside.size:
        known[aside] = np.argmax(np.asarray(scores)[aside], axis=1)
    paths = _Paths(scores, known, rng.permutation(len(known)))
    picks = []
    for _ in range(budget):
        i = paths.query(int(rng.integers(n_classes)), rng)
        y = ctx.reveal(i) if ctx.reveals(reveal_within_batch) else int(paths.arg1[i])
        paths.label(i, y)
        picks.append(i)
    return Selection(np.array(picks, dtype=np.int64))
