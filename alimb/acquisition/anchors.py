"""AnchorAL (Lesci & Vlachos, NAACL 2024): per class a few labeled anchors; the unlabeled nearest neighbours of the
anchors form a small subpool; any AF (`inner`) selects inside it.

Our reading of the authors' code (pietrolesci/anchoral at 7fecad97, `src/anchoral.py`; its energizer submodule
at the `anchoral-paper` branch, 41cb25ff, `energizer/active_learning/strategies/two_stage.py`; settings from
`conf/strategy/default_anchoral.yaml`, `default_search.yaml`, `default_subset.yaml`):

1. No subpool when the pool holds at most `subpool_size` samples: the inner AF runs on the whole pool
   (`two_stage.py` lines 52-56).
2. Anchors (`anchoral.py` lines 82-110): no labeled sample: none; fewer labeled samples than `num_anchors` in all:
   every labeled sample. Otherwise, per class with a labeled sample, in ascending class order: all its labeled
   samples when it has at most `num_anchors`, else `num_anchors` of them chosen by k-means++ seeding
   (scikit-learn's `kmeans_plusplus`, their `kmeans_pp_sampling`, the setting of their main experiments) over the
   class's embeddings, or at random (`anchors: random`, their `RandomAnchorStrategy`). A class without a labeled
   sample has no anchor. Their minority/majority split of the anchor rule is unused in their runs
   (`minority_classes_ids: null`), so there is one rule here.
3. Search (`two_stage.py` lines 102-121): the `num_neighbours` unlabeled samples most cosine-similar to each anchor
   (their index: hnswlib, cosine space, over a fixed pretrained embedding: here F_g).
4. Subpool (`anchoral.py` lines 117-135): each retrieved sample's score is its mean similarity over the anchors
   that retrieved it (1 - mean cosine distance); the `subpool_size` of largest score (all when fewer).
5. No anchor at all: the subpool is `budget` samples drawn at random (`two_stage.py` lines 90-92).

Generator calls, in this order: for `kmeans_pp`, once the labeled set holds at least `num_anchors` samples, one
`rng.integers(2**32)` seeding a `numpy.random.RandomState` that the classes' `kmeans_plusplus` calls share in class
order (as their one RandomState), on the class's F_g rows scaled to unit norm (float32, as their cosine index
stores them); for `random`,
`rng.choice(ids, num_anchors, replace=False)` per class that has at least `num_anchors` labeled samples (equal
included, as theirs); with no anchor, `rng.choice(pool, budget, replace=False)`. The inner AF then continues with
the same generator.

Where we differ, and why:

- **Exact search**: their neighbours come from an approximate HNSW index (ef 200, M 64); ours are exact, by
  blocks of the pool (one GEMM of the anchors against each block and the rows' norms, `kcenter.squared_norms`,
  a running top-k per anchor: memory O(anchors x (block + k)), never pool x pool), on the CPU or the GPU. Where
  HNSW misses a true neighbour, the subpools differ.
- **Subpool smaller than the budget**: their inner strategies then select nothing (`uncertainty.py` line 37
  refuses a pool of at most `query_size`; the diversity ones likewise), and the round labels nothing. An AF here
  must fill its budget: the search is repeated with twice the neighbours per anchor until the retrieved samples
  reach the budget, and the subpool holds at least `budget` samples. No option keeps their behaviour (no round
  may label fewer than its budget).
- **Ties** in the score are ranked by ascending pool index (pandas' unstable sort leaves them unspecified).
- Inside a composite, the search runs over the context's pool (its candidates, less what an enclosing AF picked);
  anchors are the labeled samples, whatever the narrowing.

The inner AF gets the context whole, narrowed to the subpool (`candidates`), oracle included: it selects the
batch itself. An AF that selects over the whole pool (`@whole_pool`: galaxy, direct) cannot choose inside a
subpool and is refused before any work.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import numpy as np
import torch

from alimb.acquisition.base import AF, Context, Selection, unit_rows
from alimb.acquisition.kcenter import CHUNK_ELEMENTS, squared_norms
from alimb.devices import resolve_device
from alimb.errors import UserError
from alimb.options import Device, Doc, Part, Positive


def anchoral(
    ctx: Context, *,
    inner: Annotated[AF, Part("acquisition", narrows=True), Doc(
        "selects the batch inside the anchors' subpool (an AF of conf/acquisition)")],
    num_anchors: Annotated[Positive, Doc("anchors per class (the authors' main runs: 10)")] = 10,
    num_neighbours: Annotated[Positive, Doc("unlabeled neighbours retrieved per anchor (the authors': 50)")] = 50,
    subpool_size: Annotated[Positive, Doc("at most this many retrieved samples form the subpool, by mean "
                                          "similarity; a pool this small is not narrowed (the authors': 10 000)")]
    = 10_000,
    anchors: Annotated[Literal["kmeans_pp", "random", "all"], Doc(
        "how a class with more labeled samples than num_anchors chooses them: k-means++ seeding (the authors' main "
        "runs), at random, or all of them")] = "kmeans_pp",
    device: Device = "auto",
) -> Selection:
    """The inner AF over the subpool of the anchors' nearest unlabeled neighbours (see the module docstring)."""
    if getattr(getattr(inner, "func", inner), "whole_pool", False):
        raise UserError(f"anchoral's inner AF {getattr(getattr(inner, 'func', inner), '__name__', inner)} selects "
                        "over the whole pool and cannot choose inside the anchors' subpool; choose another AF for it")
    ctx.need("anchoral", "fg")
    pool = ctx.pool()
    size = max(subpool_size, ctx.budget)
    if pool.size <= size:
        sel = inner(ctx)
        return Selection(sel.indices, sel.n_quota, sel.quota_requested, {**sel.info, "anchoral_subpool": 0})
    t0 = time.perf_counter()
    sub, info = subpool(ctx, pool, num_anchors, num_neighbours, size, anchors, device)
    info["subpool_seconds"] = time.perf_counter() - t0
    sel = inner(ctx.replace(candidates=sub))
    return Selection(sel.indices, sel.n_quota, sel.quota_requested, {**sel.info, **info})


def subpool(ctx: Context, pool: np.ndarray, num_anchors: int, num_neighbours: int, size: int,
            anchors: str = "kmeans_pp", device: str = "auto") -> tuple[np.ndarray, dict]:
    """AnchorAL's subpool of `pool` (absolute indices, best first; at least ctx.budget of them): the retrieved samples
    of largest mean similarity to the anchors that retrieved them. Also what it took, for the records."""
    fg = ctx.fg
    chosen = select_anchors(fg, ctx.labels, ctx.labeled_mask, num_anchors, anchors, ctx.rng)
    if chosen.size == 0:  # cold start: a random subpool of the budget's size, as the authors
        return ctx.rng.choice(pool, size=ctx.budget, replace=False), {"anchoral_anchors": 0,
                                                                       "anchoral_subpool": ctx.budget}
    k = num_neighbours
    while True:
        ids, sims = nearest_neighbours(fg, chosen, pool, k, device)
        retrieved, inverse = np.unique(ids, return_inverse=True)
        if retrieved.size >= ctx.budget or k >= pool.size:
            break
        k *= 2  # too few for the budget: search deeper (see the module docstring)
    score = np.bincount(inverse.ravel(), weights=sims.ravel()) / np.bincount(inverse.ravel())  # mean similarity
    order = np.lexsort((retrieved, -score))[:size]  # best first; ties by ascending index
    return retrieved[order], {"anchoral_anchors": int(chosen.size), "anchoral_neighbours": int(min(k, pool.size)),
                              "anchoral_subpool": int(order.size)}


def select_anchors(fg: np.ndarray, labels: np.ndarray, labeled_mask: np.ndarray, num_anchors: int, rule: str,
                   rng: np.random.Generator) -> np.ndarray:
    """The anchors (absolute indices of labeled samples), class by class in ascending order (see the module
    docstring)."""
    labeled = np.flatnonzero(labeled_mask)
    if labeled.size < num_anchors:  # none, or fewer than num_anchors in all: every labeled sample
        return labeled
    known = np.asarray(labels)[labeled]
    state = np.random.RandomState(int(rng.integers(2**32))) if rule == "kmeans_pp" else None
    chosen = []
    for c in np.unique(known):
        ids = labeled[known == c]
        if rule == "all" or ids.size < num_anchors:
            chosen.append(ids)
        elif rule == "random":
            chosen.append(rng.choice(ids, size=num_anchors, replace=False))
        elif ids.size <= num_anchors:
            chosen.append(ids)
        else:
            from sklearn.cluster import kmeans_plusplus

            _, at = kmeans_plusplus(unit_rows(fg[ids]), num_anchors, random_state=state)
            chosen.append(ids[np.unique(at)])
    return np.concatenate(chosen)


def nearest_neighbours(fg: np.ndarray, queries: np.ndarray, pool: np.ndarray, k: int,
                       device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """For each query (absolute indices), the k samples of `pool` of largest cosine similarity in `fg`, exactly:
    (n_queries, k) absolute indices and similarities (unordered). One GEMM per block of the pool against the unit
    queries, the block's rows scaled by their norms (`kcenter.squared_norms`); a running top-k per query, merged
    only for the queries that a block's similarities beat (after the first blocks, few: a pass over the block
    instead of a top-k)."""
    k = min(k, pool.size)
    device = resolve_device(device)
    feats = torch.as_tensor(fg)
    q = feats[torch.as_tensor(queries)].to(device, torch.float32)
    q = q / squared_norms(q).sqrt_().clamp_min_(1e-12)[:, None]  # (A, d) unit rows
    best_sim = torch.full((len(q), k), -float("inf"), device=device)  # (A, k) the k best so far, unordered
    best_idx = torch.full((len(q), k), -1, dtype=torch.int64, device=device)
    worst = torch.full((len(q),), -float("inf"), device=device)  # (A,) the k-th best so far
    pool_t = torch.as_tensor(pool, dtype=torch.int64)
    step = max(1, CHUNK_ELEMENTS // max(len(q), q.shape[1], 1))  # rows of the pool per block: (A, m), (m, d) bounded
    for start in range(0, pool.size, step):
        rows = pool_t[start:start + step]
        x = feats[rows].to(device, torch.float32)  # (m, d)
        x /= squared_norms(x).sqrt_().clamp_min_(1e-12)[:, None]
        sim = q @ x.T  # (A, m) cosine similarities
        hit = torch.nonzero(sim.amax(dim=1) > worst).squeeze(1)  # queries this block improves
        if hit.numel() == 0:
            continue
        top = torch.topk(sim[hit], min(k, len(rows)), dim=1)
        sims = torch.cat([best_sim[hit], top.values], dim=1)
        idx = torch.cat([best_idx[hit], rows.to(device)[top.indices]], dim=1)
        keep = torch.topk(sims, k, dim=1)
        best_sim[hit], best_idx[hit] = keep.values, idx.gather(1, keep.indices)
        worst[hit] = keep.values[:, -1]
    return best_idx.cpu().numpy(), best_sim.cpu().numpy().astype(np.float64)
