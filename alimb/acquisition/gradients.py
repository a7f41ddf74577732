"""BADGE (Ash et al., ICLR 2020): k-means++ seeding on gradient embeddings, never materialised.

Our reading. Each unlabeled sample's gradient embedding is g = (onehot(y_hat) - p) ⊗ h(x): p the class
probabilities, the model's own as the cross-entropy gradient needs them (an SVM's decision values through a
softmax; under fine tuning the softmax of the head's logits over h, so FT-th's prior rescaling stays out of g),
y_hat = argmax p, h the scheme's features (F_g for the SVM schemes, the penultimate layer for fine tuning).
The batch is chosen by k-means++ seeding on g: first the sample of largest ||g||, then repeatedly a sample
drawn with probability proportional to its squared distance to the nearest chosen one (D² sampling).
Only unlabeled samples are candidates and centers (as the authors' code and LabelBench do). g is never
built: ||g_i - g_j||² = ||a_i||²||h_i||² + ||a_j||²||h_j||² - 2 (a_i·a_j)(h_i·h_j) with a = onehot - p and
a_i·a_j = [y_i = y_j] - p_i[y_j] - p_j[y_i] + p_i·p_j, so memory is the probabilities (float32, (n, K)) and
O(n) vectors. Ties for the first pick are broken by the generator; if every remaining distance is zero
(identical embeddings), the next pick is uniform among the rest.

D² sampling without reading the pool at every pick (exact in distribution): every candidate keeps an upper
bound u on its squared distance to the nearest center (its distance to the nearest of the centers it has been
compared with). A draw proposes a candidate with probability u / sum(u), compares it with the centers it has
not seen (u becomes exact) and accepts it with probability (exact / old u): rejection sampling, whose accepted
draws follow the D² distribution exactly. Draws are made DRAWS at a time from the bounds as they stand (their
envelope), brought up to date together (one GEMM against the chosen centers, kept contiguous), then accepted
or rejected in turn, each first compared with any center chosen since. Candidates that are never proposed are
never compared with the later centers. The picks follow the plain algorithm's distribution, not its stream of
random numbers."""

from __future__ import annotations

import numpy as np

from alimb.acquisition.base import Context, Selection, as_probabilities, is_simplex, row_blocks, top_k

WEIGHT_BLOCK = 1024  # candidates per block of the proposal weights (block sums make a draw O(n / block + block))


class _Embeddings:
    """The candidates' gradient embeddings in factorised form: p (float32), y_hat, ||a||², h, ||h||²."""

    def __init__(self, scores: np.ndarray, features: np.ndarray, candidates: np.ndarray, head: tuple | None = None):
        m = candidates.size
        self.p = np.empty((m, np.shape(scores)[1]), dtype=np.float32)
        for b in row_blocks(m, self.p.shape[1]):
            s = np.asarray(scores[candidates[b]])
            if head is not None and is_simplex(s):  # fine tuning: the model's own softmax over its head's logits
                s = np.asarray(features[candidates[b]], dtype=np.float64) @ head[0] + head[1]  # (not FT-th's rescaling)
            self.p[b] = as_probabilities(s)
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


class _Centers:
    """The chosen centers' factors, contiguous in the order chosen (no gather of all centers per draw)."""

    def __init__(self, emb: _Embeddings, capacity: int):
        self.emb = emb
        self.p = np.empty((capacity, emb.p.shape[1]), dtype=np.float32)
        self.h = np.empty((capacity, np.shape(emb.features)[1]), dtype=np.float32)
        self.y = np.empty(capacity, dtype=np.int64)
        self.g_sq = np.empty(capacity)
        self.size = 0

    def add(self, j: int) -> None:
        e, i = self.emb, self.size
        self.p[i], self.h[i], self.y[i], self.g_sq[i] = e.p[j], e.h(np.array([j]))[0], e.y[j], e.g_sq[j]
        self.size += 1

    def distances(self, idx: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Squared distances (len(idx), hi - lo) between candidates idx and centers lo..hi."""
        e = self.emb
        p, pc, y, yc = e.p[idx], self.p[lo:hi], e.y[idx], self.y[lo:hi]
        a_dot = (y[:, None] == yc[None, :]) - p[:, yc] - pc[:, y].T + p @ pc.T
        h_dot = e.h(idx) @ self.h[lo:hi].T
        return np.clip(e.g_sq[idx][:, None] + self.g_sq[lo:hi][None, :] - 2.0 * a_dot * h_dot, 0.0, None)


def badge(ctx: Context) -> Selection:
    """k-means++ seeding (D² sampling) on the gradient embeddings of the candidates."""
    ctx.need("badge", "scores", "features")
    scores, features, budget, rng = ctx.scores, ctx.features, ctx.budget, ctx.rng
    candidates = ctx.pool()
    emb = _Embeddings(scores, features, candidates, ctx.head)
    m = candidates.size
    centers = _Centers(emb, budget)
    chosen: list[int] = []
    bound = np.full(m, np.inf)  # u: squared distance to the nearest center seen
    seen = np.zeros(m, dtype=np.int64)  # centers (in `chosen` order) each bound accounts for
    done = np.iinfo(np.int64).max

    def choose(j: int) -> None:
        chosen.append(j)
        centers.add(j)
        bound[j], seen[j] = 0.0, done

    choose(int(top_k(emb.g_sq, np.arange(m), 1, rng)[0]))
    for b in row_blocks(m, emb.p.shape[1] + np.shape(features)[1]):
        idx = np.arange(b.start, b.stop)
        bound[b] = np.where(seen[b] == done, 0.0, centers.distances(idx, 0, 1)[:, 0])
        seen[b] = np.where(seen[b] == done, done, 1)
    weights = _Weights(bound)
    while len(chosen) < budget:
        if weights.total() <= 0:  # every remaining distance is zero
            choose(int(rng.choice(np.setdiff1d(np.arange(m), chosen))))
            weights.set(chosen[-1], 0.0)
            continue
        proposals = weights.draw(DRAWS, rng)  # from the bounds as they are now: the envelope of these draws
        envelope = bound[proposals].copy()
        _bring_up_to_date(np.unique(proposals), bound, seen, centers, weights)
        for j, u in zip(proposals.tolist(), envelope.tolist()):
            if len(chosen) == budget:
                break
            if seen[j] == done or u <= 0:
                continue
            _bring_up_to_date(np.array([j]), bound, seen, centers, weights)  # centers chosen since the batch
            if rng.random() * u < bound[j]:  # accept with probability exact / envelope
                choose(j)
                weights.set(j, 0.0)
    return Selection(candidates[np.array(chosen, dtype=np.int64)])


DRAWS = 64  # proposals drawn together (one GEMM brings them up to date)


def _bring_up_to_date(idx: np.ndarray, bound: np.ndarray, seen: np.ndarray, centers: _Centers, weights) -> None:
    """Compare candidates idx with the centers they have not seen; their bounds become exact."""
    idx = idx[seen[idx] < centers.size]
    if idx.size == 0:
        return
    lo = int(seen[idx].min())
    nearest = centers.distances(idx, lo, centers.size)  # (len(idx), size - lo); columns before seen[i] are harmless
    bound[idx] = np.minimum(bound[idx], nearest.min(axis=1))
    seen[idx] = centers.size
    for i in idx.tolist():
        weights.set(i, bound[i])


class _Weights:
    """Sampling in proportion to nonnegative weights that change one at a time: block sums over the weights."""

    def __init__(self, w: np.ndarray):
        self.w = w  # shared with the caller, who changes entries only through set()
        self.sums = np.add.reduceat(w, np.arange(0, w.size, WEIGHT_BLOCK))

    def total(self) -> float:
        return float(self.sums.sum())

    def set(self, i: int, value: float) -> None:
        b = i // WEIGHT_BLOCK
        self.w[i] = value
        self.sums[b] = self.w[b * WEIGHT_BLOCK:(b + 1) * WEIGHT_BLOCK].sum()  # exact: no drift

    def draw(self, k: int, rng: np.random.Generator) -> np.ndarray:
        cum = np.cumsum(self.sums)
        r = rng.random(k) * cum[-1]
        blocks = np.minimum(np.searchsorted(cum, r, side="right"), len(cum) - 1)
        out = np.empty(k, dtype=np.int64)
        for t, (b, rest) in enumerate(zip(blocks.tolist(), (r - (cum[blocks] - self.sums[blocks])).tolist())):
            within = np.cumsum(self.w[b * WEIGHT_BLOCK:(b + 1) * WEIGHT_BLOCK])
            j = min(int(np.searchsorted(within, rest, side="right")), len(within) - 1)
            while self.w[b * WEIGHT_BLOCK + j] <= 0 and j > 0:  # rounding landed on a zero weight
                j -= 1
            out[t] = b * WEIGHT_BLOCK + j
        return out
