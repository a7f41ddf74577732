"""SIMILAR with FLQMI (Kothawade et al., NeurIPS 2021): facility-location mutual information with the labeled
samples of the minority classes as the query set.

Our reading. Q = the labeled samples of the classes whose labeled count is below the mean (the paper's
minority rule, Eq. 3), A the batch, s(x, y) = (1 + cos(x, y)) / 2 in F_g (a similarity in [0, 1]).

    I(A; Q) = sum_{i in Q} max_{j in A} s_ij  +  eta * sum_{j in A} max_{i in Q} s_ij

is maximised greedily: each step adds
the unlabeled sample of largest gain sum_i max(0, s_ij - cover_i) + eta * max_i s_ij, cover_i being
max_{j in A} s_ij so far. eta = 1 (DISTIL's default). Ties: a random order of the candidates.
With no minority class (the labeled set is balanced) the batch is random.

Scale: the gains are kept exact incrementally: a pick raises the cover of some queries only, and only
those queries' similarities to the candidates lower the gains. The Q x candidates similarities are held
up to HOLD_ELEMENTS (256 MiB of float32; the paper's size needs 84 MB) and recomputed in blocks beyond;
no |U| x |U| matrix is ever formed.
"""

from __future__ import annotations

import numpy as np
import torch

from alimb.acquisition.base import Context, Selection, unit_rows
from alimb.acquisition.minority import minority_quotas

BLOCK_ELEMENTS = 1 << 22
HOLD_ELEMENTS = 1 << 26  # Q x candidates similarities held up to 256 MiB of float32, recomputed beyond


def flqmi(ctx: Context, *, eta: float = 1.0) -> Selection:
    """Greedy FLQMI with the minority classes' labeled samples as the query set (see the module docstring)."""
    ctx.need("flqmi", "fg")
    fg, labels, labeled_mask, n_classes, budget, rng = ctx.fg, ctx.labels, ctx.labeled_mask, ctx.n_classes, ctx.budget, ctx.rng
    candidates = ctx.pool()
    candidates = candidates[rng.permutation(candidates.size)]  # ties: the first in a random order
    minority = np.flatnonzero(minority_quotas(np.bincount(labels[labeled_mask], minlength=n_classes)) > 0)
    query = np.flatnonzero(labeled_mask & np.isin(labels, minority))
    if query.size == 0:
        return Selection(candidates[:budget], info={"query_size": 0, "fallback": "random: no query set"})
    q = torch.as_tensor(unit_rows(np.asarray(fg)[query]))  # (|Q|, d)
    x = torch.as_tensor(unit_rows(np.asarray(fg)[candidates]))  # (m, d)
    cover = torch.zeros(len(q))
    gain = torch.empty(candidates.size, dtype=torch.float64)  # exact gains, kept up to date
    keep = len(q) * candidates.size <= HOLD_ELEMENTS  # hold the Q x candidates similarities when they fit
    sim = torch.empty(len(q), candidates.size) if keep else None
    step = max(1, BLOCK_ELEMENTS // len(q))
    for start in range(0, candidates.size, step):
        s = 0.5 * (1.0 + x[start:start + step] @ q.T)  # (b, |Q|)
        gain[start:start + step] = (s.sum(dim=1) + eta * s.max(dim=1).values).double()
        if keep:
            sim[:, start:start + step] = s.T
    picks = []
    while len(picks) < budget:
        j = int(torch.argmax(gain))  # ties: the first in the random order
        picks.append(j)
        gain[j] = -float("inf")
        s_new = sim[:, j] if keep else 0.5 * (1.0 + q @ x[j])  # (|Q|,)
        changed = torch.nonzero(s_new > cover).flatten()  # the queries whose cover rises
        if changed.numel() == 0:
            continue
        old, new = cover[changed], s_new[changed]
        if keep:  # gains lose what the new cover now provides
            s = sim[changed]  # (|Q'|, m)
            lost = (s - old[:, None]).clamp_min_(0.0).sum(dim=0) - (s - new[:, None]).clamp_min_(0.0).sum(dim=0)
            gain -= lost.double()
        else:
            qc = q[changed]
            step = max(1, BLOCK_ELEMENTS // changed.numel())
            for start in range(0, candidates.size, step):
                s = 0.5 * (1.0 + x[start:start + step] @ qc.T)  # (b, |Q'|)
                lost = (s - old).clamp_min_(0.0).sum(dim=1) - (s - new).clamp_min_(0.0).sum(dim=1)
                gain[start:start + step] -= lost.double()
        cover[changed] = new
    return Selection(candidates[np.array(picks, dtype=np.int64)], info={"query_size": int(query.size)})
