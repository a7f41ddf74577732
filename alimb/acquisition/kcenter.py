"""k-center greedy (Sener & Savarese's coreset, paper Eq. 2) in torch, on CPU or GPU.

Squared Euclidean distances from precomputed norms. No candidates x centers matrix is ever held
whole: memory stays O(m * d) for m candidates.

Lazy, and still exact. Every candidate keeps an upper bound on its squared distance to the nearest
center (its distance to the nearest of the centers it has been compared with) and how many of the
centers, in the order they were added, the bound accounts for. A pick needs only the argmax of the
true distances, and a true distance never exceeds its bound: so a pick compares the candidates of
largest bound, in batches, with the centers they have not seen yet, until the largest bound belongs
to a candidate that has seen every center. That candidate's bound is then its exact distance and the
exact argmax, ties included (the candidate first in a random order wins, as in the plain algorithm).
Candidates whose bound stays below the picks never get compared with most centers: a pick reads the
few contenders, not every candidate. The initial centers enter the same way, the first LAZY_SUBSET
of them for every candidate up front (one GEMM), the rest only for contenders.

`lazy=False` is the plain algorithm (every initial center up front, every pick compared with every
candidate: one GEMV over the feature-major candidates) and serves as the reference in the benchmark
and the GPU check. Small problems take it too: up to PLAIN_PAIRS candidate x (center + pick) pairs, its few
torch calls per pick cost less than the lazy loop's bookkeeping (BENCHMARKS.md; DMCS's per-class problems are
all small).
"""

from __future__ import annotations

from typing import Annotated

from alimb.options import Device, Doc

import numpy as np
import torch

from alimb.acquisition.base import Context, Selection
from alimb.devices import resolve_device

CHUNK_ELEMENTS = 1 << 24  # 64 MiB of float32 per block of center x candidate distances
LAZY_SUBSET = 256  # initial centers compared with every candidate up front; the rest only with contenders
LAZY_BATCH = 64  # contenders compared together (measured: 32-128 alike, 1024 twice as slow on 2 CPU cores)
PLAIN_PAIRS = 1 << 20  # candidates x (centers + picks) up to which the plain loop is the faster (its speed-up in
# `bench_acquisition.py --small-kcenter`: 2.4x at 15 000 pairs, 1.7x at 200 000, 1.1x at 1.2 million, 0.5x at 1.8
# million; 512-d, 2 CPU cores)


def kcenter_greedy(
    features: np.ndarray | torch.Tensor,
    candidates: np.ndarray,
    centers: np.ndarray,
    k: int,
    rng: np.random.Generator,
    device: str | torch.device = "auto",
    lazy: bool = True,
) -> np.ndarray:
    """Pick k of `candidates` (absolute indices), each the farthest from its nearest center so far.

    `centers` are the initial centers (absolute indices; may be empty: the first pick is then
    random). Every pick becomes a center. Ties go to the candidate first in a random order drawn
    from `rng`. `lazy` changes the work done, not the picks, except where two candidates' distances agree to float32
    precision (the two loops round them differently: `bench_acquisition.py --small-kcenter` met one such pick in its
    1 251, after which that call's picks differ); it applies above PLAIN_PAIRS pairs.
    """
    assert k <= candidates.size, "cannot pick more candidates than there are"
    if k == 0:
        return np.empty(0, dtype=np.int64)
    device = resolve_device(device)
    candidates = candidates[rng.permutation(candidates.size)]  # random tie-break: argmax takes the first
    feats = torch.as_tensor(features)
    x = feats[torch.as_tensor(candidates)].to(device, torch.float32)  # (m, d)
    if not lazy or candidates.size * (centers.size + k) <= PLAIN_PAIRS:
        return _plain(feats, x, candidates, centers, k, rng)
    store = _Centers(feats, centers, x, capacity=centers.size + k)
    norms = squared_norms(x)  # (m,)
    upfront = min(max(1, LAZY_SUBSET), centers.size)
    nearest = torch.full_like(norms, float("inf"))  # upper bounds on the squared distance to the nearest center
    store.lower(nearest, x, norms, slice(None), 0, upfront)
    seen = torch.full(norms.shape, upfront, dtype=torch.int64, device=device)  # centers each bound accounts for
    picks = np.empty(k, dtype=np.int64)
    for i in range(k):
        if store.size == 0:  # no center yet: the first pick is random
            j = int(rng.integers(candidates.size))
        else:
            j = _exact_argmax(nearest, seen, store, x, norms)
        picks[i] = candidates[j]
        store.add(x[j])
        nearest[j] = -1.0  # a center is never picked again
        seen[j] = np.iinfo(np.int64).max
    return picks


def squared_norms(x: torch.Tensor) -> torch.Tensor:
    """||row||² of x (m, d), in blocks: no (m, d) temporary."""
    out = torch.empty(len(x), dtype=x.dtype, device=x.device)
    step = max(1, CHUNK_ELEMENTS // max(1, x.shape[1]))
    for s in range(0, len(x), step):
        out[s:s + step] = (x[s:s + step] * x[s:s + step]).sum(dim=1)
    return out


class _Centers:
    """The centers in the order they were added (the initial ones, then the picks), and their squared norms."""

    def __init__(self, feats: torch.Tensor, initial: np.ndarray, x: torch.Tensor, capacity: int):
        self.points = torch.empty(capacity, x.shape[1], dtype=torch.float32, device=x.device)
        self.size = 0
        step = max(1, CHUNK_ELEMENTS // x.shape[1])
        for start in range(0, initial.size, step):
            block = feats[torch.as_tensor(initial[start:start + step])].to(x.device, torch.float32)
            self.points[start:start + len(block)] = block
            self.size += len(block)
        self.norms = (self.points * self.points).sum(dim=1)  # (capacity,), filled as centers are added

    def add(self, point: torch.Tensor) -> None:
        self.points[self.size] = point
        self.norms[self.size] = point @ point
        self.size += 1

    def lower(self, nearest: torch.Tensor, x: torch.Tensor, norms: torch.Tensor, idx, start: int, stop: int) -> None:
        """nearest[idx] = min(nearest[idx], squared distances of x[idx] to centers start..stop), in blocks."""
        xs, ns = x[idx], norms[idx]
        if stop <= start or len(xs) == 0:
            return
        best = nearest[idx]
        step = max(1, CHUNK_ELEMENTS // len(xs))
        for lo in range(start, stop, step):
            hi = min(stop, lo + step)
            d = torch.addmm(self.norms[lo:hi, None], self.points[lo:hi], xs.T, alpha=-2.0).add_(ns)  # (b, n)
            torch.minimum(best, d.min(dim=0).values, out=best)
        nearest[idx] = best


def _exact_argmax(nearest: torch.Tensor, seen: torch.Tensor, store: _Centers, x: torch.Tensor,
                  norms: torch.Tensor) -> int:
    """argmax of the true distances: the largest bounds are brought up to date until the top one is."""
    while True:
        j = int(torch.argmax(nearest))
        if seen[j] >= store.size:
            return j
        stale = torch.where(seen < store.size, nearest, torch.full_like(nearest, -float("inf")))
        batch = min(LAZY_BATCH, int((seen < store.size).sum()))
        idx = torch.topk(stale, batch, sorted=False).indices
        idx = idx[torch.argsort(seen[idx])]  # by how many centers they have seen: similar ones together
        lows = seen[idx].tolist()
        start = 0
        while start < len(idx):  # one GEMM per run of candidates that have seen about as many centers
            lo = lows[start]
            stop = start + 1
            while stop < len(idx) and lows[stop] - lo <= max(16, (store.size - lo) // 4):
                stop += 1
            store.lower(nearest, x, norms, idx[start:stop], lo, store.size)
            start = stop
        seen[idx] = store.size


def _plain(feats: torch.Tensor, x: torch.Tensor, candidates: np.ndarray, centers: np.ndarray, k: int,
           rng: np.random.Generator) -> np.ndarray:
    """The plain algorithm: every initial center up front, every pick compared with every candidate."""
    xc = x.T.contiguous()  # (d, m) feature-major: one GEMV per pick
    norms = (xc * xc).sum(dim=0)
    nearest = torch.full_like(norms, float("inf"))
    if centers.size:
        _Centers(feats, centers, x, capacity=centers.size).lower(nearest, x, norms, slice(None), 0, centers.size)
    picks = np.empty(k, dtype=np.int64)
    for i in range(k):
        j = int(rng.integers(candidates.size)) if i == 0 and centers.size == 0 else int(torch.argmax(nearest))
        picks[i] = candidates[j]
        distance = torch.addmv(norms, xc.T, xc[:, j], alpha=-2.0).add_(norms[j])  # ||x||^2 - 2 x.c + ||c||^2
        torch.minimum(nearest, distance, out=nearest)
        nearest[j] = -1.0
    return picks


def coreset(ctx: Context, *, device: Device = "auto",
            lazy: Annotated[bool, Doc("skip candidates whose distance bound cannot win (same picks but for float32 "
                                      "near-ties, faster; small problems take the plain loop either way)")] = True,
            ) -> Selection:
    """k-center greedy over the candidates, the covered samples as initial centers (every labeled sample; inside a
    class of the MCS family, that class's labeled samples: DMCS, Eq. 7)."""
    ctx.need("coreset", "features")
    return Selection(kcenter_greedy(ctx.features, ctx.pool(), ctx.covered(), ctx.budget, ctx.rng, device, lazy))
