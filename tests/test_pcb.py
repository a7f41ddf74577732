"""PCB: its picks against a transcription of the authors' code, the exhausted-class fix on a hand-checked case, and
every AF as its base."""

from pathlib import Path

import numpy as np
import pytest

from alimb.acquisition import Context, Oracle, Selection, pcb
from alimb.acquisition.balancing import balance
from alimb.config import build, expand_parts
from alimb.errors import UserError
from alimb.run import CONFIG_DIR

AFS = sorted(p.stem for p in (Path(CONFIG_DIR) / "acquisition").glob("*.yaml"))


# ---- a transcription of kaist-dmlab/pcb (7f32a1b8): trainers/alvlm.py lines 441-469 (the round) and
# trainers/active_learning/pcb.py lines 43-66 (PCB.select), entropy.py lines 13-48 (their Entropy base), kept to the
# authors' structure; Python's global `random` replaced by a Generator called in the same order ----
def authors_entropy_select(probs, U_index, n_query):
    """Entropy(...).select(n_query): U_index entries of the n_query most uncertain, their argsort order."""
    scores = (np.log(probs[U_index] + 1e-6) * probs[U_index]).sum(axis=1)
    selection_result = np.argsort(scores)[:n_query]
    return [U_index[idx] for idx in selection_result]


def authors_pcb_select(pred, U_index, statistics, n_query, rng):
    """PCB(..., U_index=idx, statistics).select(n_query); pred: the predicted class of each entry of U_index."""
    statistics = statistics.copy()
    num_unlabeled = len(U_index)
    Q_index = []
    while len(Q_index) < n_query:
        min_cls = int(np.argmin(statistics))
        sub_pred = np.flatnonzero(pred == min_cls).tolist()
        if len(sub_pred) == 0:
            num = int(rng.integers(0, num_unlabeled))
            while num in Q_index:
                num = int(rng.integers(0, num_unlabeled))
            Q_index.append(num)
        else:
            rng.shuffle(sub_pred)
            for idx in sub_pred:
                if idx not in Q_index:
                    Q_index.append(idx)
                    statistics[min_cls] += 1
                    break
            else:
                num = int(rng.integers(0, num_unlabeled))
                while num in Q_index:
                    num = int(rng.integers(0, num_unlabeled))
                Q_index.append(num)
    return [U_index[idx] for idx in Q_index]


def authors_round(probs, labels, labeled, n_query, gamma, rng):
    """One round after the first (i != 0) with METHOD == "entropy": the base proposes n_cand, PCB picks n_query."""
    U_index = list(np.flatnonzero(~labeled))
    n_cand = int(len(labels) * gamma)
    idx = authors_entropy_select(probs, U_index, n_cand)
    statistics = np.bincount(labels[labeled], minlength=probs.shape[1]).astype(float)
    pred = np.argmax(probs[idx], axis=1)
    return authors_pcb_select(pred, idx, statistics, n_query, rng)


def entropy_base(ctx: Context) -> Selection:
    """Their Entropy base as an AF (no generator call): the unlabeled samples of largest entropy, in their order."""
    pool = ctx.pool()
    return Selection(np.array(authors_entropy_select(ctx.scores, list(pool), ctx.budget), dtype=np.int64))


def problem(seed, n=600, n_classes=6, n_labeled=60, skew=0.0, unseen=()):
    """Softmax probabilities of a noisy model, true labels and a labeled mask; `unseen` classes are never predicted
    and never labeled; `skew` makes class 0 predicted more often."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[labels]
    logits[:, 0] += skew
    logits[:, list(unseen)] = -50.0
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labeled = np.zeros(n, dtype=bool)
    allowed = np.flatnonzero(~np.isin(labels, list(unseen)))
    labeled[rng.choice(allowed, n_labeled, replace=False)] = True
    return probs, labels, labeled


def context(probs, labels, labeled, budget, seed, **changes):
    return Context(scores=probs, labels=np.where(labeled, labels, -1), labeled_mask=labeled,
                   n_classes=probs.shape[1], budget=budget, rng=np.random.default_rng(seed), oracle=Oracle(labels),
                   **changes)


@pytest.mark.parametrize("seed,budget,gamma,skew,unseen", [
    (0, 20, 0.1, 0.0, ()),  # plenty of proposals of every class
    (1, 60, 0.1, 0.0, ()),  # the budget takes every proposal: classes run out, random picks follow
    (2, 30, 0.1, 0.0, (5,)),  # a class never labeled, never predicted: random from the first pick
    (3, 40, 0.2, 2.0, ()),  # most proposals predicted as class 0
    (4, 10, 0.5, 0.0, ()),
])
def test_faithful_picks_equal_the_authors(seed, budget, gamma, skew, unseen):
    probs, labels, labeled = problem(seed, skew=skew, unseen=unseen)
    expected = authors_round(probs, labels, labeled, budget, gamma, np.random.default_rng(seed + 100))
    sel = pcb(context(probs, labels, labeled, budget, seed + 100), base=entropy_base, share=gamma, exhausted="random")
    np.testing.assert_array_equal(sel.indices, expected)


def test_default_equals_the_authors_until_a_class_runs_out():
    """The fix changes nothing while the least-labeled class has proposals left (generator calls included)."""
    probs, labels, labeled = problem(0)
    expected = authors_round(probs, labels, labeled, 20, 0.1, np.random.default_rng(5))
    sel = pcb(context(probs, labels, labeled, 20, 5), base=entropy_base, share=0.1)
    np.testing.assert_array_equal(sel.indices, expected)
    assert sel.info["pcb_random_picks"] == 0


def test_an_unseen_class_turns_the_authors_batch_random_and_ours_balanced():
    probs, labels, labeled = problem(2, unseen=(5,))
    faithful = pcb(context(probs, labels, labeled, 30, 7), base=entropy_base, exhausted="random")
    ours = pcb(context(probs, labels, labeled, 30, 7), base=entropy_base)
    assert faithful.info["pcb_random_picks"] == 30, "class 5 (count 0, no proposal) stays the argmin"
    assert ours.info["pcb_random_picks"] == 0
    # ours: each pick to the least counted of classes 0-4 (water filling), every one of them having proposals to spare
    counts = np.bincount(labels[labeled], minlength=6)[:5]
    expected = counts.copy()
    for _ in range(30):
        expected[np.argmin(expected)] += 1
    proposals = np.bincount(probs[entropy_base(context(probs, labels, labeled, 60, 0)).indices].argmax(1), minlength=6)
    assert (proposals[:5] >= expected - counts).all(), "the case needs enough proposals of each class"
    np.testing.assert_array_equal(counts + np.bincount(probs[ours.indices].argmax(1), minlength=6)[:5], expected)


def test_exhausted_class_hand_checked():
    """counts (5, 0, 2); proposals predicted 0, 0, 0, 0, 1, 2, 2, 2; budget 4. Ours: class 1's proposal, then class 2
    (the least labeled with a proposal left) three times. The authors': class 1's proposal, then class 1 stays the
    argmin with none left, so three random picks."""
    predicted = np.array([0, 0, 0, 0, 1, 2, 2, 2])
    counts = np.array([5, 0, 2])
    ours, n_random = balance(predicted, counts, 4, np.random.default_rng(0))
    assert ours[0] == 4 and sorted(ours[1:]) == [5, 6, 7] and n_random == 0
    theirs, n_random = balance(predicted, counts, 4, np.random.default_rng(0), faithful=True)
    assert theirs[0] == 4 and n_random == 3
    expected = authors_pcb_select(predicted, list(range(8)), counts.astype(float), 4, np.random.default_rng(0))
    np.testing.assert_array_equal(theirs, expected)


def test_fewer_proposals_than_the_budget_propose_the_budget():
    """int(0.01 * 600) = 6 proposals for a budget of 20: the authors' loop would never end; the base proposes 20."""
    probs, labels, labeled = problem(0)
    seen = {}

    def spy(ctx):
        seen["budget"], seen["oracle"] = ctx.budget, ctx.oracle
        return entropy_base(ctx)

    sel = pcb(context(probs, labels, labeled, 20, 0), base=spy, share=0.01)
    assert seen["budget"] == 20 and sel.info["pcb_proposed"] == 20
    assert set(sel.indices) == set(entropy_base(context(probs, labels, labeled, 20, 0)).indices)
    assert seen["oracle"] is None, "proposals are not all selected: the base must not reveal their labels"


def test_share_of_the_whole_pool_or_a_multiple_of_the_budget():
    probs, labels, labeled = problem(0)  # 600 samples, 60 labeled
    seen = []

    def spy(ctx):
        seen.append(ctx.budget)
        return entropy_base(ctx)

    pcb(context(probs, labels, labeled, 10, 0), base=spy, share=0.25)
    pcb(context(probs, labels, labeled, 10, 0), base=spy, multiple=3)
    pcb(context(probs, labels, labeled, 10, 0), base=spy, share=1.0)
    assert seen == [150, 30, 540], "int(0.25 * 600) counts the labeled samples; 3 x 10; at most the 540 unlabeled"


def test_picks_of_an_enclosing_af_count_for_their_predicted_class():
    """Labeled counts (3, 0): class 1 gets the pick. With four samples predicted as class 1 already picked by an
    enclosing AF, the counts are (3, 4) and class 0 gets it."""
    scores = np.eye(2)[[0, 0, 0, 1, 1, 1, 0, 1, 0, 1]]
    labels = np.array([0, 0, 0, -1, -1, -1, -1, -1, -1, -1])
    ctx = Context(scores=scores, labels=labels, labeled_mask=labels >= 0, n_classes=2, budget=1,
                  rng=np.random.default_rng(0))
    assert scores[pcb(ctx, base=entropy_base, share=1.0).indices[0]].argmax() == 1
    ctx = ctx.replace(picked=np.array([3, 4, 5, 7]))
    assert scores[pcb(ctx, base=entropy_base, share=1.0).indices[0]].argmax() == 0


def test_needs_scores():
    probs, labels, labeled = problem(0)
    with pytest.raises(UserError, match="pcb needs scores"):
        pcb(context(probs, labels, labeled, 5, 0).replace(scores=None), base=entropy_base)


# ---- every AF as PCB's base, and PCB where a narrowed context reaches its base ----
def contract_context(budget=40, seed=0, **changes):
    from tests.test_acquisition_contract import context as ctx

    return ctx(budget=budget, rng_seed=seed, **changes)


@pytest.mark.parametrize("base", AFS)
def test_every_af_serves_as_base(make_cfg, base):
    cfg = make_cfg("acquisition=pcb", f"acquisition.base={base}")
    expand_parts(cfg)
    ctx = contract_context()
    sel = build(cfg.acquisition)(ctx)
    assert len(sel.indices) == 40 and np.unique(sel.indices).size == 40
    assert not ctx.labeled_mask[sel.indices].any()
    assert ctx.oracle.revealed.size == 0, "PCB reveals no label: its base proposes without the oracle"


def test_a_whole_pool_base_is_refused_where_pcb_is_narrowed(make_cfg):
    """As `within`, PCB's base gets a class's candidates: galaxy cannot serve there, refused before any work. As
    `auxiliary` (the picks made so far, no candidates) it runs."""
    cfg = make_cfg("acquisition=dmcs_rand", "acquisition@acquisition.within=pcb", "acquisition.within.base=galaxy")
    with pytest.raises(UserError, match=r"acquisition.within.base=galaxy is invalid: it selects over the whole pool"):
        expand_parts(cfg)
    cfg = make_cfg("acquisition=dmcs_rand", "acquisition@acquisition.auxiliary=pcb", "acquisition.auxiliary.base=galaxy")
    expand_parts(cfg)
    sel = build(cfg.acquisition)(contract_context(budget=60))
    assert len(sel.indices) == 60 and np.unique(sel.indices).size == 60


@pytest.mark.parametrize("scheme", ["cs_svm", "ft_th"])
def test_runs_with_the_svm_and_fine_tuning_schemes(make_cfg, tmp_path, scheme):
    from alimb.loop import run_experiment

    tiny = ("backbone.weights=null", "scheme.epochs=1", "trainer.enable_progress_bar=false") if scheme == "ft_th" else ()
    records = run_experiment(make_cfg(f"scheme={scheme}", "acquisition=pcb", "acquisition.base=margin",
                                      "al.iterations=3", "al.per_iteration=25", *tiny), tmp_path)
    assert [r["n_labeled"] for r in records] == [25, 50, 75]
    assert all(r.acquisition_info["pcb_proposed"] == 58 for r in records[1:]), "int(0.1 x 588 samples of the pool)"
