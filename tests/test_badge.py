"""BADGE on hand-checked cases: the factorised distances, the first pick, D² sampling."""

import numpy as np

from alimb.acquisition import badge
from alimb.acquisition.gradients import _Centers, _Embeddings
from tests.helpers import select


def test_factorised_distances_equal_those_of_the_materialised_gradient_embeddings():
    """The distances BADGE computes (from p, y_hat and h, g never built) equal those between the explicit
    g = (onehot(y_hat) - p) ⊗ h."""
    rng = np.random.default_rng(0)
    scores, features = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    p = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    a = -p
    a[np.arange(6), p.argmax(1)] += 1.0  # onehot(y_hat) - p
    g = np.einsum("nk,nd->nkd", a, features).reshape(6, -1)  # built only here
    explicit = ((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    emb = _Embeddings(scores, features, np.arange(6))
    centers = _Centers(emb, 6)
    for j in range(6):
        centers.add(j)
    np.testing.assert_allclose(centers.distances(np.arange(6), 0, 6), explicit, atol=1e-5)
    np.testing.assert_allclose(emb.g_sq, (g * g).sum(1), rtol=1e-5)


def test_first_pick_is_the_largest_gradient_and_a_duplicate_of_a_center_is_never_drawn():
    """Probabilities (rows on the simplex) used as they are. Samples 1 and 2 (copies) are the least confident with
    the largest features: they tie for the largest ||g||, one is picked first (the tie broken at random); the
    other, at distance 0, is never drawn next; the labeled sample 0, though largest, is never a candidate."""
    scores = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.8, 0.2]])
    features = np.array([[9.0, 9.0], [3.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labeled = np.array([True, False, False, False, False])
    firsts = set()
    for seed in range(20):
        sel = select(badge, scores=scores, features=features, labeled_mask=labeled, budget=2, rng=np.random.default_rng(seed))
        assert sel.indices[0] in (1, 2) and sel.indices[1] in (3, 4)
        firsts.add(int(sel.indices[0]))
    assert firsts == {1, 2}  # the tie goes either way


def test_d2_sampling_draws_in_proportion_to_squared_distance():
    """Logits 0, 0 (softmax 1/2, 1/2): a = (1/2, -1/2), ||a||² = 1/2 for every sample, so g = a ⊗ h with
    h = (3, 2, 0) / sqrt(1/2) gives ||g|| = 3, 2, 0: sample 0 first; then squared distances 1 (sample 1) and
    9 (sample 2): sample 2 drawn 90% of the time."""
    scores = np.zeros((3, 2))
    features = np.array([[3.0], [2.0], [0.0]]) / np.sqrt(0.5)
    picks = [select(badge, scores=scores, features=features, labeled_mask=np.zeros(3, bool), budget=2,
                   rng=np.random.default_rng(s)).indices for s in range(4000)]
    picks = np.array(picks)
    assert (picks[:, 0] == 0).all()  # the largest ||g||
    share = np.mean(picks[:, 1] == 2)
    assert abs(share - 0.9) < 0.02


def test_under_ft_th_the_embedding_uses_the_models_own_probabilities():
    """FT-th's scores are prior-rescaled; BADGE's g needs the model's softmax (over the head's logits): it picks
    exactly what it picks when handed those probabilities directly, and not what the rescaled ones give."""
    from alimb.schemes.finetune import threshold

    rng = np.random.default_rng(0)
    h = rng.normal(size=(300, 6)).astype(np.float32)
    w, b = rng.normal(size=(6, 4)), rng.normal(size=4)
    logits = h.astype(np.float64) @ w + b
    own = np.exp(logits - logits.max(1, keepdims=True))
    own /= own.sum(1, keepdims=True)
    rescaled = threshold(own, np.array([40, 10, 5, 1]))
    mask = np.zeros(300, dtype=bool)
    mask[:20] = True
    common = dict(features=h, labeled_mask=mask, budget=15)
    with_head = select(badge, scores=rescaled, head=(w, b), rng=np.random.default_rng(1), **common).indices
    expected = select(badge, scores=own, rng=np.random.default_rng(1), **common).indices
    np.testing.assert_array_equal(with_head, expected)
    assert not np.array_equal(select(badge, scores=rescaled, rng=np.random.default_rng(1), **common).indices, expected)
