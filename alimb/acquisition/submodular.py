"""SIMILAR with FLQMI (Kothawade et al., NeurIPS 2021): facility-location mutual information with the labeled
samples of the minority classes as the query set.

Our reading. Q = the labeled samples of the classes whose labeled count is below the mean (the paper's
minority rule, Eq. 3), A the batch, s(x, y) = (1 + cos(x, y)) / 2 in F_g (a similarity in [0, 1]).

    I(A; Q) = sum_{i in Q} max_{j in A} s_ij  +  eta * sum_{j in A} max_{i in Q} s_ij

is maximised greedily (monotone submodular: gains only fall as the batch grows, so lazy greedy, re-evaluating
only the largest stale gains, in batches, gives the plain greedy's batch): each step adds
the unlabeled sample of largest gain sum_i max(0, s_ij - cover_i) + eta * max_i s_ij, cover_i being
max_{j in A} s_ij so far. eta = 1 (DISTIL's default). Ties: a random order of the candidates.
With no minority class (the labeled set is balanced) the batch is random.

Scale: similarities are computed in blocks of Q x candidates for the first gains, then only for the
re-evaluated candidates: no |U| x |U| (nor Q x U) matrix is held.
"""

from __future__ import annotations

import numpy as np
import torch

from alimb.acquisition.base import Selection, unlabeled_candidates
from alimb.acquisition.minority import minority_quotas

BLOCK_ELEMENTS = 1 << 22
LAZY_BATCH = 64  # stale gains re-evaluated together


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
    q = torch.as_tensor(_unit(np.asarray(fg)[query]))  # (|Q|, d)
    x = torch.as_tensor(_unit(np.asarray(fg)[candidates]))  # (m, d)
    cover = torch.zeros(len(q))
    bound = torch.empty(candidates.size, dtype=torch.float64)  # upper bounds on the gains (exact at `fresh`)
    step = max(1, BLOCK_ELEMENTS // len(q))
    for start in range(0, candidates.size, step):
        s = 0.5 * (1.0 + x[start:start + step] @ q.T)  # (b, |Q|)
        bound[start:start + step] = (s.sum(dim=1) + eta * s.max(dim=1).values).double()
    fresh = torch.zeros(candidates.size, dtype=torch.bool)
    picks = []
    while len(picks) < budget:
        j = int(torch.argmax(bound))  # ties: the first in the random order
        if fresh[j]:  # its exact gain beats every other bound: the plain greedy's pick
            picks.append(j)
            np.maximum(cover.numpy(), (0.5 * (1.0 + q @ x[j])).numpy(), out=cover.numpy())
            bound[j] = -float("inf")
            fresh[:] = False
            continue
        stale = torch.where(fresh, torch.full_like(bound, -float("inf")), bound)
        idx = torch.topk(stale, min(LAZY_BATCH, int((~fresh).sum()) - len(picks)), sorted=False).indices
        s = 0.5 * (1.0 + x[idx] @ q.T)  # (b, |Q|)
        bound[idx] = ((s - cover).clamp_min_(0.0).sum(dim=1) + eta * s.max(dim=1).values).double()
        fresh[idx] = True
    return Selection(candidates[np.array(picks, dtype=np.int64)], info={"query_size": int(query.size)})
