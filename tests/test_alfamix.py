"""ALFA-Mix: hand-checked steps, and picks against transcriptions of the foundation-models code's closed form and of the
CVPR authors' code (learned α and their closed form), edge cases included (anchors of classes without labels, fewer
candidates than the budget, the 0/0 of the foundation-models α)."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alimb.acquisition import alfamix
from alimb.acquisition.mixing import _Head, anchor_means, cap_steps, closed_form_reach
from alimb.errors import UserError
from tests.helpers import select
from tests.test_dropquery import cluster_features


class LinearModel:
    """The probes of both codes as their query methods see them: features -> embedding (the foundation-models probe's
    BatchNorm is affine at inference and folded into the linear layer; the CVPR nets' embedding is the head's input),
    embedding -> logits by one linear layer."""

    def __init__(self, w, b, dtype):
        self.linear = torch.nn.Linear(w.shape[0], w.shape[1]).to(dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(w.T))
            self.linear.bias.copy_(torch.as_tensor(b))
        self.dtype = dtype

    def get_embedding(self, features):
        return torch.as_tensor(features, dtype=self.dtype)

    def get_alpha_grad(self, features):  # base_classifier.py predict_step with pred_mode [probs, embed, grad]
        embedding = torch.as_tensor(features, dtype=self.dtype).clone().requires_grad_()
        logits = self.linear(embedding)
        probs = logits.softmax(dim=1)
        loss = F.cross_entropy(logits, logits.argmax(dim=1), reduction="sum")
        grad = torch.autograd.grad(loss, embedding)[0]
        return probs.detach(), embedding.detach(), grad

    def clf(self, embedding, embedding_flag=True):  # the CVPR nets' clf(x, embedding=True) -> (out, emb)
        return self.linear(embedding), embedding


# ---- a transcription of sanketx/AL-foundation-models at aa015d2, ALFM/src/query_strategies/alfamix.py (AlfaMix),
# kept to the authors' structure (the GPU moves and the 512 000-row chunks, which change nothing, left out); numpy's
# global random state replaced by a Generator called in the same order; cluster_features is the transcription in
# tests/test_dropquery.py. ----
class AlfaMix:
    def __init__(self, features, labels, labeled_pool, model, rng, eps_scale=0.2):
        self.features, self.labels, self.labeled_pool, self.model, self.rng = features, labels, labeled_pool, model, rng
        D = features.shape[1]
        self.eps = eps_scale / np.sqrt(D)

    def _get_anchors(self, features, labels):
        seen_classes = len(np.unique(labels))
        anchors = []
        for i in range(seen_classes):
            anchor = features[labels == i].mean(dim=0)
            anchors.append(anchor)
        return torch.stack(anchors)

    def _get_candidates(self, z_u, z_star, z_grad, y_star):
        candidates = torch.zeros_like(y_star, dtype=torch.bool)
        grad_norm = torch.norm(z_grad, dim=1, keepdim=True)
        for z_s in z_star:
            current = torch.nonzero(~candidates).flatten()
            z, ys, zg, zg_norm = z_u[current], y_star[current], z_grad[current], grad_norm[current]
            z_diff = z_s - z
            diff_norm = torch.norm(z_diff, dim=1, keepdim=True)
            alpha = self.eps * diff_norm * zg / (zg_norm * z_diff)
            z_lerp = alpha * z_s + (1 - alpha) * z
            probs = self.model.linear(z_lerp).softmax(dim=1)
            y_pred = torch.argmax(probs, dim=1)
            mismatch_idx = torch.nonzero(y_pred != ys).flatten()
            candidates[current[mismatch_idx]] = True
        return torch.nonzero(candidates).flatten()

    def _random_samples(self, candidates, num_samples):
        num_unlabeled = np.count_nonzero(~self.labeled_pool)
        unlabeled_pool = torch.ones(num_unlabeled, dtype=torch.bool)
        unlabeled_pool[candidates] = False
        remaining = torch.nonzero(unlabeled_pool).flatten()
        idx = self.rng.choice(len(remaining), num_samples, replace=False)
        return remaining[idx]

    def query(self, num_samples):
        unlabeled_indices = np.flatnonzero(~self.labeled_pool)
        z_l = self.model.get_embedding(self.features[self.labeled_pool])
        z_star = self._get_anchors(z_l, self.labels[self.labeled_pool].flatten())
        probs, z_u, grads = self.model.get_alpha_grad(self.features[~self.labeled_pool])
        y_star = probs.argmax(dim=1)
        candidates = self._get_candidates(z_u, z_star, grads, y_star)
        self.num_candidates = len(candidates)
        if len(candidates) < num_samples:
            delta = num_samples - len(candidates)
            candidates = torch.cat([candidates, self._random_samples(candidates, delta)])
            selected = torch.ones(len(candidates), dtype=torch.bool)
        else:
            candidate_vectors = F.normalize(z_u[candidates]).numpy().astype(np.float64)
            selected, _ = cluster_features(candidate_vectors, num_samples, self.rng)
            selected = torch.as_tensor(selected)
        mask = np.zeros(len(self.features), dtype=bool)
        mask[unlabeled_indices[candidates[selected].numpy()]] = True
        return mask


class AlfaMixByLabeledClass(AlfaMix):
    """The transcription with the anchor indexing fixed (one anchor per labeled class): what alimb's default runs."""

    def _get_anchors(self, features, labels):
        return torch.stack([features[labels == i].mean(dim=0) for i in np.unique(labels)])


# ---- a transcription of AminParvaneh/alpha_mix_active_learning at b79d954, query_strategies/alpha_mix_sampling.py
# (AlphaMixSampling.query, find_candidate_set, calculate_optimum_alpha, sample, generate_alpha, clamp_alpha,
# learn_alpha; the tensorboard writes and prints left out), kept to the authors' structure with their torch autograd
# and Adam; numpy's and torch's global random states replaced by a Generator called in the same order
# (torch.normal(m, s) -> rng.standard_normal(float32) * s + m; KMeans's unseeded random_state -> one rng.integers;
# np.random.choice -> rng.choice). ----
class Args:
    def __init__(self, n_label, **kw):
        self.n_label, self.alpha_cap, self.alpha_opt, self.alpha_closed_form_approx = n_label, 0.03125, False, False
        self.alpha_learning_rate, self.alpha_clf_coef, self.alpha_l2_coef = 0.1, 1.0, 0.01
        self.alpha_learning_iters, self.alpha_learn_batch_size = 5, 1000000
        self.__dict__.update(kw)


class AlphaMixSampling:
    def __init__(self, X, Y, idxs_lb, model, args, rng):
        self.X, self.Y, self.idxs_lb, self.model, self.args, self.rng = X, Y, idxs_lb, model, args, rng
        self.n_pool, self.device = len(Y), "cpu"

    def predict_prob_embed(self, X):
        emb = torch.as_tensor(X, dtype=torch.float32)
        return torch.softmax(self.model.clf(emb)[0], dim=1).detach(), emb

    def query(self, n):
        idxs = self.idxs_lb
        idxs_unlabeled = np.arange(self.n_pool)[~idxs]
        ulb_probs, org_ulb_embedding = self.predict_prob_embed(self.X[idxs_unlabeled])
        probs_sorted, probs_sort_idxs = ulb_probs.sort(descending=True)
        pred_1 = probs_sort_idxs[:, 0]
        lb_probs, org_lb_embedding = self.predict_prob_embed(self.X[self.idxs_lb])
        ulb_embedding, lb_embedding = org_ulb_embedding, org_lb_embedding
        unlabeled_size, embedding_size = ulb_embedding.size(0), ulb_embedding.size(1)
        min_alphas = torch.ones((unlabeled_size, embedding_size), dtype=torch.float)
        candidate = torch.zeros(unlabeled_size, dtype=torch.bool)
        if self.args.alpha_closed_form_approx:
            var_emb = ulb_embedding.clone().requires_grad_()
            out, _ = self.model.clf(var_emb, embedding=True) if False else self.model.clf(var_emb)
            loss = F.cross_entropy(out, pred_1)
            grads = torch.autograd.grad(loss, var_emb)[0].data
        else:
            grads = None
        alpha_cap = 0.
        while alpha_cap < 1.0:
            alpha_cap += self.args.alpha_cap
            tmp_pred_change, tmp_min_alphas = self.find_candidate_set(
                lb_embedding, ulb_embedding, pred_1, ulb_probs, alpha_cap=alpha_cap, Y=self.Y[self.idxs_lb],
                grads=grads)
            is_changed = min_alphas.norm(dim=1) >= tmp_min_alphas.norm(dim=1)
            min_alphas[is_changed] = tmp_min_alphas[is_changed]
            candidate += tmp_pred_change
            if candidate.sum() > n:
                break
        self.num_candidates = int(candidate.sum())
        if candidate.sum() > 0:
            c_alpha = F.normalize(org_ulb_embedding[candidate].view(candidate.sum(), -1), p=2, dim=1).detach()
            selected_idxs = self.sample(min(n, candidate.sum().item()), feats=c_alpha)
            selected_idxs = idxs_unlabeled[candidate.numpy()][selected_idxs]
        else:
            selected_idxs = np.array([], dtype=int)
        self.n_clustered = len(selected_idxs)
        if len(selected_idxs) < n:
            remained = n - len(selected_idxs)
            idx_lb = copy.deepcopy(self.idxs_lb)
            idx_lb[selected_idxs] = True
            selected_idxs = np.concatenate([selected_idxs, self.rng.choice(np.where(idx_lb == 0)[0], remained)])
        return np.array(selected_idxs)

    def find_candidate_set(self, lb_embedding, ulb_embedding, pred_1, ulb_probs, alpha_cap, Y, grads):
        unlabeled_size, embedding_size = ulb_embedding.size(0), ulb_embedding.size(1)
        min_alphas = torch.ones((unlabeled_size, embedding_size), dtype=torch.float)
        pred_change = torch.zeros(unlabeled_size, dtype=torch.bool)
        if self.args.alpha_closed_form_approx:
            alpha_cap /= np.sqrt(embedding_size)
        for i in range(self.args.n_label):
            emb = lb_embedding[torch.as_tensor(Y == i)]
            if emb.size(0) == 0:
                emb = lb_embedding
            anchor_i = emb.mean(dim=0).view(1, -1).repeat(unlabeled_size, 1)
            if self.args.alpha_closed_form_approx:
                alpha = self.calculate_optimum_alpha(alpha_cap, anchor_i, ulb_embedding, grads)
                embedding_mix = (1 - alpha) * ulb_embedding + alpha * anchor_i
                out, _ = self.model.clf(embedding_mix)
                pc = out.detach().argmax(dim=1) != pred_1
            else:
                alpha = self.generate_alpha(unlabeled_size, embedding_size, alpha_cap)
                if self.args.alpha_opt:
                    alpha, pc = self.learn_alpha(ulb_embedding, pred_1, anchor_i, alpha, alpha_cap)
                else:
                    embedding_mix = (1 - alpha) * ulb_embedding + alpha * anchor_i
                    out, _ = self.model.clf(embedding_mix)
                    pc = out.detach().argmax(dim=1) != pred_1
            alpha[~pc] = 1.
            pred_change[pc] = True
            is_min = min_alphas.norm(dim=1) > alpha.norm(dim=1)
            min_alphas[is_min] = alpha[is_min]
        return pred_change, min_alphas

    def calculate_optimum_alpha(self, eps, lb_embedding, ulb_embedding, ulb_grads):
        z = (lb_embedding - ulb_embedding)
        alpha = (eps * z.norm(dim=1) / ulb_grads.norm(dim=1)).unsqueeze(dim=1).repeat(1, z.size(1)) * ulb_grads / (
            z + 1e-8)
        return alpha

    def sample(self, n, feats):
        from sklearn.cluster import KMeans

        feats = feats.numpy()
        cluster_learner = KMeans(n_clusters=n, n_init=10, random_state=int(self.rng.integers(2**31 - 1)))
        cluster_learner.fit(feats)
        cluster_idxs = cluster_learner.predict(feats)
        centers = cluster_learner.cluster_centers_[cluster_idxs]
        dis = ((feats - centers) ** 2).sum(axis=1)
        return np.array([np.arange(feats.shape[0])[cluster_idxs == i][dis[cluster_idxs == i].argmin()]
                         for i in range(n) if (cluster_idxs == i).sum() > 0])

    def generate_alpha(self, size, embedding_size, alpha_cap):
        alpha = torch.as_tensor(self.rng.standard_normal((size, embedding_size), dtype=np.float32)
                                * np.float32(alpha_cap / 2.0) + np.float32(alpha_cap / 2.0))
        alpha[torch.isnan(alpha)] = 1
        return self.clamp_alpha(alpha, alpha_cap)

    def clamp_alpha(self, alpha, alpha_cap):
        return torch.clamp(alpha, min=1e-8, max=alpha_cap)

    def learn_alpha(self, org_embed, labels, anchor_embed, alpha, alpha_cap):
        min_alpha = torch.ones(alpha.size(), dtype=torch.float)
        pred_changed = torch.zeros(labels.size(0), dtype=torch.bool)
        loss_func = torch.nn.CrossEntropyLoss(reduction='none')
        for i in range(self.args.alpha_learning_iters):
            for b in range(int(np.ceil(float(alpha.size(0)) / self.args.alpha_learn_batch_size))):
                start_idx = b * self.args.alpha_learn_batch_size
                end_idx = min((b + 1) * self.args.alpha_learn_batch_size, alpha.size(0))
                l = alpha[start_idx:end_idx].clone().requires_grad_()
                opt = torch.optim.Adam([l], lr=self.args.alpha_learning_rate / (
                    1. if i < self.args.alpha_learning_iters * 2 / 3 else 10.))
                e = org_embed[start_idx:end_idx]
                c_e = anchor_embed[start_idx:end_idx]
                embedding_mix = (1 - l) * e + l * c_e
                out, _ = self.model.clf(embedding_mix)
                label_change = out.argmax(dim=1) != labels[start_idx:end_idx]
                tmp_pc = torch.zeros(labels.size(0), dtype=torch.bool)
                tmp_pc[start_idx:end_idx] = label_change
                pred_changed[start_idx:end_idx] += tmp_pc[start_idx:end_idx].detach()
                tmp_pc[start_idx:end_idx] = tmp_pc[start_idx:end_idx] * (
                    l.norm(dim=1) < min_alpha[start_idx:end_idx].norm(dim=1))
                min_alpha[tmp_pc] = l[tmp_pc[start_idx:end_idx]].detach()
                clf_loss = loss_func(out, labels[start_idx:end_idx])
                l2_nrm = torch.norm(l, dim=1)
                clf_loss *= -1
                loss = self.args.alpha_clf_coef * clf_loss + self.args.alpha_l2_coef * l2_nrm
                loss.sum().backward(retain_graph=True)
                opt.step()
                l = self.clamp_alpha(l, alpha_cap)
                alpha[start_idx:end_idx] = l.detach()
        return min_alpha, pred_changed


def _problem(seed, n, d, c, n_labeled, classes=None, relu=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    x = rng.normal(size=(n, d)) + 2.0 * np.eye(c, d)[y]
    if relu:
        x = np.maximum(x, 0.0)
        x[:, -1] = 0.0  # a unit no sample activates: every anchor agrees with every sample there
    w = rng.normal(size=(d, c)) + 2 * np.eye(d, c)
    b = rng.normal(size=c) * 0.1
    pool = np.arange(n) if classes is None else np.flatnonzero(np.isin(y, classes))
    labeled = np.zeros(n, dtype=bool)
    labeled[rng.choice(pool, n_labeled, replace=False)] = True
    return x.astype(np.float32), y, w.astype(np.float32), b.astype(np.float32), labeled


def ours(x, y, w, b, labeled, budget, seed, **options):
    return select(alfamix, features=x, head=(w, b), labels=np.where(labeled, y, -1), labeled_mask=labeled,
                  n_classes=w.shape[1], budget=budget, rng=np.random.default_rng(seed), **options)


def alfm(cls, x, y, w, b, labeled, budget, seed, dtype=torch.float64):
    q = cls(x.astype(np.float64) if dtype == torch.float64 else x, y, labeled, LinearModel(w, b, dtype),
            np.random.default_rng(seed))
    return set(np.flatnonzero(q.query(budget)).tolist()), q


# ---- the foundation-models closed form ----
@pytest.mark.parametrize("seed, n, d, c, n_labeled, budget", [
    (0, 400, 8, 5, 60, 10),  # every class labeled: the two anchor rules agree
    (1, 300, 6, 4, 40, 25),
    (2, 500, 16, 8, 80, 40),
])
def test_closed_form_picks_match_the_foundation_models_code(seed, n, d, c, n_labeled, budget):
    x, y, w, b, labeled = _problem(seed, n, d, c, n_labeled)
    assert np.unique(y[labeled]).size == c
    theirs, q = alfm(AlfaMix, x, y, w, b, labeled, budget, seed + 100)
    sel = ours(x, y, w, b, labeled, budget, seed + 100)
    assert sel.info["n_candidates"] == q.num_candidates >= budget
    assert set(sel.indices.tolist()) == theirs


def test_fewer_candidates_than_the_budget_are_all_taken_and_filled_as_the_foundation_models_code():
    x, y, w, b, labeled = _problem(3, 300, 6, 4, 40)
    theirs, q = alfm(AlfaMix, x, y, w, b, labeled, 120, 5)
    sel = ours(x, y, w, b, labeled, 120, 5)
    assert 0 < q.num_candidates == sel.info["n_candidates"] < 120
    assert set(sel.indices.tolist()) == theirs


def test_labeled_classes_with_gaps_the_anchor_bug_and_its_fix():
    """Classes 1, 2, 4 of 5 labeled: their code anchors classes 0, 1, 2; class 0 has no labeled sample, its anchor
    is NaN, every mix with it is predicted class 0, and every sample predicted otherwise becomes a candidate; class 4
    gets no anchor. alimb's default anchors classes 1, 2, 4 (the transcription with that indexing fixed);
    anchors=foundation_models reproduces theirs."""
    x, y, w, b, labeled = _problem(4, 400, 8, 5, 50, classes=[1, 2, 4])
    theirs, q = alfm(AlfaMix, x, y, w, b, labeled, 20, 9)
    y_star = (x[~labeled] @ w + b).argmax(axis=1)
    assert q.num_candidates >= int((y_star != 0).sum())  # the NaN anchor's doing
    faithful = ours(x, y, w, b, labeled, 20, 9, anchors="foundation_models")
    assert faithful.info["n_candidates"] == q.num_candidates and set(faithful.indices.tolist()) == theirs
    fixed, q_fixed = alfm(AlfaMixByLabeledClass, x, y, w, b, labeled, 20, 9)
    sel = ours(x, y, w, b, labeled, 20, 9)
    assert sel.info["n_candidates"] == q_fixed.num_candidates < q.num_candidates
    assert set(sel.indices.tolist()) == fixed


def test_a_coordinate_where_sample_and_anchor_agree_is_their_zero_division():
    """ReLU-like features with a unit at 0 everywhere: their α is 0/0 there, the mix NaN, predicted class 0.
    alimb's exact mix has no division (the default); anchors=foundation_models reproduces their arithmetic."""
    x, y, w, b, labeled = _problem(5, 300, 6, 4, 40, relu=True)
    theirs, q = alfm(AlfaMix, x, y, w, b, labeled, 15, 2)  # every class labeled: the anchor bug plays no part
    y_star = (x[~labeled] @ w + b).argmax(axis=1)
    assert q.num_candidates >= int((y_star != 0).sum())
    faithful = ours(x, y, w, b, labeled, 15, 2, anchors="foundation_models")
    assert faithful.info["n_candidates"] == q.num_candidates and set(faithful.indices.tolist()) == theirs
    assert ours(x, y, w, b, labeled, 15, 2).info["n_candidates"] < q.num_candidates


# ---- the CVPR code ----
def cvpr(x, y, w, b, labeled, budget, seed, **args):
    q = AlphaMixSampling(x, y, labeled, LinearModel(w, b, torch.float32), Args(w.shape[1], **args),
                         np.random.default_rng(seed))
    return q.query(budget), q


LEARNED = dict(alpha="learned", alpha_cap=0.03125, grow_cap=True, anchors="every_class", kmeans="sklearn")


@pytest.mark.parametrize("seed, n, d, c, n_labeled, budget, classes, iters, shift", [
    (0, 300, 6, 4, 40, 10, None, 5, 0.0),     # more candidates than the budget at some cap: KMeans over them
    (1, 300, 6, 4, 30, 12, [0, 1, 3], 5, 0.0),  # class 2 without labels: anchored at the mean of all labeled samples
    # one labeled class, most predicted as it: the cap grows to 0.375 before more than 60 change, where a step of
    # 0.1 no longer pins α to its bounds; 9 steps, the last three at a tenth of the rate, two of them checked
    (2, 200, 6, 4, 20, 60, [0], 9, 4.0),
])
def test_learned_alpha_picks_match_the_cvpr_code(seed, n, d, c, n_labeled, budget, classes, iters, shift):
    x, y, w, b, labeled = _problem(seed, n, d, c, n_labeled, classes=classes)
    b[0] += shift
    theirs, q = cvpr(x, y, w, b, labeled, budget, seed + 100, alpha_opt=True, alpha_learning_iters=iters)
    sel = ours(x, y, w, b, labeled, budget, seed + 100, **LEARNED, learning_iters=iters)
    assert sel.info["n_candidates"] == q.num_candidates > budget and q.n_clustered == budget
    assert sorted(sel.indices.tolist()) == sorted(theirs.tolist())


def test_learned_alpha_with_few_candidates_fills_without_repeats():
    """The cap reaches 1 with fewer candidates than the budget: both take every candidate; their fill draws with
    replacement (a batch can repeat a sample), alimb's without."""
    x, y, w, b, labeled = _problem(2, 200, 6, 4, 20, classes=[0])
    b[0] += 4.0  # nearly everything predicted class 0, the only labeled class, whose anchor every class takes
    theirs, q = cvpr(x, y, w, b, labeled, 100, 7, alpha_opt=True)
    sel = ours(x, y, w, b, labeled, 100, 7, **LEARNED)
    assert 0 < sel.info["n_candidates"] == q.num_candidates < 100 and sel.info["cap"] >= 1.0
    assert set(theirs[:q.n_clustered].tolist()) <= set(sel.indices.tolist())
    assert np.unique(sel.indices).size == 100 and not labeled[sel.indices].any()


def test_the_cvpr_closed_form_with_its_growing_cap_matches():
    """--alpha_closed_form_approx --alpha_cap 0.2 (their README): caps 0.2, 0.4, ... until more than the budget."""
    x, y, w, b, labeled = _problem(6, 300, 6, 4, 40)
    theirs, q = cvpr(x, y, w, b, labeled, 160, 3, alpha_closed_form_approx=True, alpha_cap=0.2)
    sel = ours(x, y, w, b, labeled, 160, 3, grow_cap=True, anchors="every_class", kmeans="sklearn")
    assert sel.info["n_candidates"] == q.num_candidates > 160 and sel.info["cap"] > 0.2
    assert sorted(sel.indices.tolist()) == sorted(theirs.tolist())


# ---- the defining steps on cases worked out by hand ----
def test_the_closed_form_flip_by_hand():
    """W = I, b = 0 in 2-d. u1 = (1, 0.9): y* = 0, g = (p - e0) = p1 (-1, 1), the logits move along (-1, 1)/√2
    and class 1 gains √2 per unit step on a gap of 0.1: it overtakes at 0.1/√2. u2 = (1, 1.2): y* = 1, gap 0.2,
    at 0.2/√2.
    Anchors (one labeled sample each) (1, 0.5) and (1.3, 0.9): farthest from u1 at 0.4, from u2 at 0.7. With
    ε = cap/√2 a flip needs cap × 0.4 > 0.1 (u1), cap × 0.7 > 0.2 (u2): cap 0.2 none, 0.26 u1, 0.3 both."""
    x = np.array([[1.0, 0.9], [1.0, 1.2], [1.0, 0.5], [1.3, 0.9]], dtype=np.float32)
    labeled = np.array([False, False, True, True])
    labels = np.array([-1, -1, 0, 1])
    head = (np.eye(2, dtype=np.float32), np.zeros(2, dtype=np.float32))
    anchors = anchor_means(x, labels, labeled, 2, "labeled")
    step, reach = closed_form_reach(x, np.array([0, 1]), _Head(head, torch.device("cpu")), anchors,
                                    torch.device("cpu"))
    np.testing.assert_allclose(step, [0.1 / np.sqrt(2), 0.2 / np.sqrt(2)], rtol=1e-5)
    np.testing.assert_allclose(reach, [0.4, 0.7], rtol=1e-5)
    for cap, expected in ((0.2, 0), (0.26, 1), (0.3, 2)):
        sel = select(alfamix, features=x, head=head, labels=labels, labeled_mask=labeled, n_classes=2, budget=1,
                     rng=np.random.default_rng(0), alpha_cap=cap)
        assert sel.info["n_candidates"] == expected
        if expected == 1:
            assert sel.indices.tolist() == [0]


def test_anchor_rules_by_hand():
    """Labeled: class 1 at (0, 2) and (2, 2), class 3 at (4, 4); 4 classes."""
    x = np.array([[0, 2], [2, 2], [4, 4], [9, 9]], dtype=np.float32)
    labels, labeled = np.array([1, 1, 3, -1]), np.array([True, True, True, False])
    np.testing.assert_array_equal(anchor_means(x, labels, labeled, 4, "labeled"), [[1, 2], [4, 4]])
    every = anchor_means(x, labels, labeled, 4, "every_class")
    np.testing.assert_allclose(every, [[2, 8 / 3], [1, 2], [2, 8 / 3], [4, 4]], rtol=1e-6)
    theirs = anchor_means(x, labels, labeled, 4, "foundation_models")  # classes 0, 1: class 0 has no labels
    assert np.isnan(theirs[0]).all() and theirs[1].tolist() == [1, 2] and len(theirs) == 2


def test_the_cap_grows_as_the_cvpr_loop():
    assert cap_steps(0.2, True) == [0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    assert cap_steps(0.3, True)[-1] == pytest.approx(1.2) and cap_steps(0.2, False) == [0.2]
    assert len(cap_steps(0.03125, True)) == 32


def test_no_labeled_sample_means_no_anchor_and_a_random_batch():
    x, y, w, b, _ = _problem(7, 100, 4, 3, 0)
    sel = ours(x, y, w, b, np.zeros(100, dtype=bool), 10, 0)
    assert sel.info["n_candidates"] == 0 and np.unique(sel.indices).size == 10


def test_learned_alpha_with_their_anchor_indexing_is_refused_in_one_line():
    x, y, w, b, labeled = _problem(7, 100, 4, 3, 20)
    with pytest.raises(UserError, match="anchors=foundation_models"):
        ours(x, y, w, b, labeled, 10, 0, alpha="learned", anchors="foundation_models")


@pytest.mark.parametrize("cap, iters", [(1.0, 9), (0.5, 6), (1.0, 5)])
def test_learned_alpha_for_one_anchor_matches_their_learn_alpha(cap, iters):
    """generate_alpha + learn_alpha for one anchor at a cap the growth reaches late, where α is not pinned to its
    bounds after the first step (a fresh Adam's first step moves each coordinate by about lr = 0.1): the samples
    whose prediction changed in any check, sample by sample, with torch's Adam and autograd on their side."""
    from alimb.acquisition.mixing import learned_flips

    x, y, w, b, labeled = _problem(0, 300, 6, 4, 40)
    pool = np.flatnonzero(~labeled)
    anchor = anchor_means(x, np.where(labeled, y, -1), labeled, 4, "every_class")[2]
    q = AlphaMixSampling(x, y, labeled, LinearModel(w, b, torch.float32), Args(4, alpha_learning_iters=iters),
                         np.random.default_rng(1))
    e = torch.as_tensor(x[pool])
    y_star = q.model.clf(e)[0].argmax(dim=1)
    alpha = q.generate_alpha(len(pool), x.shape[1], cap)
    _, theirs = q.learn_alpha(e, y_star, torch.as_tensor(anchor).repeat(len(pool), 1), alpha, cap)
    flips = learned_flips(x, pool, _Head((w, b), torch.device("cpu")), torch.as_tensor(anchor), cap, iters, 0.1, 1.0,
                          0.01, np.random.default_rng(1), torch.device("cpu"))
    assert 0 < flips.sum() < len(pool)
    np.testing.assert_array_equal(flips, theirs.numpy())
