"""k-means (Lloyd's algorithm) in torch, for the AFs that cluster the pool (TypiClust, ProbCover's purity rule).

Initial centers: k distinct rows drawn by the generator; then Lloyd iterations (assign each row to its
nearest center, move each center to its rows' mean; a center left without rows keeps its place) until
no assignment changes or `max_iter`. Distances in blocks of rows, so memory is O(n + k d) beyond the data.
Deterministic for a given generator state.
"""

from __future__ import annotations

import numpy as np
import torch

BLOCK_ELEMENTS = 1 << 24


def assign(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Index of each row's nearest center: (n,)."""
    c_sq = (centers * centers).sum(dim=1)
    out = torch.empty(len(x), dtype=torch.int64, device=x.device)
    step = max(1, BLOCK_ELEMENTS // len(centers))
    for s in range(0, len(x), step):
        out[s:s + step] = torch.addmm(c_sq[None, :], x[s:s + step], centers.T, alpha=-2.0).argmin(dim=1)
    return out


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 50) -> np.ndarray:
    """Cluster ids (n,) of the rows of x (n, d) into k clusters."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    k = min(k, len(xt))
    centers = xt[torch.as_tensor(rng.choice(len(xt), k, replace=False))].clone()
    labels = assign(xt, centers)
    for _ in range(max_iter):
        sums = torch.zeros_like(centers).index_add_(0, labels, xt)
        counts = torch.bincount(labels, minlength=k)
        filled = counts > 0
        centers[filled] = sums[filled] / counts[filled, None].to(sums.dtype)
        new = assign(xt, centers)
        if torch.equal(new, labels):
            break
        labels = new
    return labels.numpy()
