"""ALFA-Mix (Parvaneh et al., "Active Learning by Feature Mixing", CVPR 2022): unlabeled samples whose prediction
changes when their features are mixed a little with the labeled classes' anchors, spread out by k-means.

Two codes run it, and alimb runs either.

The foundation-models code's closed form (`alfamix`, the default; sanketx/AL-foundation-models at aa015d2,
ALFM/src/query_strategies/alfamix.py, a baseline of Gupta et al. 2024). Anchors z*_c: the mean of the labeled
samples' features per class (lines 24-34); y*: the head's prediction of each unlabeled sample z; g: the gradient with
respect to z of the cross-entropy of the head's logits against y* (base_classifier.py `predict_step`, `grad`); for
every anchor the mix z~ = α z* + (1 - α) z with, per coordinate, α = ε ||z* - z|| g / (||g|| (z* - z)),
ε = 0.2 / √d (lines 22, 63-66); a candidate is a sample for which the head predicts some mix as another class than
y* (68-71). The batch (122-133): their `cluster_features` over the candidates' unit rows, or all candidates and a
random fill when there are fewer than the budget (alimb.acquisition.centroids, which says where alimb's k-means
differs from faiss's).

The CVPR authors' learned α (`alpha: learned`, conf/acquisition/alfamix_learned.yaml; AminParvaneh/
alpha_mix_active_learning at b79d954, query_strategies/alpha_mix_sampling.py, main.py's defaults, README's
`--alpha_opt`): for a cap growing by `alpha_cap` (0.03125) from 0 while it is below 1 (lines 48-66), for every class,
α drawn per coordinate from N(cap/2, cap/2) and clamped to [1e-8, cap] (214-225), then `learning_iters` (5) steps,
each checking whether the mix (1 - α) z + α z*_c changes the prediction, then taking one step of a fresh Adam (lr
0.1, a tenth from 2/3 of the steps on) on -clf_coef CE(mix, y*) + l2_coef ||α|| and clamping again (227-273); a
sample that changed in any check is a candidate. The growth stops once there are more candidates than the budget
(65). A class without labeled samples is anchored at the mean of all labeled ones (152-156). The batch: scikit-learn's
KMeans(n_clusters=budget) over the candidates' unit rows, each cluster's member nearest its center, as their `sample`
(198-209; they pin scikit-learn 0.23, whose defaults are k-means++ and n_init=10: alimb sets n_init=10, the installed
version runs it), then a random fill (88-93). A fresh Adam's first step moves each coordinate by about lr times the
sign of its gradient: at the default lr 0.1, above the first caps, α sits at 1e-8 or the cap after one step; and with
5 steps the one at a tenth of the rate comes after the last check, so it never counts. Their `--alpha_closed_form_
approx --alpha_cap 0.2` is `grow_cap: true, anchors: every_class, kmeans: sklearn` with the closed form.

Quirks, and how alimb handles them:
- The foundation-models code's anchors are the means of classes 0 .. s-1 for s labeled classes: when the labeled
  classes have gaps (class 3 labeled, class 2 not), the anchor of an unlabeled class below s is the mean of nothing
  (NaN, and so is every mix with it, which torch's argmax predicts as class 0: every sample predicted otherwise
  becomes a candidate), and the labeled classes from s on get no anchor. A bug: alimb's anchors are the labeled
  classes' means (`anchors: labeled`); `anchors: foundation_models` runs their indexing and their arithmetic.
- Their α divides by z* - z coordinate by coordinate: where a sample and an anchor agree in a coordinate (features
  after a ReLU share exact zeros) or g = 0, the mix is 0/0 = NaN, predicted class 0 as above. The mix is exactly
  z + ε ||z* - z|| g / ||g||, which alimb computes without the division; `anchors: foundation_models` divides as
  they do. (The CVPR code adds 1e-8 to the divisor; alimb's mix is that without the 1e-8.)
- In the closed form every anchor moves z along the same direction g / ||g||, by ε ||z* - z||, and the logits are
  linear along that line: a sample's prediction changes for some anchor exactly when it changes at the farthest
  anchor, i.e. when ε max_c ||z*_c - z|| exceeds the step at which another class first overtakes y*. alimb computes
  that (one distance GEMM against the anchors), not a head pass per anchor: the same candidates as their loop
  (tested), up to float rounding at exact ties. The direction is summed as sum_{k != y*} p_k (W_k - W_y*) with the
  p_k divided by the runner-up's (in float64 for rows where float32 still underflows): their float32 softmax - onehot
  underflows to 0 for very confident predictions, which their division turns into NaN, i.e. class 0.
- The CVPR code's random fill draws with replacement (`np.random.choice(..., remained)`), so a batch can hold a sample
  twice and label fewer than the budget; alimb draws without replacement (its batch is always the budget: not kept as
  an option). With at most as many candidates as the budget, their KMeans makes as many clusters as candidates: for
  distinct rows, each its own cluster; alimb takes them all.

In alimb. `ctx.features` are the z (the head's input: the penultimate layer for fine tuning, F_g for the SVM schemes)
and `ctx.head` the linear head (the SVMs' hyperplanes over F_g, whose decision values serve as the logits of the
softmax and cross-entropy the rule needs). y* is the head's argmax, so FT-th's prior rescaling takes no part. The
authors' global random states are replaced by the run's generator: the N(cap/2, cap/2) draws per cap and class in
their order (float32 standard normals, scaled), then the k-means (scikit-learn's random_state is one draw), then the
fill. Samples an enclosing AF excludes (`ctx.available()`) are neither candidates nor fill (the CVPR code's
`idxs_prohibited`). With no labeled sample there is no anchor and no candidate: the batch is random.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import torch

from alimb.acquisition.base import Context, Selection, row_blocks
from alimb.acquisition.centroids import candidates_or_fill, unit_rows_tensor
from alimb.devices import resolve_device
from alimb.errors import UserError
from alimb.options import Device, Doc, NonNegativeNumber, Positive, PositiveNumber


def anchor_means(features, labels: np.ndarray, labeled_mask: np.ndarray, n_classes: int, rule: str) -> np.ndarray:
    """(n_anchors, d) float32 class anchors by `rule` (see the module docstring); none without labeled samples."""
    lab = np.flatnonzero(labeled_mask)
    d = np.shape(features)[1]
    if lab.size == 0:
        return np.empty((0, d), dtype=np.float32)
    y = np.asarray(labels)[lab]
    z = np.asarray(features[lab], dtype=np.float64)
    order = np.argsort(y, kind="stable")
    present, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    means = np.add.reduceat(z[order], starts, axis=0) / counts[:, None]  # (len(present), d)
    if rule == "labeled":
        return means.astype(np.float32)
    classes = np.arange(n_classes if rule == "every_class" else present.size)  # foundation_models: 0 .. s-1
    out = np.full((classes.size, d), np.nan)
    if rule == "every_class":
        out[:] = z.mean(axis=0)  # a class without labeled samples: the mean of all labeled ones
    where = np.searchsorted(present, classes)
    found = (where < present.size) & (present[np.minimum(where, present.size - 1)] == classes)
    out[found] = means[where[found]]
    return out.astype(np.float32)


def cap_steps(alpha_cap: float, grow_cap: bool) -> list[float]:
    """The caps tried in turn: the CVPR code's `while cap < 1.0: cap += alpha_cap`, or alpha_cap alone."""
    if not grow_cap:
        return [alpha_cap]
    caps, cap = [], 0.0
    while cap < 1.0:
        cap += alpha_cap
        caps.append(cap)
    return caps


MAX_CAP_STEPS = 1000  # a growing cap: at most this many passes (the authors' step, 0.03125, takes 32)


def _check_alfamix(options: dict) -> None:
    """What no single option's type says, checked before any work (alimb.schema.validate)."""
    if options.get("alpha") == "learned" and options.get("anchors") == "foundation_models":
        raise UserError("acquisition alfamix: anchors=foundation_models is the foundation-models closed form's "
                        "indexing; with alpha=learned set anchors=labeled or every_class")
    cap = options.get("alpha_cap", 0.2)
    if options.get("grow_cap") and isinstance(cap, (int, float)) and cap > 0 and 1.0 / cap > MAX_CAP_STEPS:
        raise UserError(f"acquisition alfamix: alpha_cap={cap} with grow_cap=true would take {math.ceil(1 / cap)} "
                        f"passes to reach 1; set alpha_cap to at least {1 / MAX_CAP_STEPS} (the authors': 0.03125)")


class _Head:
    """The linear head on a device, and what the closed form needs of a block of rows."""

    def __init__(self, head: tuple, device: torch.device):
        self.w = torch.as_tensor(np.asarray(head[0], dtype=np.float32)).to(device)  # (d, K)
        self.b = torch.as_tensor(np.asarray(head[1], dtype=np.float32)).to(device)  # (K,)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b[None, :], z, self.w)

    def loss_gradient(self, z: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d CE(head(z), y) / dz: (softmax - onehot(y)) W^T, (B, d), in float32 as the authors' code."""
        p = torch.softmax(logits, dim=1)
        p[torch.arange(len(y), device=y.device), y] -= 1.0
        return p @ self.w.T

    def ascent_direction(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The unit vector along d CE(head(z), y) / dz = sum_{k != y} p_k (W_k - W_y), (B, d); NaN where it is 0.
        Each p_k is divided by the runner-up's, and rows whose float32 sum still underflows are summed in float64:
        where float32's softmax underflows, the direction is still the runner-up's."""
        g = self._direction(logits, y, self.w)
        small = g.abs().amax(dim=1) < 1e-30
        if bool(small.any()):
            g[small] = self._direction(logits[small].double(), y[small], self.w.double()).float()
        return g / torch.linalg.vector_norm(g, dim=1, keepdim=True)

    @staticmethod
    def _direction(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(y), device=y.device)
        q = logits.clone()
        q[rows, y] = -math.inf
        q = torch.exp(q - q.max(dim=1, keepdim=True).values)  # the runner-up 1, y* 0
        g = q @ w.T - q.sum(dim=1, keepdim=True) * w.T[y]
        return g / g.abs().amax(dim=1, keepdim=True)  # scaled to 1 at its largest: its norm cannot underflow


def _rows(features, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(features[rows], dtype=np.float32)).to(device)


def closed_form_reach(features, pool: np.ndarray, head: _Head, anchors: np.ndarray, device: torch.device):
    """Per sample of `pool`: the step along g/||g|| at which another class first overtakes y* (inf: never) and the
    largest distance to an anchor; a mix flips the prediction exactly when ε * distance > step. (2 x (len(pool),))
    float32 as the authors' code, in place over (rows, K) blocks."""
    step_needed = np.full(pool.size, np.inf)
    reach = np.full(pool.size, -np.inf)
    a = torch.as_tensor(anchors).to(device)
    a_sq = (a * a).sum(dim=1)
    for b in row_blocks(pool.size, max(np.shape(features)[1], head.w.shape[1], len(anchors))):
        z = _rows(features, pool[b], device)
        logits = head.logits(z)
        y = logits.argmax(dim=1)
        rows = torch.arange(len(y), device=y.device)
        closing = head.ascent_direction(logits, y) @ head.w  # d logits / d step along g / ||g||
        closing.sub_(closing[rows, y][:, None])
        gap = logits.neg_().add_(logits[rows, y][:, None].neg())  # y*'s lead over each class, >= 0 (logits reused)
        steps = gap.div_(closing.clamp_min_(0.0))  # a class that does not gain: x / 0 = inf (0 / 0 at y*: NaN)
        steps[rows, y] = math.inf
        steps = torch.nan_to_num_(steps, nan=math.inf)  # g = 0: no direction (the logits tie along it), never
        step_needed[b] = steps.min(dim=1).values.double().cpu().numpy()
        if len(anchors):
            sq = torch.addmm(a_sq[None, :], z, a.T, alpha=-2.0).max(dim=1).values + (z * z).sum(dim=1)
            reach[b] = sq.clamp_min(0.0).sqrt().double().cpu().numpy()
    return step_needed, reach


def literal_closed_form_flips(features, pool: np.ndarray, head: _Head, anchors: np.ndarray, eps: float,
                              device: torch.device) -> np.ndarray:
    """The foundation-models code's loop as written: per anchor, α per coordinate and the head's prediction of the
    mix, in float32 (NaN mixes predict class 0, as torch's argmax). (len(pool),) bool."""
    flips = np.zeros(pool.size, dtype=bool)
    a = torch.as_tensor(anchors).to(device)
    for b in row_blocks(pool.size, max(np.shape(features)[1], head.w.shape[1])):
        z = _rows(features, pool[b], device)
        logits = head.logits(z)
        y = logits.argmax(dim=1)
        g = head.loss_gradient(z, logits, y)
        g_norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)
        for z_s in a:
            z_diff = z_s - z
            alpha = eps * torch.linalg.vector_norm(z_diff, dim=1, keepdim=True) * g / (g_norm * z_diff)
            mix = alpha * z_s + (1 - alpha) * z
            flips[b] |= (head.logits(mix).argmax(dim=1) != y).cpu().numpy()
    return flips


def learned_flips(features, pool: np.ndarray, head: _Head, anchor: torch.Tensor, cap: float, iterations: int,
                  learning_rate: float, clf_coef: float, l2_coef: float, rng: np.random.Generator,
                  device: torch.device) -> np.ndarray:
    """The CVPR code's generate_alpha + learn_alpha for one anchor and cap: (len(pool),) bool, whether any of the
    `iterations` checks saw the mix's prediction differ from y*. Each step is a fresh Adam's first step, whose
    m̂ / (√v̂ + 1e-8) is g / (|g| + 1e-8); the gradients are written out (rows are independent: blocks of rows)."""
    flips = np.zeros(pool.size, dtype=bool)
    d = np.shape(features)[1]
    for b in row_blocks(pool.size, max(d, head.w.shape[1])):
        e = _rows(features, pool[b], device)
        y = head.logits(e).argmax(dim=1)
        alpha = rng.standard_normal((b.stop - b.start, d), dtype=np.float32) * np.float32(cap / 2) + np.float32(
            cap / 2)  # torch.normal(cap / 2, cap / 2)
        alpha = torch.as_tensor(alpha).to(device).clamp_(1e-8, cap)
        toward = anchor[None, :] - e  # d mix / d alpha
        changed = torch.zeros(len(y), dtype=torch.bool, device=device)
        rows = torch.arange(len(y), device=device)
        for i in range(iterations):
            lr = learning_rate / (1.0 if i < iterations * 2 / 3 else 10.0)
            logits = head.logits(torch.addcmul(e, alpha, toward))  # the mix (1 - α) e + α z*
            changed |= logits.argmax(dim=1) != y
            p = torch.softmax(logits, dim=1)
            p[rows, y] -= 1.0  # d CE / d logits
            grad = (p @ head.w.T).mul_(toward).mul_(-clf_coef)  # d (-clf_coef CE) / d α
            grad.addcdiv_(alpha, torch.linalg.vector_norm(alpha, dim=1, keepdim=True), value=l2_coef)  # + l2 ||α||
            alpha.addcdiv_(grad, grad.abs().add_(1e-8), value=-lr).clamp_(1e-8, cap)
        flips[b] = changed.cpu().numpy()
    return flips


def sklearn_batch(pool: np.ndarray, candidate: np.ndarray, budget: int, rng: np.random.Generator,
                  features) -> tuple[np.ndarray, int]:
    """The CVPR code's `sample` and fill: KMeans into `budget` clusters of the candidates' unit rows, each cluster's
    member nearest its center (clusters in order, empty ones passed), then a uniform fill from the rest of the pool;
    and how many the fill drew."""
    cand = np.flatnonzero(candidate)
    if cand.size <= budget:
        chosen = cand
    else:
        from sklearn.cluster import KMeans  # on use: scikit-learn costs a second of start-up

        x = unit_rows_tensor(features, pool[cand], torch.device("cpu")).numpy()
        seed = int(rng.integers(2**31 - 1))
        model = KMeans(n_clusters=budget, n_init=10, random_state=seed).fit(x)
        assign = model.predict(x)
        dist = ((x - model.cluster_centers_[assign]) ** 2).sum(axis=1)
        order = np.lexsort((np.arange(cand.size), dist, assign))
        first = order[np.r_[True, assign[order][1:] != assign[order][:-1]]]
        chosen = cand[first[np.argsort(assign[first], kind="stable")]]
    n_fill = budget - chosen.size
    if n_fill > 0:
        rest = np.setdiff1d(np.arange(pool.size), chosen)
        chosen = np.concatenate([chosen, rest[rng.choice(rest.size, n_fill, replace=False)]])
    return pool[chosen], n_fill


def alfamix(
    ctx: Context, *,
    alpha: Annotated[Literal["closed_form", "learned"], Doc(
        "closed_form: the gradient's closed form (the foundation-models code); learned: α optimised by gradient "
        "steps (the CVPR authors' --alpha_opt)")] = "closed_form",
    alpha_cap: Annotated[PositiveNumber, Doc(
        "closed form: ε = alpha_cap / √d (both codes: 0.2); learned: the cap's step (the authors': 0.03125)")] = 0.2,
    grow_cap: Annotated[bool, Doc("raise the cap by alpha_cap until more samples than the budget are candidates "
                                  "or it reaches 1, as the CVPR code; false: one pass at alpha_cap")] = False,
    anchors: Annotated[Literal["labeled", "every_class", "foundation_models"], Doc(
        "labeled: the mean of each labeled class; every_class: every class, one without labels at the mean of all "
        "labeled samples (CVPR); foundation_models: their indexing and arithmetic, bug included")] = "labeled",
    learning_iters: Annotated[Positive, Doc("learned α: checks and Adam steps per class and cap (the authors': "
                                            "5)")] = 5,
    learning_rate: Annotated[PositiveNumber, Doc("learned α: Adam's step, a tenth for the last third")] = 0.1,
    clf_coef: Annotated[NonNegativeNumber, Doc("learned α: weight of the cross-entropy it raises")] = 1.0,
    l2_coef: Annotated[NonNegativeNumber, Doc("learned α: weight of ||α|| it keeps small")] = 0.01,
    kmeans: Annotated[Literal["foundation_models", "sklearn"], Doc(
        "the diversity step: the foundation-models code's (k-means++, faiss's Lloyd) or the CVPR code's "
        "(scikit-learn KMeans, n_init=10)")] = "foundation_models",
    kmeans_iterations: Annotated[Positive, Doc("foundation_models k-means: Lloyd iterations at most (faiss's "
                                               "niter)")] = 100,
    max_points_per_centroid: Annotated[Positive, Doc("foundation_models k-means: trains on at most this many "
                                                     "candidates per centroid (faiss's setting)")] = 512,
    device: Device = "auto",
) -> Selection:
    """Candidates whose prediction a small mix with a class anchor changes; one per k-means cluster."""
    ctx.need("alfamix", "features", "head")
    _check_alfamix({"alpha": alpha, "anchors": anchors, "alpha_cap": alpha_cap, "grow_cap": grow_cap})  # a direct call
    pool = ctx.pool()
    device = resolve_device(device)
    head = _Head(ctx.head, device)
    anchor = anchor_means(ctx.features, ctx.labels, ctx.labeled_mask, ctx.n_classes, anchors)
    d = np.shape(ctx.features)[1]
    candidate = np.zeros(pool.size, dtype=bool)
    caps = cap_steps(alpha_cap, grow_cap)
    if alpha == "closed_form" and anchors != "foundation_models":
        step_needed, reach = closed_form_reach(ctx.features, pool, head, anchor, device)
    for cap in caps:
        if alpha == "learned":
            for a in torch.as_tensor(anchor).to(device):
                candidate |= learned_flips(ctx.features, pool, head, a, cap, learning_iters, learning_rate, clf_coef,
                                           l2_coef, ctx.rng, device)
        elif anchors == "foundation_models":
            candidate |= literal_closed_form_flips(ctx.features, pool, head, anchor, cap / math.sqrt(d), device)
        else:  # a larger cap flips a superset: the union over the caps so far is this cap's set
            candidate = cap / math.sqrt(d) * reach > step_needed
        if candidate.sum() > ctx.budget:
            break
    n_candidates = int(candidate.sum())
    if kmeans == "sklearn":
        picks, n_random = sklearn_batch(pool, candidate, ctx.budget, ctx.rng, ctx.features)
    else:
        picks = candidates_or_fill(pool, candidate, ctx.budget, ctx.rng,
                                   lambda pos: unit_rows_tensor(ctx.features, pool[pos], device),
                                   kmeans_iterations, max_points_per_centroid)
        n_random = max(0, ctx.budget - n_candidates)
    return Selection(picks, info={"n_candidates": n_candidates, "cap": cap, "n_random": n_random})


alfamix.check = _check_alfamix  # type: ignore[attr-defined]
