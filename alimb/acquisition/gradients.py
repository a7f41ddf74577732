"""BADGE (Ash et al., ICLR 2020): k-means++ seeding on gradient embeddings, never materialised.

Our reading. Each unlabeled sample's gradient embedding is g = (onehot(y_hat) - p) ⊗ h(x): p the class
probabilities (an SVM's decision values go through a softmax, FT's probabilities are used as they are),
y_hat = argmax p, h the scheme's features (F_g for the SVM schemes, the penultimate layer for fine tuning).
The batch is chosen by k-means++ seeding on g: first the sample of largest ||g||, then repeatedly a sample
drawn with probability proportional to its squared distance to the nearest chosen one (D² sampling).
Only unlabeled samples are candidates and centers (as the authors' code and LabelBench do). g is never
built: ||g_i - g_j||² = ||a_i||²||h_i||² + ||a_j||²||h_j||² - 2 (a_i·a_j)(h_i·h_j) with a = onehot - p and
a_i·a_j = [y_i = y_j] - p_i[y_j] - p_j[y_i] + p_i·p_j, so memory is the probabilities (float32, (n, K)) and
O(n) vectors. Ties for the first pick are broken by the generator; if every remaining distance is zero
(identical embeddings), the next pick is uniform among the rest.

D² sampling without reading the pool at every pick (exact in distribution): every candidate keeps an
upper bound u on its squared distance to the nearest center (its distance to the nearest of the centers
it has been compared with). A draw proposes a candidate with probability u / sum(u), compares it with the
centers it has not seen (u becomes exact) and accepts it with probability (exact / old u): rejection
sampling, whose accepted draws follow the D² distribution exactly. Candidates that are never proposed are
never compared with the later centers. The picks follow the plain algorithm's distribution, not its
stream of random numbers.
"""

from __future__ import annotations

import numpy as np

from alimb.acquisition.base import Selection, as_probabilities, row_blocks, top_k, unlabeled_candidates

WEIGHT_BLOCK = 1024  # candidates per block of the proposal weights (block sums make a draw O(n / block + block))


def gradient_factors(scores: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a = onehot(argmax p) - p: (n, K), h: (n, d)), the two factors of the gradient embeddings g = a ⊗ h."""
    p = as_probabilities(scores)
    a = -p
    a[np.arange(len(p)), np.argmax(p, axis=1)] += 1.0
    return a, np.asarray(features, dtype=np.float64)


class _Embeddings:
    """The candidates' gradient embeddings in factorised form: p (float32), y_hat, ||a||², h, ||h||²."""

    def __init__(self, scores: np.ndarray, features: np.ndarray, candidates: np.ndarray):
        m = candidates.size
        self.p = np.empty((m, np.shape(scores)[1]), dtype=np.float32)
        for b in row_blocks(m, self.p.shape[1]):
            self.p[b] = as_probabilities(np.asarray(scores[candidates[b]]))
        self.y = np.argmax(self.p, axis=1)
        rows = np.arange(m)
        p_sq = np.einsum("nk,nk->n", self.p, self.p, dtype=np.float64)
        self.a_sq = 1.0 - 2.0 * self.p[rows, self.y] + p_sq  # ||onehot(y) - p||²
        self.features, self.candidates = features, candidates
        self.h_sq = np.empty(m)
        for b in row_blocks(m, np.shape(features)[1]):
            h = np.asarray(features[candidates[b]], dtype=np.float64)
            self.h_sq[b] = (h * h).sum(axis=1)
        self.g_sq = self.a_sq * self.h_sq  # ||g||²

    def h(self, idx) -> np.ndarray:
        return np.asarray(self.features[self.candidates[idx]], dtype=np.float32)

    def distances(self, idx, centers: np.ndarray) -> np.ndarray:
        """Squared distances (len(idx), len(centers)) between candidates idx and candidates `centers`."""
        p, pc = self.p[idx], self.p[centers]
        y, yc = self.y[idx], self.y[centers]
        a_dot = (y[:, None] == yc[None, :]) - p[:, yc] - pc[:, y].T + p @ pc.T
        h_dot = self.h(idx) @ self.h(centers).T
        d = self.g_sq[idx][:, None] + self.g_sq[centers][None, :] - 2.0 * a_dot * h_dot
        return np.clip(d, 0.0, None)


def badge(*, scores: np.ndarray, features: np.ndarray, labeled_mask: np.ndarray, budget: int,
          rng: np.random.Generator, **_) -> Selection:
    """k-means++ seeding (D² sampling) on the gradient embeddings of the unlabeled samples."""
    candidates = unlabeled_candidates(labeled_mask, budget)
    emb = _Embeddings(scores, features, candidates)
    m = candidates.size
    chosen = [int(top_k(emb.g_sq, np.arange(m), 1, rng)[0])]
    bound = np.empty(m)  # u: squared distance to the nearest center seen; exact after the first pass
    for b in row_blocks(m, emb.p.shape[1] + np.shape(features)[1]):
        bound[b] = emb.distances(np.arange(b.start, b.stop), np.array(chosen))[:, 0]
    seen = np.ones(m, dtype=np.int64)  # centers (in `chosen` order) each bound accounts for
    bound[chosen] = 0.0
    blocks = np.add.reduceat(bound, np.arange(0, m, WEIGHT_BLOCK))
    while len(chosen) < budget:
        total = blocks.sum()
        if total <= 0:  # every remaining distance is zero
            rest = np.setdiff1d(np.arange(m), chosen)
            chosen.append(int(rng.choice(rest)))
            j = chosen[-1]
        else:
            j = _propose(bound, blocks, total, rng)
            old = bound[j]
            if old <= 0:  # the block sums drifted from the weights: recompute them
                blocks = np.add.reduceat(bound, np.arange(0, m, WEIGHT_BLOCK))
                continue
            if seen[j] < len(chosen):  # compare with the centers it has not seen
                bound[j] = min(old, float(emb.distances(np.array([j]), np.array(chosen[seen[j]:]))[0].min()))
                seen[j] = len(chosen)
                blocks[j // WEIGHT_BLOCK] += bound[j] - old
            if rng.random() * old >= bound[j]:  # rejected: accept with probability exact / bound
                continue
            chosen.append(j)
        blocks[j // WEIGHT_BLOCK] -= bound[j]
        bound[j] = 0.0
        seen[j] = np.iinfo(np.int64).max
    return Selection(candidates[np.array(chosen, dtype=np.int64)])


def _propose(bound: np.ndarray, blocks: np.ndarray, total: float, rng: np.random.Generator) -> int:
    """A candidate drawn with probability bound / total, through the block sums."""
    r = rng.random() * total
    cum = np.cumsum(blocks)
    b = min(int(np.searchsorted(cum, r, side="right")), len(blocks) - 1)
    r -= cum[b] - blocks[b]
    start = b * WEIGHT_BLOCK
    within = np.cumsum(bound[start:start + WEIGHT_BLOCK])
    j = min(int(np.searchsorted(within, r, side="right")), len(within) - 1)
    while bound[start + j] <= 0 and j > 0:  # rounding landed on a zero weight: the last positive before it
        j -= 1
    return start + j
