"""cds-bal: the balancing AF of the authors' WACV 2020 paper ([17]: Aggarwal, Popescu, Hudelot, "Active
Learning for Imbalanced Datasets"), applied at every iteration as the paper says, always in F_g.

The published rule, one pick at a time (as the public re-implementation `BalancingSampler` of
zeyademam/active_learning does it):
1. From the labeled counts s_c (those picked earlier in this batch included): majority classes have
   s_c > mean, the others are minority; gap = mean count of the majority classes - that of the minority.
2. If the budget left <= (number of minority classes) * gap, the labeled set is imbalanced relative to
   the budget: take the unlabeled sample minimising d(x, centroid of the rarest class) /
   d(x, nearest majority centroid), centroids being the means of the labeled samples in F_g.
   Otherwise (balanced relative to the budget left, or no majority class) take one at random.
3. The picked sample's label is counted (and its class centroid updated) before the next pick.

Where we had to choose (the sources leave these open or disagree):
- Denominator: the *nearest* majority centroid, as the paper's text says ("maximize the distance to the
  centroid of the closest majority class"); the re-implementation divides by the farthest one (`.max`,
  in a variable named `min_dist_to_majcenters`).
- Distances are squared Euclidean there and plain here: the ratio's order is the same.
- A rarest class with no labeled sample has no centroid: the numerator is 1 (as the re-implementation),
  so the pick is the sample farthest from every majority centroid. Ties for the rarest class: the lowest
  class index (as torch's min). Ties between samples: at random by the generator (there: the first).
- Step 3 reads the simulated oracle (`reveal_within_batch: true`, the published behaviour); with
  `false` the pick is counted under its predicted class (argmax of the scores) instead. With a person answering,
  each pick's label is a sub-round of one sample (alimb.person); `false` asks nothing within the batch.
- Iterative use: the rule runs within each iteration's budget; iteration 0 is random like every AF's.
Picks of step 2's balancing branch are counted in `acquisition_info.n_balancing` (they are no quota picks).
"""

from __future__ import annotations

import numpy as np
import torch

from alimb.acquisition.base import Context, Selection
from alimb.acquisition.kcenter import squared_norms
from alimb.devices import resolve_device
from alimb.options import Device, RevealWithinBatch


def cds_bal(ctx: Context, *, reveal_within_batch: RevealWithinBatch = True, device: Device = "auto") -> Selection:
    """WACV 2020's balancing rule in F_g (`fg`: (n_pool, d)), one pick at a time; see the module docstring."""
    reveals = ctx.reveals(reveal_within_batch)
    ctx.need("cds_bal", "fg", *(() if reveals else ("scores",)))
    unlabeled = ctx.pool()
    fg, labels, labeled_mask, n_classes, budget, rng = ctx.fg, ctx.labels, ctx.labeled_mask, ctx.n_classes, ctx.budget, ctx.rng
    candidates = unlabeled[rng.permutation(unlabeled.size)]  # random tie-break: argmin takes the first
    dev = resolve_device(device)
    feats = torch.as_tensor(np.asarray(fg), dtype=torch.float32)
    x = feats[torch.as_tensor(candidates)].to(dev)  # (m, d)
    x_norm = squared_norms(x)  # (m,)
    x = x.T.contiguous()  # (d, m) feature-major: a pick's distance column is one GEMV at full read speed
    counts = np.bincount(labels[labeled_mask], minlength=n_classes).astype(np.int64)  # (C,)
    sums = torch.zeros(n_classes, x.shape[0], device=dev)
    idx = np.flatnonzero(labeled_mask)
    sums.index_add_(0, torch.as_tensor(labels[idx], device=dev), feats[torch.as_tensor(idx)].to(dev))
    centroids = sums / torch.as_tensor(np.maximum(counts, 1), dtype=torch.float32, device=dev)[:, None]  # (C, d)
    distance = torch.empty(candidates.size, n_classes, device=dev)  # (m, C) to the centroids; the columns a
    dirty = set(range(n_classes))  # balancing pick reads (rarest, majority) are made current first
    nearest_majority, majority_key = None, None
    inf = torch.tensor(float("inf"), device=dev)
    free = torch.ones(candidates.size, dtype=torch.bool, device=dev)
    pool = _FreeList(candidates.size)
    balancing, at_random = [], []
    for q in range(budget):
        majority = counts > counts.mean()
        gap = counts[majority].mean() - counts[~majority].mean() if majority.any() else 0.0
        if majority.any() and budget - q <= (~majority).sum() * gap:
            rarest = int(np.argmin(counts))
            needed = sorted(c for c in dirty if majority[c] or c == rarest)  # the only columns read below
            if needed:
                c = centroids[torch.as_tensor(needed, device=dev)]
                d2 = torch.addmm(x_norm[None, :], c, x, alpha=-2.0).add_((c * c).sum(1)[:, None])  # (k, m)
                distance[:, needed] = d2.clamp_min_(0).sqrt_().T
                if majority[needed].any():
                    nearest_majority = None
                dirty.difference_update(needed)
            if nearest_majority is None or majority.tobytes() != majority_key:
                nearest_majority = torch.where(torch.as_tensor(majority, device=dev), distance, inf).min(dim=1).values
                majority_key = majority.tobytes()
            near_rarest = distance[:, rarest] if counts[rarest] > 0 else torch.ones_like(nearest_majority)
            ratio = torch.nan_to_num(near_rarest / nearest_majority, nan=float("inf"))
            j = int(torch.argmin(torch.where(free, ratio, inf)))
            balancing.append(j)
        else:
            j = pool.draw(rng)
            at_random.append(j)
        free[j] = False
        pool.remove(j)
        picked = candidates[j]
        y = ctx.reveal(picked) if reveals else int(np.argmax(ctx.scores[picked]))
        counts[y] += 1  # the pick's label counts before the next pick, and moves its class centroid
        sums[y] += x[:, j]
        centroids[y] = sums[y] / counts[y]
        dirty.add(y)
    return Selection(candidates[np.array(balancing + at_random, dtype=np.int64)],
                     info={"n_balancing": len(balancing)})


class _FreeList:
    """Positions not yet picked: a uniform draw and a removal in O(1)."""

    def __init__(self, m: int):
        self.items, self.where, self.size = np.arange(m), np.arange(m), m

    def draw(self, rng: np.random.Generator) -> int:
        return int(self.items[rng.integers(self.size)])

    def remove(self, j: int) -> None:
        i, last = self.where[j], self.items[self.size - 1]
        self.items[i], self.where[last] = last, i
        self.items[self.size - 1], self.where[j] = j, self.size - 1
        self.size -= 1
