"""AnchorAL: its subpool and picks against a transcription of the authors' code, the exact search against brute
force, its edge cases, and every AF inside it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import kmeans_plusplus

import alimb.acquisition.anchors as anchors_module
from alimb.acquisition import Context, Oracle, anchoral, cds_bal, coreset, entropy, margin
from alimb.acquisition.anchors import nearest_neighbours, subpool
from alimb.config import build, expand_parts
from alimb.errors import UserError
from alimb.run import CONFIG_DIR

AFS = sorted(p.stem for p in (Path(CONFIG_DIR) / "acquisition").glob("*.yaml"))


# ---- a transcription of pietrolesci/anchoral (7fecad97) src/anchoral.py (AnchorAL, its anchor strategies) and its
# energizer submodule (anchoral-paper, 41cb25ff) strategies/two_stage.py (run_query, select_pool_subset,
# search_pool) and strategies/uncertainty.py (the entropy base), kept to the authors' structure. Their RandomStates
# are replaced by one Generator called in the same order (k-means++ gets one RandomState seeded from it), their
# HNSW index by exact search over the unit rows it stores (cosine space), the datastore by arrays ----
class Datastore:
    def __init__(self, embeddings, labels, labeled):
        self.emb = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)  # hnswlib's cosine space
        self.emb = self.emb.astype(np.float32)
        self.labels, self.labeled = labels, labeled

    def pool_size(self):
        return int((~self.labeled).sum())

    def get_train_ids(self):
        return np.flatnonzero(self.labeled).tolist()

    def get_pool_ids(self):
        return np.flatnonzero(~self.labeled).tolist()

    def get_train_embeddings(self, ids):
        return self.emb[ids]

    def search(self, query, query_size, query_in_set=False):
        pool = np.array(self.get_pool_ids())  # labeled ids are masked in their index
        dists = 1 - query @ self.emb[pool].T  # (n_queries, n_pool) cosine distances
        order = np.argsort(dists, axis=1, kind="stable")[:, :query_size]
        return pool[order], np.take_along_axis(dists, order, axis=1)

    def sample_from_pool(self, size, random_state):
        return random_state.choice(self.get_pool_ids(), size=size, replace=False).tolist()


def get_anchors(rule, datastore, num_anchors, class_ids, rng, state):
    if rule == "random":  # RandomAnchorStrategy.get_anchors
        return rng.choice(class_ids, size=min(num_anchors, len(class_ids)), replace=False).tolist()
    if len(class_ids) <= num_anchors:  # ClusteringAnchorStrategy.get_anchors, kmeans_pp_sampling
        return class_ids
    embs, ids = datastore.get_train_embeddings(class_ids), np.array(class_ids)
    _, indices = kmeans_plusplus(embs, num_anchors, random_state=state)
    return ids[list(set(indices.tolist()))].tolist()


def select_search_query(datastore, num_anchors, rule, rng):
    train_ids = datastore.get_train_ids()
    if len(train_ids) == 0 or (num_anchors > 0 and len(train_ids) < num_anchors):
        return train_ids
    state = np.random.RandomState(int(rng.integers(2**32))) if rule == "kmeans_pp" else None
    anchor_ids = []
    classes = sorted(np.unique(datastore.labels[train_ids]).tolist())
    for c in classes:
        ids = [i for i in train_ids if datastore.labels[i] == c]
        if len(ids) == 0:
            continue
        elif rule == "all" or len(ids) < num_anchors:
            _ids = ids
        else:
            _ids = get_anchors(rule, datastore, num_anchors, ids, rng, state)
        assert len(_ids) == len(set(_ids))
        anchor_ids += _ids
    return anchor_ids


def select_pool_subset(datastore, query_size, num_anchors, num_neighbours, subpool_size, rule, rng):
    search_query_ids = select_search_query(datastore, num_anchors, rule, rng)
    if len(search_query_ids) == 0:
        return datastore.sample_from_pool(size=query_size, random_state=rng)
    search_query_embeddings = datastore.get_train_embeddings(search_query_ids)
    ids, dists = datastore.search(search_query_embeddings, num_neighbours, query_in_set=False)
    candidate_df = pd.DataFrame({"uid": ids.flatten(), "dists": dists.flatten(),
                                 "search_query_uid": np.repeat(search_query_ids, ids.shape[1], axis=0).flatten()})
    df = (candidate_df.groupby("uid").agg(dists=("dists", "mean")).reset_index()
          .assign(scores=lambda _df: 1 - _df["dists"]))
    return df.sort_values("scores", ascending=False).head(min(subpool_size, len(df)))["uid"].tolist()


def entropy_run_query(probs, pool_ids, query_size):
    """UncertaintyBasedStrategy.run_query over the pool loader of `pool_ids` (entropy scores)."""
    if len(pool_ids) <= query_size:
        return []
    p = probs[pool_ids]
    scores = -(p * np.log(p)).sum(axis=1)
    return np.array(pool_ids)[scores.argsort()[-query_size:]].tolist()


def authors_anchoral(datastore, probs, query_size, num_anchors, num_neighbours, subpool_size, rule, rng):
    """AnchorAL(base_strategy=Entropy).run_query: the subpool (None: the whole pool) and the picks."""
    subpool_ids = None
    if datastore.pool_size() > subpool_size:
        subpool_ids = select_pool_subset(datastore, query_size, num_anchors, num_neighbours, subpool_size, rule, rng)
    pool_ids = sorted(subpool_ids) if subpool_ids is not None else datastore.get_pool_ids()
    return subpool_ids, entropy_run_query(probs, pool_ids, query_size)


# ---- inputs ----
def problem(seed, n=1500, n_classes=5, d=8, per_class=(12, 12, 10, 3, 0), d_noise=1.0):
    """Gaussian classes in F_g; `per_class` labeled samples of each class (0: a class with no label)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    fg = rng.normal(size=(n, d)) * d_noise + 2.0 * rng.normal(size=(n_classes, d))[labels]
    logits = rng.normal(size=(n, n_classes)) + np.eye(n_classes)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labeled = np.zeros(n, dtype=bool)
    for c, m in enumerate(per_class):
        labeled[rng.choice(np.flatnonzero(labels == c), m, replace=False)] = True
    return fg, probs, labels, labeled


def context(fg, probs, labels, labeled, budget, seed, **changes):
    return Context(fg=fg, features=fg, scores=probs, labels=np.where(labeled, labels, -1), labeled_mask=labeled,
                   n_classes=probs.shape[1], budget=budget, rng=np.random.default_rng(seed), oracle=Oracle(labels),
                   **changes)


CASES = {  # (per-class labeled, budget, num_anchors, num_neighbours, subpool_size, rule)
    "kmeans_pp": ((12, 12, 10, 3, 0), 20, 10, 50, 400, "kmeans_pp"),  # 12 > 10: k-means++; 10, 3: all; 0: none
    "random": ((10, 12, 12, 3, 0), 20, 10, 50, 400, "random"),  # class 0: 10 = num_anchors, their choice still draws
    "all": ((12, 12, 10, 3, 1), 20, 10, 30, 200, "all"),
    "subpool_size_binds": ((12, 12, 10, 3, 0), 25, 4, 80, 150, "kmeans_pp"),
    "few_labeled": ((2, 2, 1, 0, 0), 15, 10, 50, 400, "kmeans_pp"),  # 5 labeled < 10 anchors: every labeled one
    "cold_start": ((0, 0, 0, 0, 0), 15, 10, 50, 400, "kmeans_pp"),  # no anchor: a random subpool of the budget
    "no_subpool": ((12, 12, 10, 3, 0), 20, 10, 50, 2000, "kmeans_pp"),  # pool <= subpool_size: the whole pool
}


@pytest.mark.parametrize("case", list(CASES))
def test_subpool_and_picks_equal_the_authors(case):
    per_class, budget, num_anchors, k, size, rule = CASES[case]
    fg, probs, labels, labeled = problem(3, per_class=per_class)
    store = Datastore(fg, labels, labeled)
    theirs_sub, theirs = authors_anchoral(store, probs, budget, num_anchors, k, size, rule, np.random.default_rng(11))
    ctx = context(fg, probs, labels, labeled, budget, 11)
    sel = anchoral(ctx, inner=entropy, num_anchors=num_anchors, num_neighbours=k, subpool_size=size, anchors=rule,
                   device="cpu")
    if theirs_sub is None:
        assert sel.info["anchoral_subpool"] == 0, "no subpool: the inner AF ran on the whole pool"
    else:
        ours_sub, _ = subpool(context(fg, probs, labels, labeled, budget, 11), np.flatnonzero(~labeled), num_anchors,
                              k, max(size, budget), rule, "cpu")
        if case == "cold_start":
            assert sorted(ours_sub) == sorted(theirs_sub)  # a random sample: the order is the draw's
        else:
            np.testing.assert_array_equal(ours_sub, theirs_sub)  # the same samples, best first
    if case == "cold_start":  # their entropy refuses a subpool of the budget's size and selects nothing
        assert theirs == [] and sorted(sel.indices) == sorted(theirs_sub)
    else:
        assert sorted(sel.indices) == sorted(theirs)


def test_the_subpool_ranks_by_mean_similarity_over_the_anchors_that_retrieved_it_hand_checked():
    """Points on the unit circle at the given angles; anchors 0 (angle 0) and 1 (0.4), both of class 0 (class 1 has no
    label: no anchor); 3 neighbours each. Anchor 0 retrieves 2, 3, 5; anchor 1 retrieves 5, 4, 3. Mean similarity:
    2 cos .1 = .9950 > 4 cos .12 = .9928 > 3 (cos .2 + cos .2) / 2 = .9801 > 5 (cos .35 + cos .05) / 2 = .9691, though
    5 is anchor 1's nearest; 6 is never retrieved. The best 3 form the subpool."""
    angles = np.array([0.0, 0.4, 0.1, 0.2, 0.52, 0.35, 1.2])
    fg = 3.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # cosine: the scale does not matter
    labeled = np.arange(7) < 2
    ctx = Context(fg=fg, labels=np.where(labeled, 0, -1), labeled_mask=labeled, n_classes=2, budget=2,
                  rng=np.random.default_rng(0))
    sub, info = subpool(ctx, np.arange(2, 7), num_anchors=2, num_neighbours=3, size=3, anchors="all", device="cpu")
    np.testing.assert_array_equal(sub, [2, 4, 3])
    assert info == {"anchoral_anchors": 2, "anchoral_neighbours": 3, "anchoral_subpool": 3}


def test_a_subpool_smaller_than_the_budget_is_searched_deeper():
    """One anchor, 5 neighbours, budget 12: their entropy would select nothing; the search doubles to 10, then 20
    neighbours, and the budget is filled from the 20."""
    fg, probs, labels, labeled = problem(0, per_class=(1, 0, 0, 0, 0))
    ctx = context(fg, probs, labels, labeled, 12, 0)
    sub, info = subpool(ctx, np.flatnonzero(~labeled), num_anchors=10, num_neighbours=5, size=100, device="cpu")
    assert info["anchoral_neighbours"] == 20 and sub.size == 20
    anchor = np.flatnonzero(labeled)[0]
    unit = fg / np.linalg.norm(fg, axis=1, keepdims=True)
    sims = unit[~labeled] @ unit[anchor]
    np.testing.assert_array_equal(sub, np.flatnonzero(~labeled)[np.argsort(-sims, kind="stable")[:20]])
    sel = anchoral(ctx, inner=entropy, num_neighbours=5, subpool_size=100, device="cpu")
    assert len(sel.indices) == 12 and np.isin(sel.indices, sub).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_search_equals_brute_force_across_blocks(monkeypatch, dtype):
    rng = np.random.default_rng(0)
    fg = rng.normal(size=(3000, 16)).astype(dtype)
    queries, pool = np.arange(37), np.arange(37, 3000)[::2]
    monkeypatch.setattr(anchors_module, "CHUNK_ELEMENTS", 37 * 50)  # blocks of 50 rows: many merges
    ids, sims = nearest_neighbours(fg, queries, pool, 25, "cpu")
    unit = fg / np.linalg.norm(fg, axis=1, keepdims=True)
    exact = unit[queries] @ unit[pool].T
    order = np.argsort(-exact, axis=1)[:, :25]
    np.testing.assert_array_equal(np.sort(ids, axis=1), np.sort(pool[order], axis=1))
    np.testing.assert_allclose(np.sort(sims, axis=1), np.sort(np.take_along_axis(exact, order, 1), axis=1),
                               atol=1e-5)


def test_the_inner_af_gets_the_context_narrowed_to_the_subpool_oracle_included():
    fg, probs, labels, labeled = problem(1)
    seen = {}

    def spy(ctx):
        seen["ctx"] = ctx
        return margin(ctx)

    ctx = context(fg, probs, labels, labeled, 20, 0)
    sel = anchoral(ctx, inner=spy, subpool_size=300, device="cpu")
    inner = seen["ctx"]
    assert inner.oracle is ctx.oracle and inner.budget == 20 and inner.candidates.size == sel.info["anchoral_subpool"]
    assert np.isin(sel.indices, inner.candidates).all()
    ctx = context(fg, probs, labels, labeled, 20, 0)  # an inner AF that reveals asks only about what it selects
    sel = anchoral(ctx, inner=cds_bal, subpool_size=300, device="cpu")
    assert ctx.oracle.revealed.size and np.isin(ctx.oracle.revealed, sel.indices).all()


def test_a_slow_inner_af_works_on_the_subpool_only():
    """coreset inside AnchorAL: its picks are coreset's over the subpool (the same generator after the anchors)."""
    fg, probs, labels, labeled = problem(2)
    ctx = context(fg, probs, labels, labeled, 15, 4)
    sel = anchoral(ctx, inner=coreset, subpool_size=200, device="cpu")
    ctx2 = context(fg, probs, labels, labeled, 15, 4)
    sub, _ = subpool(ctx2, np.flatnonzero(~labeled), 10, 50, 200, device="cpu")
    np.testing.assert_array_equal(sel.indices, coreset(ctx2.replace(candidates=sub)).indices)


def test_inside_a_composite_the_search_stays_in_its_candidates():
    fg, probs, labels, labeled = problem(2)
    unlabeled = np.flatnonzero(~labeled)
    ctx = context(fg, probs, labels, labeled, 10, 0, candidates=unlabeled[::3], picked=unlabeled[::9])
    sel = anchoral(ctx, inner=margin, subpool_size=100, device="cpu")
    assert sel.info["anchoral_subpool"] == 100
    assert np.isin(sel.indices, unlabeled[::3]).all() and not np.isin(sel.indices, unlabeled[::9]).any()


def test_whole_pool_inner_refused_before_any_work(make_cfg):
    from alimb.acquisition import galaxy

    fg, probs, labels, labeled = problem(0)
    with pytest.raises(UserError, match="whole pool"):
        anchoral(context(fg, probs, labels, labeled, 5, 0).replace(fg=None), inner=galaxy)
    for overrides in (("acquisition=anchoral", "acquisition.inner=galaxy"),
                      ("acquisition=anchoral", "acquisition.inner=direct"),
                      ("acquisition=pcb", "acquisition@acquisition.base=anchoral", "acquisition.base.inner=galaxy")):
        with pytest.raises(UserError, match="inner=galaxy is invalid: it selects over the whole pool|inner=direct is"):
            expand_parts(make_cfg(*overrides))


def test_needs_fg():
    fg, probs, labels, labeled = problem(0)
    with pytest.raises(UserError, match="anchoral needs fg"):
        anchoral(context(fg, probs, labels, labeled, 5, 0).replace(fg=None), inner=margin)


# ---- every AF inside AnchorAL, the subpool narrower than the pool ----
@pytest.mark.parametrize("inner", AFS)
def test_every_af_serves_inside(make_cfg, inner):
    from tests.test_acquisition_contract import context as contract_context

    cfg = make_cfg("acquisition=anchoral", f"acquisition.inner={inner}", "acquisition.subpool_size=120")
    try:
        expand_parts(cfg)
    except UserError as err:
        assert inner in ("galaxy", "direct") and "whole pool" in str(err), err
        return
    ctx = contract_context(budget=30)
    sel = build(cfg.acquisition)(ctx)
    assert len(sel.indices) == 30 and np.unique(sel.indices).size == 30
    assert sel.info["anchoral_subpool"] == 120 and not ctx.labeled_mask[sel.indices].any()


@pytest.mark.parametrize("scheme", ["cs_svm", "ft_th"])
def test_runs_with_the_svm_and_fine_tuning_schemes(make_cfg, tmp_path, scheme):
    """Digits (588 samples): a subpool of 200, coreset inside it in the scheme's feature space, the search in F_g."""
    from alimb.loop import run_experiment

    tiny = ("backbone.weights=null", "scheme.epochs=1", "trainer.enable_progress_bar=false") if scheme == "ft_th" else ()
    records = run_experiment(make_cfg(f"scheme={scheme}", "acquisition=anchoral", "acquisition.inner=coreset",
                                      "acquisition.subpool_size=200", "al.iterations=3", "al.per_iteration=25", *tiny),
                             tmp_path)
    assert [r["n_labeled"] for r in records] == [25, 50, 75]
    assert all(r.acquisition_info["anchoral_subpool"] == 200 for r in records[1:])
