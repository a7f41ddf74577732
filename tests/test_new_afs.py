"""The acquisition functions that followed the paper, each on a small hand-checked case of its defining property."""

import itertools

import numpy as np
import pytest

from alimb.acquisition import Oracle, Selection, class_balanced, flqmi, galaxy, probcover, minority_bandit, typiclust
from alimb.acquisition.balanced_mip import objective
from alimb.acquisition.boundary import base, boundary_distances
from alimb.acquisition.lowbudget import typicality
from tests.helpers import select


# ---- BASE ----
def test_base_takes_each_class_share_closest_to_its_boundary():
    # 1-D, two classes, w = (1, -1), b = 0: logits (h, -h), the boundary at h = 0, distance |2h| / 2 = |h|
    h = np.array([[-3.0], [-1.0], [0.5], [2.0], [4.0]])
    head = (np.array([[1.0, -1.0]]), np.zeros(2))
    sel = select(base, features=h, head=head, labeled_mask=np.zeros(5, bool), budget=2, rng=np.random.default_rng(0))
    assert sel.indices.tolist() == [2, 1]  # class 0: |0.5| closest; class 1: the next closest not taken, |-1|
    sel = select(base, features=h, head=head, labeled_mask=np.array([0, 0, 1, 0, 0], bool), budget=3,
               rng=np.random.default_rng(0))
    assert sel.indices.tolist() == [1, 3, 0]  # shares 2, 1: class 0 gets |-1| and |2|, class 1 then |-3|


def test_base_distance_is_the_step_that_makes_the_logits_tie():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 5)), rng.normal(size=5)
    h = rng.normal(size=(30, 4))
    gram = w.T @ w
    sq = np.diag(gram)
    d = boundary_distances(h, w, b, np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2 * gram, 0, None)))
    z = h @ w + b
    y = z.argmax(1)
    for i, c in itertools.product(range(30), range(5)):
        if c == y[i]:
            assert d[i, c] == pytest.approx(np.delete(d[i], c).min())
            continue
        normal = w[:, y[i]] - w[:, c]
        moved = h[i] - d[i, c] * normal / np.linalg.norm(normal)  # the shortest step toward class c
        zm = moved @ w + b
        assert zm[y[i]] == pytest.approx(zm[c], abs=1e-9)


# ---- GALAXY ----
def galaxy_case(truth):
    s = np.arange(4, -5, -1, dtype=float)  # path 0 sorted by s0 - s1 = 2s, path 1 the reverse
    scores = np.stack([s, -s], axis=1)
    labels = np.array([0, -1, -1, -1, -1, -1, -1, -1, 1])
    return dict(scores=scores, labels=labels, labeled_mask=labels >= 0, n_classes=2, oracle=Oracle(np.array(truth)))


@pytest.mark.parametrize("truth,expected", [([0] * 5 + [1] * 4, [4, 6]), ([0] * 3 + [1] * 6, [4, 2])])
def test_galaxy_bisects_the_shortest_run_between_opposite_labels(truth, expected):
    # the run 1..7 between + (0) and - (8): midpoint 4; its label decides which half holds the cut next
    sel = select(galaxy, **galaxy_case(truth), budget=2, rng=np.random.default_rng(0))
    assert sel.indices.tolist() == expected


def test_galaxy_without_a_cut_queries_nearest_the_boundary():
    case = galaxy_case([0] * 9)
    case["labels"] = np.array([0] + [-1] * 8)  # no label of the other sign on either path
    case["labeled_mask"] = case["labels"] >= 0
    sel = select(galaxy, **case, budget=1, rng=np.random.default_rng(0))
    assert sel.indices.tolist() == [4]  # |q| smallest: s = 0


def test_galaxy_without_reveal_counts_the_predicted_class():
    sel = select(galaxy, **galaxy_case([1] * 9), budget=2, rng=np.random.default_rng(0), reveal_within_batch=False)
    assert sel.indices.tolist() == [4, 6]  # 4 predicted 0 (s0 = s1 = 0: argmax takes 0), as if truth said 0


def galaxy_as_published(p, known, truth, classes):
    """Our transcription of the authors' query rule (LabelBench strategy_impl/galaxy.py, K > 2): path k sorted by
    p_k - max p + 1e-8 max p, descending; scan it from the class-k end for runs of unlabeled nodes between two
    labeled nodes of opposite sign (+: label k), keep the first strictly shortest, query its middle
    ((first + last) // 2). None where a path has no such run (their fallback differs from ours)."""
    top = p.max(axis=1, keepdims=True)
    margins = p - top + 1e-8 * top
    known, picks = known.copy(), []
    for k in classes:
        order = np.argsort(-margins[:, k], kind="stable")
        best, last_sign, start = None, None, None
        for pos, i in enumerate(order):
            if known[i] >= 0:
                plus = known[i] == k
                if last_sign is not None and start is not None and plus != last_sign:
                    if best is None or pos - 1 - start < best[1] - best[0]:
                        best = (start, pos - 1)
                last_sign, start = plus, None
            elif start is None:
                start = pos
        if best is None:
            return None
        q = order[(best[0] + best[1]) // 2]
        known[q] = truth[q]
        picks.append(int(q))
    return picks


def test_galaxy_picks_what_the_authors_rule_picks_with_three_or_more_classes():
    compared = 0
    for case in range(150):
        rng = np.random.default_rng(case)
        n, k = 40, int(rng.integers(3, 7))
        logits = rng.normal(size=(n, k)) * 2
        truth = rng.integers(0, k, n)
        labels = np.where(rng.random(n) < 0.3, truth, -1)
        draws = np.random.default_rng(case + 1000)
        draws.permutation(n)  # what galaxy draws first (its tie order), then one class per query
        classes = [int(draws.integers(k)) for _ in range(5)]
        expected = galaxy_as_published(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), labels, truth, classes)
        if expected is None:
            continue
        sel = select(galaxy, scores=logits, labels=labels, labeled_mask=labels >= 0, n_classes=k, budget=5,
                     oracle=Oracle(truth), rng=np.random.default_rng(case + 1000))
        assert sel.indices.tolist() == expected, case
        compared += 1
    assert compared >= 50


# ---- Class-Balanced AL ----
def test_class_balanced_finds_the_exact_optimum():
    rng = np.random.default_rng(0)
    scores = np.log(rng.dirichlet([0.5, 0.5, 0.5], size=10))
    labels = np.r_[[0] * 6 + [1] * 2, [-1] * 10]
    scores = np.r_[np.zeros((8, 3)), scores]
    mask = labels >= 0
    sel = select(class_balanced, scores=scores, labels=labels, labeled_mask=mask, n_classes=3, budget=4,
                         rng=np.random.default_rng(0))
    p = np.exp(scores[8:]) / np.exp(scores[8:]).sum(1, keepdims=True)
    u = (p * np.log(p)).sum(1)
    omega = np.maximum(0, (8 + 4) / 3 - np.array([6, 2, 0]))
    best = min(objective(np.array(z), u, p, omega, 1.0) for z in itertools.combinations(range(10), 4))
    assert sel.info["used"] == "milp" and sel.info["solver_status"] == "optimal"
    assert objective(sel.indices - 8, u, p, omega, 1.0) == pytest.approx(best)


def test_class_balanced_floors_the_balanced_share_as_the_authors():
    """(|L| + b) / C = 13 / 3: the authors' target is int(13 / 3) = 4 per class (their class_threshold), less each
    count, at least 0; the optimum under that target, by brute force, is what the AF picks."""
    rng = np.random.default_rng(5)
    scores = np.r_[np.zeros((8, 3)), np.log(rng.dirichlet([0.7, 0.7, 0.7], size=11))]
    labels = np.r_[[0] * 5 + [1] * 3, [-1] * 11]
    sel = select(class_balanced, scores=scores, labels=labels, labeled_mask=labels >= 0, n_classes=3, budget=5,
                 rng=np.random.default_rng(0))
    p = np.exp(scores[8:]) / np.exp(scores[8:]).sum(1, keepdims=True)
    u = (p * np.log(p)).sum(1)
    omega = np.array([max(0, int(13 / 3) - c) for c in (5, 3, 0)], dtype=float)  # [0, 1, 4]
    values = {z: objective(np.array(z), u, p, omega, 1.0) for z in itertools.combinations(range(11), 5)}
    best = min(values, key=values.get)
    assert sel.info["used"] == "milp" and sorted(sel.indices - 8) == list(best)


def test_class_balanced_takes_the_authors_lam_for_cifar100(make_cfg):
    assert make_cfg("acquisition=class_balanced", "dataset=cifar100").acquisition.lam == 2.0
    assert make_cfg("acquisition=class_balanced", "dataset=cifar10").acquisition.lam == 0.6
    assert make_cfg("acquisition=class_balanced").acquisition.lam == 1.0  # digits: the authors give none


def test_class_balanced_records_the_greedy_fallback_at_the_limit():
    rng = np.random.default_rng(1)
    n = 400
    labels = np.r_[rng.integers(0, 10, 100), -np.ones(n - 100, int)]
    sel = select(class_balanced, scores=rng.normal(size=(n, 10)), labels=labels, labeled_mask=labels >= 0, n_classes=10,
                         budget=40, rng=np.random.default_rng(0), time_limit=1e-6)
    assert sel.info["solver_status"] == "limit"
    assert sel.info["used"] in ("greedy", "milp_incumbent") and "greedy_objective" in sel.info
    assert np.unique(sel.indices).size == 40 and (sel.indices >= 100).all()


# ---- SIMILAR / FLQMI ----
def test_flqmi_in_the_gradient_space_equals_flqmi_on_the_built_gradient_embeddings():
    """embedding=gradient never builds g = (onehot(y_hat) - p) ⊗ h; built here by hand and handed over as F_g,
    plain FLQMI picks the same."""
    rng = np.random.default_rng(4)
    n, k, d = 120, 4, 5
    scores, h = rng.normal(size=(n, k)), rng.normal(size=(n, d)).astype(np.float32)
    p = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    a = np.eye(k)[p.argmax(1)] - p
    built = np.stack([np.kron(a[i], h[i]) for i in range(n)]).astype(np.float32)  # (n, k * d)
    labels = np.r_[[0] * 8 + [1] * 6 + [2] * 2 + [3], [-1] * (n - 17)]
    common = dict(labels=labels, labeled_mask=labels >= 0, n_classes=k, budget=12)
    ours = select(flqmi, scores=scores, features=h, embedding="gradient", rng=np.random.default_rng(0), **common)
    plain = select(flqmi, fg=built, rng=np.random.default_rng(0), **common)
    np.testing.assert_array_equal(ours.indices, plain.indices)
    assert not np.array_equal(select(flqmi, fg=h, rng=np.random.default_rng(0), **common).indices, plain.indices)


@pytest.mark.parametrize("held", [True, False])
def test_flqmi_is_the_plain_greedy_on_the_minority_query_set(monkeypatch, held):
    """With the query x candidate similarities held and recomputed in blocks alike."""
    import alimb.acquisition.submodular as sm

    if not held:
        monkeypatch.setattr(sm, "HOLD_ELEMENTS", 0)
        monkeypatch.setattr(sm, "BLOCK_ELEMENTS", 20)  # several blocks
    rng = np.random.default_rng(0)
    fg = rng.normal(size=(60, 4))
    labels = np.r_[[0] * 10 + [1] * 2, [-1] * 48]  # class 1 is the minority: its 2 samples are the query set
    mask = labels >= 0
    sel = select(flqmi, fg=fg, labels=labels, labeled_mask=mask, n_classes=2, budget=5, rng=np.random.default_rng(0))
    unit = fg / np.linalg.norm(fg, axis=1, keepdims=True)
    s = 0.5 * (1 + unit[10:12] @ unit.T)  # (Q, n)
    cover, plain = np.zeros(2), []
    for _ in range(5):
        gain = np.maximum(s - cover[:, None], 0).sum(0) + s.max(0)
        gain[mask] = -np.inf
        gain[plain] = -np.inf
        plain.append(int(np.argmax(gain)))
        cover = np.maximum(cover, s[:, plain[-1]])
    assert sel.indices.tolist() == plain


# ---- TypiClust / ProbCover ----
def test_typicality_is_the_inverse_mean_squared_distance_to_the_nearest_neighbours():
    t = typicality(np.array([[0.0], [1.0], [3.0]]), k_nn=1)  # min(1, 3 // 2) = 1 neighbour, squared distances
    np.testing.assert_allclose(t, 1 / (np.array([1.0, 1.0, 4.0]) + 1e-5))
    t = typicality(np.array([[0.0], [1.0], [3.0], [7.0]]), k_nn=20)  # min(20, 4 // 2) = 2 neighbours
    np.testing.assert_allclose(t, 1 / (np.array([(1 + 9) / 2, (1 + 4) / 2, (4 + 9) / 2, (16 + 36) / 2]) + 1e-5))


def typiclust_as_published(x, clusters, labeled, budget, min_size=5, k_nn=20):
    """Our transcription of the authors' selection (avihu111/TypiClust typiclust.py select_samples), given the
    clusters: large clusters sorted once by (labeled count, -size), pick i from cluster i mod their number, the
    most typical of its members not labeled or picked (k = min(k_nn, members // 2), squared L2)."""
    ids, sizes = np.unique(clusters, return_counts=True)
    counts = np.array([np.sum(labeled & (clusters == c)) for c in ids])
    keep = sizes > min_size
    order = sorted(zip(counts[keep], -sizes[keep], ids[keep]))
    taken = labeled.copy()
    picks = []
    for i in range(budget):
        c = order[i % len(order)][2]
        members = np.flatnonzero((clusters == c) & ~taken)
        f = x[members]
        d = ((f[:, None] - f[None]) ** 2).sum(-1)
        k = min(k_nn, len(members) // 2)
        mean = np.sort(d, axis=1)[:, 1:k + 1].mean(1)  # column 0: itself
        j = members[np.argmax(1 / (mean + 1e-5))]
        picks.append(int(j))
        taken[j] = True
    return picks


@pytest.mark.parametrize("case", range(4))
def test_typiclust_picks_what_the_authors_rule_picks_with_the_cap_binding_and_labels_in_clusters(monkeypatch, case):
    """More picks than large clusters (the order wraps), labels inside clusters, some clusters under the floor."""
    import alimb.acquisition.lowbudget as lb

    rng = np.random.default_rng(case)
    n = 400
    clusters = np.r_[np.repeat(np.arange(12), 30), np.repeat([12, 13, 14, 15], [3, 5, 4, 28])]
    x = rng.normal(size=(n, 3)) + 4 * rng.normal(size=(16, 3))[clusters]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labeled = rng.random(n) < 0.08
    monkeypatch.setattr(lb, "kmeans", lambda *_: clusters)
    sel = select(typiclust, fg=x, labeled_mask=labeled, budget=30, rng=np.random.default_rng(0))
    assert sel.indices.tolist() == typiclust_as_published(x, clusters, labeled, 30)


def test_typiclust_takes_the_most_typical_sample_of_an_uncovered_cluster():
    rng = np.random.default_rng(0)
    angles = np.r_[rng.normal(0, 0.05, 30), rng.normal(2.5, 0.05, 30)]  # two tight clusters on the circle
    fg = np.stack([np.cos(angles), np.sin(angles)], 1)
    mask = np.zeros(60, bool)
    mask[:3] = True  # cluster 1 already has labels
    sel = select(typiclust, fg=fg, labeled_mask=mask, budget=1, rng=np.random.default_rng(0), max_clusters=2)
    second = fg[30:]
    d = np.sqrt(((second[:, None] - second[None]) ** 2).sum(-1))
    typical = 1 / (np.sort(d ** 2, axis=1)[:, 1:16].mean(1) + 1e-5)  # min(20, 30 // 2) nearest, squared
    assert sel.indices.tolist() == [30 + int(np.argmax(typical))]


def test_probcover_covers_the_most_uncovered_points_first():
    angles = np.array([0.0, 0.05, 0.1, 2.0, 2.05, 4.0, 4.02])
    fg = np.stack([np.cos(angles), np.sin(angles)], 1)
    mask = np.array([0, 0, 0, 0, 0, 1, 0], bool)  # the last two are covered by the labeled sample
    sel = select(probcover, fg=fg, labeled_mask=mask, n_classes=3, budget=3, rng=np.random.default_rng(0), delta=0.07)
    assert sel.indices[0] == 1  # its ball holds 0, 1, 2
    assert set(sel.indices[1:3].tolist()) & {3, 4}  # then a ball of 2 uncovered points


# ---- the bandit ----
def test_minority_bandit_favours_the_arm_that_finds_minority_classes():
    labels = np.r_[[0] * 50 + [1] * 2, [-1] * 120]
    truth = np.r_[labels[:52], np.tile([0, 1], 60)]
    mask = labels >= 0

    def proposing(cls):
        def arm(ctx):
            idx = np.flatnonzero(ctx.available() & (truth == cls))
            return Selection(ctx.rng.permutation(idx)[:ctx.budget])
        return arm

    sel = select(minority_bandit, arms={"finds_minority": proposing(1), "finds_majority": proposing(0)}, labels=labels,
                 labeled_mask=mask, n_classes=2, budget=40, rng=np.random.default_rng(0), oracle=Oracle(truth),
                 scores=np.zeros((172, 2)))
    assert sel.info["arm_picks"]["finds_minority"] >= 30
    assert sel.info["arm_rewards"]["finds_majority"] == 0


# ---- through the loop ----
NEW = ["badge", "base", "galaxy", "class_balanced", "flqmi", "typiclust", "probcover", "minority_bandit"]


@pytest.mark.parametrize("af", NEW)
def test_each_new_af_runs_on_digits_with_cs_svm(make_cfg, tmp_path, af):
    from alimb.loop import run_experiment

    records = run_experiment(make_cfg(f"acquisition={af}", "al.iterations=3", "al.per_iteration=30"), tmp_path)
    assert [r["n_labeled"] for r in records] == [30, 60, 90]
    reveals = af in ("galaxy", "minority_bandit")
    assert [r["reveal_within_batch"] for r in records] == [False, reveals, reveals]
    assert all((r["n_revealed_within_batch"] == 30) == (reveals and r["iteration"] > 0) for r in records)
    if af in ("class_balanced", "minority_bandit"):
        assert all(r.acquisition_info is not None for r in records[1:])


@pytest.mark.parametrize("af", ["base", "galaxy"])
def test_boundary_afs_run_with_fine_tuning(make_cfg, tmp_path, af):
    from alimb.loop import run_experiment

    tiny = ("backbone.weights=null", "scheme.epochs=1", "trainer.enable_progress_bar=false")
    records = run_experiment(make_cfg("scheme=ft_th", f"acquisition={af}", "al.iterations=2", "al.per_iteration=25",
                                      *tiny), tmp_path)
    assert [r["n_labeled"] for r in records] == [25, 50]
