"""cds-bal (the authors' cold-start AF [17], adapted to iterations as the paper says). Our reading:

in the feature space F_g, for each minority class c (Eq. 3) with quota m_c, take the m_c unlabeled
samples minimising d(x, centroid_c) - d(x, nearest majority centroid); centroids are the means of
the labeled samples of each class (true labels). A minority class with no labeled sample has no
centroid and gets nothing. The rest of the budget is filled at random.
"""

from __future__ import annotations

import numpy as np
import torch

from alimb.acquisition.base import Selection, top_k, unlabeled_candidates
from alimb.acquisition.minority import complete, minority_quotas
from alimb.acquisition.uncertainty import random
from alimb.devices import resolve_device
from alimb.pool import minority_classes


def class_centroids(features: torch.Tensor, labels: np.ndarray, labeled_mask: np.ndarray, n_classes: int) -> torch.Tensor:
    """Mean feature of each class's labeled samples (NaN rows for classes with none): (n_classes, d)."""
    idx = np.flatnonzero(labeled_mask)
    y = torch.as_tensor(labels[idx], device=features.device)
    sums = torch.zeros(n_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, y, features[torch.as_tensor(idx, device=features.device)])
    counts = torch.bincount(y, minlength=n_classes).to(features.dtype)
    return sums / counts[:, None]


def cds_bal(
    *, features: np.ndarray, labels: np.ndarray, labeled_mask: np.ndarray, budget: int, rng: np.random.Generator,
    n_classes: int, device: str = "auto", **_,
) -> Selection:
    """Minority quotas filled by closeness to the class centroid relative to the nearest majority centroid."""
    unlabeled = unlabeled_candidates(labeled_mask, budget)
    counts = np.bincount(labels[labeled_mask], minlength=n_classes)
    quotas = minority_quotas(counts, budget)
    majority = np.flatnonzero(~minority_classes(counts))  # s_c >= mu_k: not by quota, which apportioning may zero
    served = np.flatnonzero((quotas > 0) & (counts > 0))  # minority classes that have a centroid
    free = np.ones(unlabeled.size, dtype=bool)  # unlabeled samples not picked yet
    picked: list[np.ndarray] = []
    if majority.size and served.size:
        feats = torch.as_tensor(features).to(resolve_device(device), torch.float32)
        centroids = class_centroids(feats, labels, labeled_mask, n_classes)
        x = feats[torch.as_tensor(unlabeled, device=feats.device)]  # (n_unlabeled, d)
        to_majority = torch.cdist(x, centroids[torch.as_tensor(majority, device=feats.device)]).min(dim=1).values
        for c in served:
            utility = (to_majority - torch.linalg.vector_norm(x - centroids[c], dim=1)).cpu().numpy()
            chosen = top_k(utility[free], np.flatnonzero(free), min(int(quotas[c]), int(free.sum())), rng)
            free[chosen] = False
            picked.append(unlabeled[chosen])
    quota_picks = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
    return complete(quota_picks, random, labeled_mask=labeled_mask, budget=budget, rng=rng)
