"""k-center greedy (Sener & Savarese's coreset, paper Eq. 2) in torch, on CPU or GPU.

Squared Euclidean distances from precomputed norms: the candidates are stored feature-major
(d, m), so each pick costs one matrix-vector product over them plus an in-place minimum. No
candidates x centers matrix is ever held whole, so memory stays O(m * d).

The distances to many initial centers are evaluated lazily, and still exactly: every candidate
starts with an upper bound (its distance to the nearest of the first LAZY_SUBSET centers), picks
lower the bounds as usual, and a candidate's distance to the other initial centers is computed
only when its bound makes it a contender for the argmax (in batches of the largest bounds). A
pick is made only when the argmax of the bounds is exact, which is then the exact argmax, ties
included (the candidate first in the random order wins, as without laziness).
"""

from __future__ import annotations

import numpy as np
import torch

from alimb.acquisition.base import Selection, unlabeled_candidates
from alimb.devices import resolve_device

CHUNK_ELEMENTS = 1 << 24  # 64 MiB of float32 per block of center x candidate distances
LAZY_SUBSET = 512  # initial centers evaluated for every candidate up front; the rest only for contenders
LAZY_BATCH = 2048  # contenders evaluated together


def kcenter_greedy(
    features: np.ndarray | torch.Tensor,
    candidates: np.ndarray,
    centers: np.ndarray,
    k: int,
    rng: np.random.Generator,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Pick k of `candidates` (absolute indices), each the farthest from its nearest center so far.

    `centers` are the initial centers (absolute indices; may be empty: the first pick is then
    random). Every pick becomes a center. Ties go to the candidate first in a random order drawn
    from `rng`.
    """
    assert k <= candidates.size, "cannot pick more candidates than there are"
    if k == 0:
        return np.empty(0, dtype=np.int64)
    device = resolve_device(device)
    candidates = candidates[rng.permutation(candidates.size)]  # random tie-break: argmax takes the first
    feats = torch.as_tensor(features)
    xc = feats[torch.as_tensor(candidates)].to(device, torch.float32).T.contiguous()  # (d, m) feature-major
    norms = (xc * xc).sum(dim=0)  # (m,)
    upfront = max(1, LAZY_SUBSET)
    nearest = _initial_min_distances(feats, centers[:upfront], xc, norms)  # (m,) upper bounds; None: no center
    pending = _Pending(feats, centers[upfront:], xc, norms)  # initial centers not yet in the bounds
    picks = np.empty(k, dtype=np.int64)
    for i in range(k):
        if nearest is None:  # no center yet: the first pick is random
            j = int(rng.integers(candidates.size))
            nearest = torch.full_like(norms, float("inf"))
        else:
            j = pending.exact_argmax(nearest)
        picks[i] = candidates[j]
        center = xc[:, j]
        distance = torch.addmv(norms, xc.T, center, alpha=-2.0).add_(norms[j])  # ||x||^2 - 2 x.c + ||c||^2
        torch.minimum(nearest, distance, out=nearest)
        nearest[j] = -1.0  # a center is never picked again
    return picks


class _Pending:
    """The initial centers beyond the first LAZY_SUBSET, and which candidates already account for them."""

    def __init__(self, feats: torch.Tensor, centers: np.ndarray, xc: torch.Tensor, norms: torch.Tensor):
        self.xc, self.norms = xc, norms
        self.exact = torch.full_like(norms, centers.size == 0, dtype=torch.bool)  # (m,)
        self.centers = feats[torch.as_tensor(centers)].to(xc.device, torch.float32) if centers.size else None  # (r, d)
        self.center_norms = None if self.centers is None else (self.centers * self.centers).sum(dim=1)

    def exact_argmax(self, nearest: torch.Tensor) -> int:
        """argmax of `nearest` once it is exact there; makes the largest inexact bounds exact as needed."""
        while True:
            j = int(torch.argmax(nearest))
            if self.exact[j]:
                return j
            inexact = torch.where(self.exact, torch.full_like(nearest, -float("inf")), nearest)
            batch = max(1, min(LAZY_BATCH, CHUNK_ELEMENTS // len(self.centers), int((~self.exact).sum())))
            idx = torch.topk(inexact, batch).indices
            distances = torch.addmm(self.norms[idx][None, :], self.centers, self.xc[:, idx], alpha=-2.0)
            distances.add_(self.center_norms[:, None])  # (r, batch)
            nearest[idx] = torch.minimum(nearest[idx], distances.min(dim=0).values)
            self.exact[idx] = True


def _initial_min_distances(
    feats: torch.Tensor, centers: np.ndarray, xc: torch.Tensor, norms: torch.Tensor
) -> torch.Tensor | None:
    """Squared distance of every candidate to its nearest initial center, in chunks of centers."""
    if centers.size == 0:
        return None
    nearest = torch.full_like(norms, float("inf"))
    step = max(1, CHUNK_ELEMENTS // norms.numel())
    for start in range(0, centers.size, step):
        block = feats[torch.as_tensor(centers[start:start + step])].to(xc.device, torch.float32)  # (b, d)
        distances = torch.addmm(norms[None, :], block, xc, alpha=-2.0).add_((block * block).sum(1, keepdim=True))
        torch.minimum(nearest, distances.min(dim=0).values, out=nearest)
    return nearest


def coreset(
    *, features: np.ndarray, labeled_mask: np.ndarray, budget: int, rng: np.random.Generator, device: str = "auto", **_
) -> Selection:
    """k-center greedy over the unlabeled pool with every labeled sample as an initial center."""
    candidates = unlabeled_candidates(labeled_mask, budget)
    return Selection(kcenter_greedy(features, candidates, np.flatnonzero(labeled_mask), budget, rng, device))
