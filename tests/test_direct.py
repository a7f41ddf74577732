"""DIRECT: its defining steps on hand-checked paths, and its picks against a transcription of the authors' code."""

import math

import numpy as np
import pytest

from alimb.acquisition import Oracle, direct
from alimb.acquisition.thresholds import _interval, threshold_scores
from tests.helpers import select


# ---- a transcription of EfficientTraining/LabelBench strategy_impl/direct.py (select and its helpers), kept to the
# authors' structure; numpy's global random state replaced by a Generator called in the same order ----
class _Node:
    def __init__(self, idx, label):
        self.idx, self.label, self.labeled = idx, label, False


def _get_acc(w):
    cumsum = np.insert(np.cumsum(w), 0, 0)
    reverse_cumsum = np.insert(np.cumsum(w[::-1]), 0, 0)[::-1]
    return cumsum - reverse_cumsum


def _vsr(graph, query_idxs, I, J, B1, B2, n, w, k, spend, rng):
    if B2 == 0:
        return spend, query_idxs
    budget = min(B1, B2)
    lmbda = np.array([0] * I + [1 / (J - I + 1)] * (J + 1 - I) + [0] * (n - J - 1))
    lmbda_unlabeled = [0 if node.labeled else lmbda[i] for i, node in enumerate(graph)]
    if sum(lmbda_unlabeled) == 0:
        return spend, query_idxs
    num_sample = min(budget, len([x for x in lmbda_unlabeled if x > 0]))
    samp_idxs = rng.choice(n, size=num_sample, replace=False, p=np.array(lmbda_unlabeled / sum(lmbda_unlabeled)))
    for idx in samp_idxs:
        query_idxs.append(graph[idx].idx)
        spend += 1
    for i in samp_idxs:
        graph[i].labeled = True
        w[i] = 1 if graph[i].label == k else -1
    cur_diam = sum(1 for m in range(I, J + 1) if not graph[m].labeled)
    if cur_diam > 0:
        base = B2 // B1
        c2 = 1 if base <= 1 else cur_diam ** (1 / (B2 // B1))
        diam = cur_diam
        while diam > math.ceil(cur_diam / c2):
            accs = _get_acc(w)
            if accs[I] < accs[J]:
                diam -= not graph[I].labeled
                I += 1
            elif accs[I] > accs[J]:
                diam -= not graph[J].labeled
                J -= 1
            elif rng.integers(0, 2) == 0:
                diam -= not graph[I].labeled
                I += 1
            else:
                diam -= not graph[J].labeled
                J -= 1
    return _vsr(graph, query_idxs, I, J, B1, B2 - budget, n, w, k, spend, rng)


def authors_direct(preds, labels, labeled, budget, B1, min_budget_per_class, rng):
    """The authors' select(): preds (n, C) probabilities, labels (n,) every sample's true class (read only once
    labeled), labeled (n,) bool. Returns the queried indices in the order they were queried."""
    n_class = preds.shape[1]
    nodes = [_Node(i, int(y)) for i, y in enumerate(labels)]
    most_confident = np.max(preds, axis=1).reshape((-1, 1))
    margins = preds - most_confident + 1e-8 * (most_confident if n_class > 2 else preds[:, 0:1])
    class_freq = np.zeros(n_class)
    for i in np.flatnonzero(labeled):
        nodes[i].labeled = True
        class_freq[nodes[i].label] += 1
    graphs, reverse_graphs = [], []
    for i in range(n_class):
        sort_idx = np.argsort(-margins[:, i])
        graphs.append([nodes[idx] for idx in sort_idx])
        reverse_graphs.append([nodes[idx] for idx in sort_idx[::-1]])
    query_idxs, version_spend = [], 0
    class_rank = np.argsort(-class_freq)
    if budget // n_class // 2 < min_budget_per_class:
        eff_class, B2 = n_class, budget // n_class // 2
    else:
        eff_class, B2 = budget // (2 * min_budget_per_class), min_budget_per_class
    for k in class_rank[-eff_class:]:
        graph, reverse_graph = graphs[k], reverse_graphs[k]
        w = [0 if not node.labeled else (1 if node.label == k else -1) for node in graph]
        I = 0
        for idx, node in enumerate(graph):
            if not node.labeled:
                continue
            if node.label != k:
                break
            I = idx
        J = 0
        for idx, node in enumerate(reverse_graph):
            if not node.labeled:
                continue
            if node.label == k:
                break
            J = idx
        J = len(graph) - J - 1
        B2 = min(B2, sum(1 for node in graph if not node.labeled))
        spend, query_idxs = _vsr(graph, query_idxs, I, J, B1, B2, len(graph), np.array(w), k, 0, rng)
        version_spend += spend
    rem_budget = budget - version_spend
    for i, k in enumerate(rng.permutation(n_class)):
        graph = graphs[k]
        w = [0 if not node.labeled else (1 if node.label == k else -1) for node in graph]
        best_hyp = np.argmax(_get_acc(w))
        right, left, bit = best_hyp, best_hyp - 1, 1
        left_exceed = right_exceed = False
        class_budget = rem_budget * (i + 1) // n_class - rem_budget * i // n_class
        while class_budget > 0:
            bit = (bit + 1) % 2
            if left_exceed and right_exceed:
                break
            if bit == 0:
                if left < 0:
                    left_exceed = True
                    continue
                if not graph[left].labeled:
                    query_idxs.append(graph[left].idx)
                    graph[left].labeled = True
                    class_budget -= 1
                left -= 1
            else:
                if right >= len(labels):
                    right_exceed = True
                    continue
                if not graph[right].labeled:
                    query_idxs.append(graph[right].idx)
                    graph[right].labeled = True
                    class_budget -= 1
                right += 1
    return query_idxs


def _pool(seed, n, n_classes, n_labeled, sharp=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + sharp * np.eye(n_classes)[labels]
    preds = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labeled = np.zeros(n, dtype=bool)
    labeled[rng.choice(n, n_labeled, replace=False)] = True
    return preds, labels, labeled


@pytest.mark.parametrize("seed, n, n_classes, n_labeled, budget, b1, min_per_class", [
    (0, 400, 5, 40, 60, 3, 60),  # budget // C // 2 = 6 < 60: every class, B2 = 6 in rounds of 3 (shrinking)
    (1, 600, 10, 30, 100, 2, 60),  # B2 = 5, B1 = 2: three rounds per class
    (2, 500, 4, 20, 480, 20, 30),  # 480 // 4 // 2 = 60 >= 30: 8 effective classes (all 4), B2 = 30
    (3, 300, 2, 10, 40, 5, 60),  # two classes: the authors' 1e-8 p_0 tie term
    (4, 200, 3, 0, 20, 20, 60),  # nothing labeled yet
    (5, 300, 6, 60, 10, 20, 60),  # budget < 2 C: no version-space labels
])
def test_picks_match_a_transcription_of_the_authors_code(seed, n, n_classes, n_labeled, budget, b1, min_per_class):
    preds, labels, labeled = _pool(seed, n, n_classes, n_labeled)
    theirs = authors_direct(preds, labels, labeled, budget, b1, min_per_class, np.random.default_rng(seed + 100))
    ours = select(direct, scores=preds, labels=np.where(labeled, labels, -1), labeled_mask=labeled, n_classes=n_classes,
                  budget=budget, rng=np.random.default_rng(seed + 100), oracle=Oracle(labels),
                  parallel_annotators=b1, min_budget_per_class=min_per_class)
    assert ours.indices.tolist() == theirs
    assert len(set(ours.indices.tolist())) == budget and not labeled[ours.indices].any()


def test_scores_that_are_not_probabilities_are_ranked_by_their_softmax():
    preds, labels, labeled = _pool(7, 300, 5, 30)
    logits = np.log(preds) + 3.0  # decision values: the same softmax
    a = select(direct, scores=logits, labels=np.where(labeled, labels, -1), labeled_mask=labeled, budget=30,
               rng=np.random.default_rng(1), oracle=Oracle(labels))
    b = authors_direct(preds, labels, labeled, 30, 20, 60, np.random.default_rng(1))
    assert sorted(a.indices.tolist()) == sorted(b)


# ---- the defining steps on a path worked out by hand ----
W = np.array([1, 1, 0, 0, 0, -1, 0, 0, -1, 0, 0, 0])  # class k's path: + at 0, 1; - at 5, 8


def test_threshold_scores_and_the_best_threshold_by_hand():
    # acc(t) = (sum of w before t) - (sum from t): prefix sums 0 1 2 2 2 2 1 1 1 0 0 0 0, total 0 -> 2 x prefix
    assert threshold_scores(W).tolist() == [0, 2, 4, 4, 4, 4, 2, 2, 2, 0, 0, 0, 0]
    assert int(np.argmax(threshold_scores(W))) == 2  # the first best: "the first 2 are class k"


def test_the_uncertain_interval_by_hand():
    assert _interval(W) == (1, 5)  # last + before the first - (1); last - after the last + (5)
    assert _interval(np.array([0, -1, 0, 1, 0])) == (0, 4)  # a - first: I = 0; a + last: J = the end
    assert _interval(np.zeros(4, dtype=int)) == (0, 3)  # nothing labeled: the whole path


def test_the_label_it_asks_first_is_next_to_the_best_threshold():
    """12 samples whose class-0 margins decrease with the index (so the class-0 path is 0..11), labeled as W
    says; budget 1 below 2 C: no version space, the one label goes to the last class of the permutation."""
    p0 = 0.9 - 0.07 * np.arange(12)
    preds = np.stack([p0, 0.6 * (1 - p0), 0.4 * (1 - p0)], axis=1)
    labels = np.full(12, -1)
    labels[[0, 1]], labels[5], labels[8] = 0, 1, 2
    seed = next(s for s in range(100) if np.random.default_rng(s).permutation(3)[-1] == 0)  # class 0 gets it
    pick = select(direct, scores=preds, labels=labels, labeled_mask=labels >= 0, budget=1,
                  rng=np.random.default_rng(seed), oracle=Oracle(np.zeros(12, dtype=int)))
    # best threshold 2: left of it sample 1 (labeled, skipped), then right of it: sample 2
    assert pick.indices.tolist() == [2]


def test_version_space_labels_fall_inside_the_uncertain_interval():
    """B2 = 1 per class (budget 6, C = 3): each class's one version-space label is drawn from its [I, J]."""
    p0 = 0.9 - 0.07 * np.arange(12)
    preds = np.stack([p0, 0.6 * (1 - p0), 0.4 * (1 - p0)], axis=1)
    labels = np.full(12, -1)
    labels[[0, 1]], labels[5], labels[8] = 0, 1, 2
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    for seed in range(20):
        out = select(direct, scores=preds, labels=labels, labeled_mask=labels >= 0, budget=6,
                     rng=np.random.default_rng(seed), oracle=Oracle(truth))
        assert out.info["n_version_space"] == 3
        # class ranks by labeled count: classes 1, 2 (one label each), then 0 (two) are the version-space order
        # from the most labeled of the tail: argsort(-[2, 1, 1]) = [0, 1, 2] -> class 0 first, on path 0..11
        assert out.indices[0] in (2, 3, 4)  # the unlabeled samples of [1, 5] on class 0's path


def test_without_the_oracle_the_predicted_class_stands_in():
    preds, labels, labeled = _pool(8, 300, 4, 20)
    oracle = Oracle(labels)
    out = select(direct, scores=preds, labels=np.where(labeled, labels, -1), labeled_mask=labeled, budget=40,
                 rng=np.random.default_rng(0), oracle=oracle, reveal_within_batch=False)
    assert oracle.revealed.size == 0 and len(set(out.indices.tolist())) == 40
    as_if = authors_direct(preds, np.argmax(preds, axis=1) * ~labeled + labels * labeled, labeled, 40, 20, 60,
                           np.random.default_rng(0))
    assert out.indices.tolist() == as_if
