"""BADGE (Ash et al., ICLR 2020): k-means++ seeding on gradient embeddings, never materialised.

Our reading. Each unlabeled sample's gradient embedding is g = (onehot(y_hat) - p) ⊗ h(x): p the class
probabilities (an SVM's decision values go through a softmax, FT's probabilities are used as they are),
y_hat = argmax p, h the scheme's features (F_g for the SVM schemes, the penultimate layer for fine tuning).
The batch is chosen by k-means++ seeding on g: first the sample of largest ||g||, then repeatedly a sample
drawn with probability proportional to its squared distance to the nearest chosen one (D² sampling).
Only unlabeled samples are candidates and centers (as the authors' code and LabelBench do). g is never
built: ||g_i - g_j||² = ||a_i||²||h_i||² + ||a_j||²||h_j||² - 2 (a_i·a_j)(h_i·h_j) with a = onehot - p, so
memory is O(n (K + d)). Ties for the first pick are broken by the generator; if every remaining distance is
zero (identical embeddings), the next pick is uniform among the rest.
"""

from __future__ import annotations

import numpy as np

from alimb.acquisition.base import Selection, as_probabilities, top_k, unlabeled_candidates


def gradient_factors(scores: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a = onehot(argmax p) - p: (n, K), h: (n, d)), the two factors of the gradient embeddings g = a ⊗ h."""
    p = as_probabilities(scores)
    a = -p
    a[np.arange(len(p)), np.argmax(p, axis=1)] += 1.0
    return a, np.asarray(features, dtype=np.float64)


def badge(*, scores: np.ndarray, features: np.ndarray, labeled_mask: np.ndarray, budget: int,
          rng: np.random.Generator, **_) -> Selection:
    """k-means++ seeding (D² sampling) on the gradient embeddings of the unlabeled samples."""
    candidates = unlabeled_candidates(labeled_mask, budget)
    a, h = gradient_factors(np.asarray(scores)[candidates], np.asarray(features)[candidates])
    a_sq, h_sq = (a * a).sum(axis=1), (h * h).sum(axis=1)  # (m,)
    g_sq = a_sq * h_sq  # ||g||²
    chosen = [int(top_k(g_sq, np.arange(candidates.size), 1, rng)[0])]
    nearest = np.full(candidates.size, np.inf)  # squared distance to the nearest chosen center
    for _ in range(budget - 1):
        c = chosen[-1]
        distance = np.clip(g_sq + g_sq[c] - 2.0 * (a @ a[c]) * (h @ h[c]), 0.0, None)
        np.minimum(nearest, distance, out=nearest)
        nearest[chosen] = 0.0
        total = nearest.sum()
        if total > 0:
            chosen.append(int(rng.choice(candidates.size, p=nearest / total)))
        else:
            rest = np.setdiff1d(np.arange(candidates.size), chosen)
            chosen.append(int(rng.choice(rest)))
    return Selection(candidates[np.array(chosen, dtype=np.int64)])
