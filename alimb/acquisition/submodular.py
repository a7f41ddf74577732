"""SIMILAR with FLQMI (Kothawade et al., NeurIPS 2021): facility-location mutual information with the labeled
samples of the minority classes as the query set.

Our reading. Q = the labeled samples of the classes whose labeled count is below the mean (the paper's
minority rule, Eq. 3), A the batch, s(x, y) = (1 + cos(x, y)) / 2 (a similarity in [0, 1]) in F_g
(`embedding: fg`, the default) or in the current model's gradient-embedding space (`embedding: gradient`:
BADGE's g = (onehot(y_hat) - p) ⊗ h, DISTIL's default for SIMILAR).

Where this differs from the paper and DISTIL, by choice: the embedding (F_g by default, whatever the scheme,
so the selection does not move with a half-trained model; `gradient` gives DISTIL's); the query set (the
paper's rare-class benchmark gives held-out examples of the rare classes, known in advance; an AL run has only
its labeled samples, so Q is those of the classes currently below the mean); and with no such class (a
balanced labeled set) the batch is random, recorded as `acquisition_info.fallback`.

    I(A; Q) = sum_{i in Q} max_{j in A} s_ij  +  eta * sum_{j in A} max_{i in Q} s_ij

is maximised greedily: each step adds
the unlabeled sample of largest gain sum_i max(0, s_ij - cover_i) + eta * max_i s_ij, cover_i being
max_{j in A} s_ij so far. eta = 1 (DISTIL's default). Ties: a random order of the candidates.

Scale: the gains are kept exact incrementally: a pick raises the cover of some queries only, and only
those queries' similarities to the candidates lower the gains. The Q x candidates similarities are held
up to HOLD_ELEMENTS (256 MiB of float32; the paper's size needs 84 MB) and recomputed in blocks beyond;
no |U| x |U| matrix is ever formed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from alimb.options import Doc, NonNegativeNumber

import numpy as np
import torch

from alimb.acquisition.base import Context, Selection, unit_rows
from alimb.acquisition.minority import minority_quotas

BLOCK_ELEMENTS = 1 << 22
HOLD_ELEMENTS = 1 << 26  # Q x candidates similarities held up to 256 MiB of float32, recomputed beyond


class _Cosines:
    """s(x, y) = (1 + cos(x, y)) / 2 between candidates and queries, in F_g or in the gradient-embedding space
    g = (onehot(y_hat) - p) ⊗ h (BADGE's, DISTIL's default for SIMILAR), never built: g_i . g_j = (a_i . a_j)
    (h_i . h_j) with a = onehot(y_hat) - p."""

    def __init__(self, ctx: Context, embedding: str, rows: np.ndarray):
        if embedding == "fg":
            self.h, self.a = torch.as_tensor(unit_rows(np.asarray(ctx.fg)[rows])), None
            return
        from alimb.acquisition.gradients import _Embeddings

        emb = _Embeddings(ctx.scores, ctx.features, rows, ctx.head)
        self.h = torch.as_tensor(unit_rows(np.asarray(ctx.features)[rows]))
        a = -emb.p.astype(np.float64)
        a[np.arange(len(rows)), emb.y] += 1.0
        self.a = torch.as_tensor(unit_rows(a).astype(np.float32))  # (n, K): unit a and unit h give unit g

    def sim(self, other: "_Cosines", rows, other_rows) -> torch.Tensor:
        """(len(rows), len(other_rows)) similarities."""
        dot = self.h[rows] @ other.h[other_rows].T
        if self.a is not None:
            dot = dot * (self.a[rows] @ other.a[other_rows].T)
        return 0.5 * (1.0 + dot)


def flqmi(
    ctx: Context, *,
    eta: Annotated[NonNegativeNumber, Doc("weight of the query-relevance term (DISTIL's default 1)")] = 1.0,
    embedding: Annotated[Literal["fg", "gradient"], Doc("fg: cosine in F_g; gradient: in the current model's "
                                                        "gradient-embedding space (DISTIL's default)")] = "fg",
) -> Selection:
    """Greedy FLQMI with the minority classes' labeled samples as the query set (see the module docstring)."""
    ctx.need("flqmi", *(("fg",) if embedding == "fg" else ("scores", "features")))
    labels, labeled_mask, n_classes, budget, rng = ctx.labels, ctx.labeled_mask, ctx.n_classes, ctx.budget, ctx.rng
    candidates = ctx.pool()
    candidates = candidates[rng.permutation(candidates.size)]  # ties: the first in a random order
    minority = np.flatnonzero(minority_quotas(np.bincount(labels[labeled_mask], minlength=n_classes)) > 0)
    query = np.flatnonzero(labeled_mask & np.isin(labels, minority))
    if query.size == 0:
        return Selection(candidates[:budget], info={"query_size": 0, "fallback": "random: no query set"})
    qs, xs = _Cosines(ctx, embedding, query), _Cosines(ctx, embedding, candidates)
    every_query = slice(None)
    cover = torch.zeros(len(query))
    gain = torch.empty(candidates.size, dtype=torch.float64)  # exact gains, kept up to date
    keep = len(query) * candidates.size <= HOLD_ELEMENTS  # hold the Q x candidates similarities when they fit
    sim = torch.empty(len(query), candidates.size) if keep else None
    step = max(1, BLOCK_ELEMENTS // len(query))
    for start in range(0, candidates.size, step):
        s = xs.sim(qs, slice(start, start + step), every_query)  # (b, |Q|)
        gain[start:start + step] = (s.sum(dim=1) + eta * s.max(dim=1).values).double()
        if keep:
            sim[:, start:start + step] = s.T
    picks = []
    while len(picks) < budget:
        j = int(torch.argmax(gain))  # ties: the first in the random order
        picks.append(j)
        gain[j] = -float("inf")
        s_new = sim[:, j] if keep else qs.sim(xs, every_query, [j])[:, 0]  # (|Q|,)
        changed = torch.nonzero(s_new > cover).flatten()  # the queries whose cover rises
        if changed.numel() == 0:
            continue
        old, new = cover[changed], s_new[changed]
        if keep:  # gains lose what the new cover now provides
            s = sim[changed]  # (|Q'|, m)
            lost = (s - old[:, None]).clamp_min_(0.0).sum(dim=0) - (s - new[:, None]).clamp_min_(0.0).sum(dim=0)
            gain -= lost.double()
        else:
            step = max(1, BLOCK_ELEMENTS // changed.numel())
            for start in range(0, candidates.size, step):
                s = xs.sim(qs, slice(start, start + step), changed)  # (b, |Q'|)
                lost = (s - old).clamp_min_(0.0).sum(dim=1) - (s - new).clamp_min_(0.0).sum(dim=1)
                gain[start:start + step] -= lost.double()
        cover[changed] = new
    return Selection(candidates[np.array(picks, dtype=np.int64)], info={"query_size": int(query.size)})
