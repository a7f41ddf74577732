"""DropQuery (Gupta et al., "Revisiting Active Learning in the Era of Vision Foundation Models", TMLR 2024):
samples whose prediction changes under dropout on the features, spread out by k-means.

The authors' rule, read from sanketx/AL-foundation-models at aa015d2 (ALFM/src/query_strategies/dropout.py; the
defaults from ALFM/conf/query_strategy/dropout.yaml, num_iter: 3, and ALFM/conf/al_train.yaml, dropout_p: 0.75):
1. y* = the model's prediction for each unlabeled sample; then `passes` (3) times the prediction with dropout
   (p = 0.75, kept values scaled by 1 / (1 - p)) on the features the linear head reads (base_classifier.py
   `predict_step`: dropout, then the probe's BatchNorm, then its linear layer), and per sample the number of passes
   whose prediction differs from y*.
2. Candidates: the samples that differ in more than passes // 2 passes (the threshold), i.e. in more than half.
   While fewer than 25 x budget samples pass it and it is above 0, the threshold is lowered by one (at 0: every
   sample that changed at least once).
3. The batch: alimb.acquisition.centroids (their `cluster_features` over the candidates' unit rows, one pick per
   k-means cluster with k = budget; fewer candidates than the budget: all of them and a uniform random fill).

In alimb. The head is the scheme's linear last layer over `ctx.features`: under fine tuning the classification head
over the penultimate features; under the SVM schemes the fitted hyperplanes over F_g, to whose input the dropout is
applied exactly as to a linear probe's. The authors' probe is BatchNorm (running statistics: an affine map at
inference) then a linear layer, so dropout before it is dropout before one affine head, as here; their k-means runs
on the BatchNorm output, ours on the head's input (the space our head reads; alimb's heads have no BatchNorm).
y* and the dropout predictions are both the head's argmax, so FT-th's prior rescaling of the scores takes no part
(as in BADGE and BASE). The dropout masks come from the run's generator, pass by pass, row by row
(`random(float32) >= p` keeps a value), not from torch's global state. Samples an enclosing AF excludes
(`ctx.available()`) are neither candidates nor fill. The authors' DropQuery runs start from a centroid-based initial
pool (dropout.yaml overrides init_strategy to centroid_init: `cluster_features` of the whole pool); alimb's iteration
0 is random for every AF (the paper's protocol). Everything else is theirs; where alimb's k-means differs from
faiss's, alimb.acquisition.centroids says so.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch

from alimb.acquisition.base import Context, Selection, row_blocks
from alimb.acquisition.centroids import candidates_or_fill, unit_rows_tensor
from alimb.devices import resolve_device
from alimb.options import Count, Device, Doc, Fraction, Positive


def head_logits(features, rows: np.ndarray, head: tuple, device: torch.device, keep=None, scale: float = 1.0):
    """Logits (len(rows), K) of the head over features[rows] (float32), each value multiplied by keep * scale."""
    z = torch.as_tensor(np.asarray(features[rows], dtype=np.float32)).to(device)
    if keep is not None:
        z = z * torch.as_tensor(keep).to(device) * scale
    return torch.addmm(head[1][None, :], z, head[0])


def disagreements(features, pool: np.ndarray, head: tuple, passes: int, p: float, rng: np.random.Generator,
                  device: torch.device) -> np.ndarray:
    """Per sample of `pool`, in how many of `passes` dropout passes the head's prediction differs from its own
    prediction without dropout: (len(pool),) int."""
    weights = torch.as_tensor(np.asarray(head[0], dtype=np.float32)).to(device)
    bias = torch.as_tensor(np.asarray(head[1], dtype=np.float32)).to(device)
    w = (weights, bias)
    d, k = np.shape(features)[1], weights.shape[1]
    blocks = list(row_blocks(pool.size, max(d, k)))
    y_star = np.empty(pool.size, dtype=np.int64)
    for b in blocks:
        y_star[b] = head_logits(features, pool[b], w, device).argmax(dim=1).cpu().numpy()
    changed = np.zeros(pool.size, dtype=np.int64)
    for _ in range(passes):  # pass by pass, row by row: the order the generator is read in
        for b in blocks:
            keep = rng.random((b.stop - b.start, d), dtype=np.float32) >= p
            pred = head_logits(features, pool[b], w, device, keep, 1.0 / (1.0 - p)).argmax(dim=1).cpu().numpy()
            changed[b] += pred != y_star[b]
    return changed


def dropquery(
    ctx: Context, *,
    passes: Annotated[Positive, Doc("dropout passes (the authors' num_iter: 3)")] = 3,
    p: Annotated[Fraction, Doc("dropout probability on the features the head reads (the authors' dropout_p)")] = 0.75,
    widen_below: Annotated[Count, Doc("lower the disagreement threshold while fewer than this many times "
                                                  "the budget pass it (the authors': 25; 0: never)")] = 25,
    kmeans_iterations: Annotated[Positive, Doc("Lloyd iterations at most (faiss's niter in the authors' code)")] = 100,
    max_points_per_centroid: Annotated[Positive, Doc("k-means trains on at most this many candidates per centroid "
                                                     "(faiss's setting in the authors' code)")] = 512,
    device: Device = "auto",
) -> Selection:
    """Candidates whose prediction changes in more than half of the dropout passes; one per k-means cluster."""
    ctx.need("dropquery", "features", "head")
    pool = ctx.pool()
    device = resolve_device(device)
    changed = disagreements(ctx.features, pool, ctx.head, passes, p, ctx.rng, device)
    threshold = passes // 2
    while int((changed > threshold).sum()) < widen_below * ctx.budget and threshold > 0:
        threshold -= 1
    candidate = changed > threshold
    picks = candidates_or_fill(pool, candidate, ctx.budget, ctx.rng,
                               lambda pos: unit_rows_tensor(ctx.features, pool[pos], device),
                               kmeans_iterations, max_points_per_centroid)
    n_candidates = int(candidate.sum())
    return Selection(picks, info={"threshold": threshold, "n_candidates": n_candidates,
                                  "n_random": max(0, ctx.budget - n_candidates)})
