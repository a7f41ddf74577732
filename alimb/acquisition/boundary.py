"""BASE (Emam et al., 2021, "Active Learning at the ImageNet Scale"): an equal share of the batch per class,
each from the samples closest to that class's decision boundary, measured in feature space.

Our reading. The scheme's linear last layer (`head` = W: (d, K), b: (K,); the SVMs themselves for the SVM
schemes, the classification head over the penultimate features for fine tuning) gives logits z = h W + b and
the prediction y_hat = argmax z. A sample's distance to the boundary between y_hat and class c is the
length of the smallest feature-space step that makes them tie:

    d_c(x) = (z_yhat - z_c) / ||w_yhat - w_c||,   c != y_hat

and for its own class, d_yhat(x) = min_{c != y_hat} d_c(x) (its smallest margin). Class c gets
floor(b / K) picks, one more for the first b mod K classes, taken in class order; each takes its closest
samples not taken by an earlier class (as the authors' `BASESampler`). Two classes with identical weight
vectors have no boundary (distance +inf), as the authors' NaN -> inf.

Where we had to choose: ties at equal distance go by a random order of the candidates (the generator; the
authors' sort leaves them to the sort), except exactly at the cut of a per-class list (below). The logits are
computed from the head even where the scheme's scores are post-processed (FT-th's thresholding), as the method
is defined on the classifier's geometry.

Scale: the (n, K) distances are never held whole: row blocks keep, per class, the min(budget, n)
closest candidates, which is all that the class-ordered, de-duplicated assignment can reach.
"""

from __future__ import annotations

import numpy as np

from alimb.acquisition.base import ROW_BLOCK_ELEMENTS, Context, Selection


def boundary_distances(h: np.ndarray, weights: np.ndarray, bias: np.ndarray, pair_norms: np.ndarray) -> np.ndarray:
    """d_c(x) for rows h: (n, d) -> (n, K), own class = smallest margin; see the module docstring."""
    z = np.asarray(h, dtype=np.float64) @ weights + bias  # (n, K)
    rows = np.arange(len(z))
    y_hat = np.argmax(z, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (z[rows, y_hat][:, None] - z) / pair_norms[y_hat]
    d[~np.isfinite(d)] = np.inf  # no boundary: identical weights
    d[rows, y_hat] = np.inf
    d[rows, y_hat] = d.min(axis=1)
    return d


def base(ctx: Context) -> Selection:
    """Per class, its share of the budget from the candidates closest to its decision boundary."""
    ctx.need("base", "features", "head")
    features, head, budget, rng = ctx.features, ctx.head, ctx.budget, ctx.rng
    candidates = ctx.pool()
    candidates = candidates[rng.permutation(candidates.size)]  # ties: a random order
    weights, bias = (np.asarray(a, dtype=np.float64) for a in head)
    k = weights.shape[1]
    gram = weights.T @ weights
    sq = np.diag(gram)
    pair_norms = np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2 * gram, 0.0, None))  # ||w_i - w_j||: (K, K)
    keep = min(budget, candidates.size)
    best_d, best_i = np.empty((0, k)), np.empty((0, k), dtype=np.int64)  # positions into `candidates`
    features = np.asarray(features)
    step = max(keep, ROW_BLOCK_ELEMENTS // k)
    for start in range(0, candidates.size, step):
        block = np.arange(start, min(candidates.size, start + step))
        d = boundary_distances(features[candidates[block]], weights, bias, pair_norms)
        best_d = np.concatenate([best_d, d])
        best_i = np.concatenate([best_i, np.broadcast_to(block[:, None], d.shape)])
        if len(best_d) > keep:  # the keep closest per class
            part = np.argpartition(best_d, keep - 1, axis=0)[:keep]
            best_d, best_i = np.take_along_axis(best_d, part, 0), np.take_along_axis(best_i, part, 0)
    order = np.lexsort((best_i, best_d), axis=0)  # by distance, ties by position in the random order
    ranked = np.take_along_axis(best_i, order, 0)  # (keep, K): per class, candidates from closest
    shares = budget // k + (np.arange(k) < budget % k)
    taken = np.zeros(candidates.size, dtype=bool)
    picks = []
    for c in np.flatnonzero(shares):
        free = ranked[:, c][~taken[ranked[:, c]]][: shares[c]]
        taken[free] = True
        picks.append(free)
    return Selection(candidates[np.concatenate(picks)])
