"""SIMILAR with FLQMI (Kothawade et al., NeurIPS 2021): facility-location mutual information with the labeled
samples of the minority classes as the query set.

Our reading. Q = the labeled samples of the classes whose labeled count is below the mean (the paper's
minority rule, Eq. 3), A the batch, s(x, y) = (1 + cos(x, y)) / 2 in F_g (a similarity in [0, 1]).

    I(A; Q) = sum_{i in Q} max_{j in A} s_ij  +  eta * sum_{j in A} max_{i in Q} s_ij

is maximised greedily (monotone submodular: lazy greedy gives the plain greedy's batch): each step adds
the unlabeled sample of largest gain sum_i max(0, s_ij - cover_i) + eta * max_i s_ij, cover_i being
max_{j in A} s_ij so far. eta = 1 (DISTIL's default). Ties: a random order of the candidates.
With no minority class (the labeled set is balanced) the batch is random.

Scale: similarities are computed in blocks of Q x candidates for the first gains, then one column
(|Q| x d) per re-evaluated candidate: no |U| x |U| (nor Q x U) matrix is held.
"""

from __future__ import annotations

import heapq

import numpy as np

from alimb.acquisition.base import Selection, unlabeled_candidates
from alimb.acquisition.minority import minority_quotas

BLOCK_ELEMENTS = 1 << 22


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def flqmi(*, fg: np.ndarray, labels: np.ndarray, labeled_mask: np.ndarray, n_classes: int, budget: int,
          rng: np.random.Generator, eta: float = 1.0, **_) -> Selection:
    """Greedy FLQMI with the minority classes' labeled samples as the query set (see the module docstring)."""
    candidates = unlabeled_candidates(labeled_mask, budget)
    candidates = candidates[rng.permutation(candidates.size)]  # ties: the first in a random order
    minority = np.flatnonzero(minority_quotas(np.bincount(labels[labeled_mask], minlength=n_classes)) > 0)
    query = np.flatnonzero(labeled_mask & np.isin(labels, minority))
    if query.size == 0:
        return Selection(candidates[:budget], info={"query_size": 0})
    q = _unit(np.asarray(fg)[query])  # (|Q|, d)
    cover = np.zeros(len(q), dtype=np.float64)
    heap = []
    step = max(1, BLOCK_ELEMENTS // len(q))
    for start in range(0, candidates.size, step):
        s = 0.5 * (1.0 + _unit(np.asarray(fg)[candidates[start:start + step]]) @ q.T)  # (b, |Q|)
        gains = s.sum(axis=1) + eta * s.max(axis=1)
        heap.extend((-float(g), start + j) for j, g in enumerate(gains))
    heapq.heapify(heap)  # upper bounds on the gains, by (-bound, position)
    picks = []
    while len(picks) < budget:
        _, j = heapq.heappop(heap)
        s = 0.5 * (1.0 + q @ _unit(np.asarray(fg)[candidates[j:j + 1]])[0])  # (|Q|,)
        gain = float(np.maximum(s - cover, 0.0).sum() + eta * s.max())
        if heap and (-gain, j) > heap[0]:  # no longer the best: back with its exact gain as the bound
            heapq.heappush(heap, (-gain, j))
            continue
        picks.append(j)
        np.maximum(cover, s, out=cover)
    return Selection(candidates[np.array(picks, dtype=np.int64)], info={"query_size": int(query.size)})
